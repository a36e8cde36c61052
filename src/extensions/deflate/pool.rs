//! The pool of compression states connections share.

use super::*;

/// A pool of compression states that connections share, reused across messages.
///
/// A connection gives its compression state back at the end of each message when it keeps no
/// live state between messages: under no-context-takeover, and under context takeover with
/// [`IdleState::History`] (the default). Creating a state per message allocates and zeroes
/// up to about 380 KB (a compressor with a 15-bit window), which profiling of a compressed
/// 1 KiB echo showed as about 12% of the server's time. With a pool, the next message of any
/// connection holding the same pool takes a state from it: its own, untouched, if no other
/// connection took it in between (the context is still in it: no priming), else one that is
/// reset (cheaper than a fresh one) and, under context takeover, primed with the connection's
/// history.
///
/// A pool is an explicit object, owned by whoever runs the connections (the upgrade helpers:
/// one per [`UpgradeConfig`](crate::upgrade::UpgradeConfig), shared by its clones); nothing
/// is kept per thread or per process. A connection given no pool keeps its own states between
/// messages (as [`IdleState::Live`]). A pool of capacity 0 (`DeflatePool::with_capacity(0)`)
/// keeps nothing between messages: a connection under [`IdleState::History`] then builds and
/// primes a state per message, several times the CPU of a live state for a small message.
///
/// A state a connection takes back as its own (its context intact) is matched by a tag drawn
/// from the pool's counter at every give, so a state given earlier, which holds an older
/// context, is never taken back as current, whichever thread runs the connection.
///
/// A pool keeps at most its capacity of states of each kind (compressors, inflaters), dropping
/// the oldest. Under context takeover, connections busy at the same time each find their own
/// state again as long as they are no more than the capacity; beyond it they take each
/// other's, and every message hashes a window of history into a reset state (about 4x the
/// CPU of a small compressed message). The default of 16 holds at most about 4.8 MiB of
/// compressors at a server's default 14-bit window (5.8 MiB at 15 bits) and 0.7 MiB of
/// inflaters; size it with [`with_capacity`](Self::with_capacity) to the connections that
/// send or receive compressed messages at once. It is
/// `Clone` (a shared handle) and `Send + Sync`; hand one to every connection of a server to
/// share states across threads:
///
/// ```
/// use wsproto::extensions::{DeflatePool, PerMessageDeflate};
///
/// let pool = DeflatePool::new();
/// let for_each_connection = move || PerMessageDeflate::new().pool(pool.clone());
/// # let _ = for_each_connection();
/// ```
#[derive(Clone)]
pub struct DeflatePool(Arc<PoolInner>);

pub(super) struct PoolInner {
    pub(super) capacity: usize,
    /// Compressors (each knows its level, window bits and memory level), oldest first.
    pub(super) compressors: Mutex<Vec<Pooled<Compressor>>>,
    /// Inflaters, by window bits, oldest first.
    pub(super) decompressors: Mutex<Vec<Pooled<(u8, Decompress)>>>,
    /// The next owner tag handed out ([`DeflatePool::next_tag`]).
    pub(super) next_tag: AtomicU64,
}

/// The tag of a connection that gave no state with its context in it yet.
pub(super) const NO_TAG: u64 = 0;

impl Default for DeflatePool {
    fn default() -> Self {
        DeflatePool::with_capacity(16)
    }
}

impl DeflatePool {
    /// A pool keeping at most 16 states of each kind.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pool keeping at most `capacity` states of each kind.
    pub fn with_capacity(capacity: usize) -> Self {
        DeflatePool(Arc::new(PoolInner {
            capacity,
            compressors: Mutex::new(Vec::new()),
            decompressors: Mutex::new(Vec::new()),
            next_tag: AtomicU64::new(NO_TAG + 1),
        }))
    }

    /// A fresh owner tag for a state given to this pool: unique among this pool's tags, and
    /// a connection only ever takes states back from the one pool it holds.
    pub(super) fn next_tag(&self) -> u64 {
        self.0.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    /// How many compressors and inflaters the pool holds now.
    pub fn len(&self) -> (usize, usize) {
        (lock(&self.0.compressors).len(), lock(&self.0.decompressors).len())
    }

    /// Whether the pool holds no state.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// A compressor for `key`: `owner`'s own (context intact, `true`) if still here, else a
    /// reset one.
    pub(super) fn take_compressor(
        &self,
        key: CompressorKey,
        owner: Option<u64>,
    ) -> Option<(Compressor, bool)> {
        let (mut compressor, ours) = take(&self.0.compressors, self.0.capacity, owner, |c| c.key == key)?;
        if !ours {
            compressor.reset();
        }
        Some((compressor, ours))
    }

    /// Keeps `compressor` for reuse: reset later by whoever takes it, unless `owner` takes it
    /// back first.
    pub(super) fn give_compressor(&self, compressor: Compressor, owner: Option<u64>) {
        give(&self.0.compressors, self.0.capacity, compressor, owner);
    }

    pub(super) fn take_decompressor(&self, bits: u8, owner: Option<u64>) -> Option<(Decompress, bool)> {
        let ((_, mut decompressor), ours) =
            take(&self.0.decompressors, self.0.capacity, owner, |(b, _)| *b == bits)?;
        if !ours {
            decompressor.reset(false);
        }
        Some((decompressor, ours))
    }

    pub(super) fn give_decompressor(&self, bits: u8, decompressor: Decompress, owner: Option<u64>) {
        give(&self.0.decompressors, self.0.capacity, (bits, decompressor), owner);
    }
}

/// A state in a pool, with the connection whose context it still holds, if any.
pub(super) struct Pooled<T> {
    pub(super) owner: Option<u64>,
    pub(super) state: T,
}

/// Takes `owner`'s own matching state (`true`), else a matching one holding no connection's
/// context, else, once the pool is full, the oldest matching one (another connection's
/// context: `false`, to be reset by the caller). `None`: the caller makes a new state.
///
/// Another connection's context is taken only from a full pool: taking it while the pool
/// still had room kept as few states as connections were served at once (one, on a
/// current-thread runtime), so connections taking turns took each other's and every message
/// re-primed its compressor (a window of history hashed again: 4x the CPU of a 1 KiB
/// compressed echo with 16 connections). Growing to the capacity first, busy connections up
/// to the capacity each find their own state again.
pub(super) fn take<T>(
    list: &Mutex<Vec<Pooled<T>>>,
    capacity: usize,
    owner: Option<u64>,
    fits: impl Fn(&T) -> bool,
) -> Option<(T, bool)> {
    let mut list = lock(list);
    if let Some(i) = owner.and_then(|o| list.iter().position(|p| p.owner == Some(o) && fits(&p.state))) {
        return Some((list.remove(i).state, true));
    }
    let free = list.iter().position(|p| p.owner.is_none() && fits(&p.state));
    let i = match free {
        Some(i) => i,
        None if list.len() < capacity => return None,
        None => list.iter().position(|p| fits(&p.state))?,
    };
    Some((list.remove(i).state, false))
}

/// Adds a state (newest last); a full pool drops its oldest.
pub(super) fn give<T>(list: &Mutex<Vec<Pooled<T>>>, capacity: usize, state: T, owner: Option<u64>) {
    if capacity == 0 {
        return;
    }
    let mut list = lock(list);
    if list.len() >= capacity {
        drop(list.remove(0));
    }
    list.push(Pooled { owner, state });
}

impl fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (compressors, decompressors) = self.len();
        f.debug_struct("DeflatePool")
            .field("capacity", &self.0.capacity)
            .field("compressors", &compressors)
            .field("decompressors", &decompressors)
            .finish()
    }
}

/// Locks a pool list; a panic while it was held left it consistent (a push or a pop).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
