//! permessage-deflate (RFC 7692): negotiation and per-message DEFLATE compression.
//!
//! The public face is [`PerMessageDeflate`] (negotiation rules, framing, memory cost) and
//! [`DeflateParams`] (the negotiated agreement).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush};

use crate::close::CloseCode;
use crate::error::ExtensionError;
use crate::extensions::{Extension, SharedFraming};
use crate::frame::{Opcode, Rsv};
use crate::headers::ExtensionItem;
use crate::role::ConnectionType;

/// The extension token.
const NAME: &str = "permessage-deflate";
/// The end of a sync flush, removed from the end of each compressed message (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Window bits allowed by RFC 7692.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest (and default) window.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window zlib compresses (and flate2 inflates) with.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;
/// Bounds of the first output buffer when inflating: eight times the input, clamped to these
/// (then it grows by doubling, capped by the message budget).
const INFLATE_FIRST_STEP: (usize, usize) = (4 << 10, 64 << 10);
/// Spare capacity above which an output buffer is shrunk before being handed out.
const MAX_SPARE: usize = 4 << 10;
/// The memory level our compressor uses unless configured (see
/// [`PerMessageDeflate::memory_level`]).
const DEFAULT_MEM_LEVEL: u8 = 8;
/// The window a server compresses with unless configured (see
/// [`PerMessageDeflate::compress_window_bits`]); a client uses the negotiated window.
const DEFAULT_SERVER_COMPRESS_BITS: u8 = 14;

const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";

/// The parameters agreed during the opening handshake, as seen by one side.
///
/// Window bits are the largest window each side compresses with (15 when not limited); a side
/// told to use 8 compresses with 9, which the other side handles because it inflates with at
/// least 9 anyway.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct DeflateParams {
    /// Our side: a client called [`finalize`](Extension::finalize), a server
    /// [`accept`](Extension::accept).
    pub role: ConnectionType,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// Largest window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
    /// Largest window the server compresses with (8..=15).
    pub server_max_window_bits: u8,
}

impl DeflateParams {
    /// The same agreement seen from the given side.
    pub fn with_role(self, role: ConnectionType) -> DeflateParams {
        DeflateParams { role, ..self }
    }

    /// Window bits we compress with (never below 9).
    pub fn compress_window_bits(&self) -> u8 {
        let bits = match self.role {
            ConnectionType::Client => self.client_max_window_bits,
            ConnectionType::Server => self.server_max_window_bits,
        };
        bits.max(MIN_ZLIB_WINDOW_BITS)
    }

    /// Window bits we inflate with: the peer's window, at least 9.
    pub fn inflate_window_bits(&self) -> u8 {
        let bits = match self.role {
            ConnectionType::Client => self.server_max_window_bits,
            ConnectionType::Server => self.client_max_window_bits,
        };
        bits.max(MIN_ZLIB_WINDOW_BITS)
    }

    /// Whether our compressor is reset after each message.
    pub fn compress_no_context_takeover(&self) -> bool {
        match self.role {
            ConnectionType::Client => self.client_no_context_takeover,
            ConnectionType::Server => self.server_no_context_takeover,
        }
    }

    /// Whether the peer resets its context after each message (so we reset our inflater).
    pub fn inflate_no_context_takeover(&self) -> bool {
        match self.role {
            ConnectionType::Client => self.server_no_context_takeover,
            ConnectionType::Server => self.client_no_context_takeover,
        }
    }
}

/// Local configuration, set by the builder methods.
#[derive(Clone, Copy, Debug)]
struct Settings {
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
    client_max_window_bits: Option<u8>,
    server_max_window_bits: Option<u8>,
    level: Compression,
    threshold: usize,
    mem_level: u8,
    compress_window_bits: Option<u8>,
    idle: IdleState,
}

/// What a connection keeps of a context-takeover direction between two messages (see
/// [`PerMessageDeflate::idle_state`]).
///
/// Either way the compression context is taken over from message to message, as negotiated:
/// the bytes on the wire are valid for any peer. The difference is memory against CPU.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum IdleState {
    /// Keep only the last window's worth of the direction's data (at most `1 << bits` bytes,
    /// less until that much was sent or received). The compressor or inflater goes to the
    /// connection's [`DeflatePool`] at the end of each message; at
    /// the next one the connection takes it back untouched if no other connection took it in
    /// between, or else takes another (or a new) one and primes it with that data as its
    /// dictionary (for the compressor, hashing up to a window of data). Idle connections are
    /// small, and a busy one costs about what a live state costs. A connection given no pool
    /// has nowhere to put its states, so it keeps them as under [`Live`](Self::Live).
    #[default]
    History,
    /// Keep the compressor and the inflater allocated between messages: no per-message setup
    /// (the fastest for busy connections), but several hundred KiB per idle connection (see
    /// the table in [`PerMessageDeflate`]).
    Live,
}

/// The permessage-deflate extension (RFC 7692).
///
/// [`PerMessageDeflate`] is an [`Extension`]: configure one, hand it to the handshake (the
/// client offers it, the server accepts one of the client's offers), and the negotiated object
/// then compresses outgoing messages (RSV1 set on their first frame) and inflates incoming
/// compressed ones.
///
/// ```
/// use wsproto::extensions::{Extension, PerMessageDeflate};
///
/// let mut client = PerMessageDeflate::new().server_max_window_bits(10);
/// let mut server = PerMessageDeflate::new().server_no_context_takeover(true);
///
/// let offer = client.offer().unwrap();
/// assert_eq!(offer, "client_max_window_bits; server_max_window_bits=10");
/// let response = server.accept(&format!("permessage-deflate; {offer}")).unwrap();
/// assert_eq!(response, "server_no_context_takeover; server_max_window_bits=10");
/// client.finalize(&format!("permessage-deflate; {response}")).unwrap();
/// assert!(client.enabled() && server.enabled());
/// assert_eq!(client.params(), server.params().map(|p| p.with_role(wsproto::ConnectionType::Client)));
/// ```
///
/// # Negotiation
///
/// * The client offers `client_max_window_bits` (value-less unless configured, so the server
///   may limit our window), plus each parameter it was configured with.
/// * The server accepts an offer only if every parameter is known, appears once and has a valid
///   value (window bits are 8..=15, decimal, no leading zero); it declines it otherwise (the
///   handshake then tries the next offer: the first acceptable one wins). It also declines an
///   offer asking it to compress with an 8-bit window, which zlib cannot produce. A window of 8
///   that it only has to *inflate* is fine: inflating with a larger window is safe.
/// * A window size the server wants the client to use is only announced (and only relied upon
///   when inflating) if the client's offer carried `client_max_window_bits`. The server never
///   asks for 8 itself (it asks for 9), but echoes a client's own `client_max_window_bits=8`.
/// * The client rejects (`finalize` → `Err`) a response with an unknown, duplicated or invalid
///   parameter, `server_max_window_bits` above what it asked for, a response that drops the
///   `server_no_context_takeover` or `server_max_window_bits` it asked for, or
///   `client_max_window_bits=8`.
///
/// # Framing
///
/// Raw DEFLATE, each frame flushed with a sync flush; the final frame of a message has its
/// trailing `00 00 ff ff` removed, and the receiver appends it back. Messages of a single frame
/// smaller than the [threshold](Self::compression_threshold) are sent
/// uncompressed (RSV1 clear). Inflating is streaming and bounded: each received chunk is
/// inflated as it arrives, in bounded steps, and the output counts against the connection's
/// maximum message size: when it would be exceeded the connection fails with 1009 having
/// allocated at most the remaining budget (plus one byte), so a compression bomb cannot make
/// the receiver allocate more than its limit. Corrupt data fails with 1007, RSV1 on a control
/// or continuation frame with 1002. A message whose DEFLATE data ends with a `BFINAL` block is
/// accepted (bytes after it are ignored) and the inflater is restarted for the next message.
///
/// # Memory
///
/// Nothing is allocated until a message is actually compressed or inflated: a connection that
/// did not negotiate permessage-deflate, or never sends (receives) a compressed message, pays
/// nothing for the compressor (decompressor). What a direction keeps between messages:
///
/// * **No context takeover**: nothing; the state is released at the end of each message (to
///   the [`DeflatePool`] if one is set).
/// * **Context takeover, [`IdleState::History`] (the default)**: the last window of the
///   direction's data, at most `1 << bits` bytes and less until that much went through: what
///   we sent, up to our compress window (16 KiB at a server's default 14 bits), and what we
///   received, up to the peer's window (32 KiB unless negotiated smaller). The compressor and
///   inflater are released at the end of each message and rebuilt at the next, primed with
///   that data, so the context is taken over exactly as negotiated.
/// * **Context takeover, [`IdleState::Live`]**: the compressor and inflater themselves (table
///   below): the previous default.
///
/// State sizes (zlib-rs, independent of the compression level): the compressor takes
/// `(4 << bits) + (7 << (memory_level + 6)) + 128 KiB + ~3 KiB` bytes (window and chains,
/// block buffers, zlib-rs's fixed hash table); the inflater 46 KiB (47,552 B: zlib-rs
/// allocates its 32 KiB window whatever the negotiated size).
///
/// | compress window bits | memory level 1 | 4 | 5 | 8 (default) | 9 |
/// |---------------------:|--------:|--------:|--------:|--------:|--------:|
/// | 9                    | 134 KiB | 140 KiB | 147 KiB | 245 KiB | 357 KiB |
/// | 10                   | 136 KiB | 142 KiB | 149 KiB | 247 KiB | 359 KiB |
/// | 11                   | 140 KiB | 146 KiB | 153 KiB | 251 KiB | 363 KiB |
/// | 12                   | 148 KiB | 154 KiB | 161 KiB | 259 KiB | 371 KiB |
/// | 13                   | 164 KiB | 170 KiB | 177 KiB | 275 KiB | 387 KiB |
/// | 14 (server default)  | 196 KiB | 202 KiB | 209 KiB | 307 KiB | 419 KiB |
/// | 15                   | 260 KiB | 266 KiB | 273 KiB | 371 KiB | 483 KiB |
///
/// Per idle server connection (context takeover both ways, a client compressing with 15
/// bits; measured by the repository's `bench`, whose `RESULTS.md` has the details):
///
/// | configuration | after one small message each way | once both windows are full | ratio on a chat corpus |
/// |---|---:|---:|---:|
/// | default (`History`, 14 bits) | 0 KiB | 48 KiB | 1.04× the `Live` 15-bit size |
/// | `History`, [`compress_window_bits(15)`](Self::compress_window_bits) | 0 KiB | 64 KiB | 1.00× |
/// | `History`, `compress_window_bits(12)` | 0 KiB | 36 KiB | 1.24× |
/// | `Live`, 15 bits, memory level 8 (the previous default) | 418 KiB | 418 KiB | 1.00× |
/// | `Live`, 12 bits, memory level 5 | 208 KiB | 208 KiB | 1.25× |
/// | no context takeover | 0 KiB | 0 KiB | (each message alone) |
///
/// The connection's codec buffers come on top: about 4 KiB on a quiet connection, up to about
/// 30 KiB kept after a burst of larger messages (the read buffer keeps its size while reads
/// are not small; `bench/RESULTS.md`).
///
/// # Choosing
///
/// `History` trades CPU for memory: a message on a connection whose state was released
/// costs a state (allocated, or reset from a pool) and the priming, which for the compressor
/// means hashing up to a window of data, a few to a few tens of microseconds. Give the
/// connections of a server a shared [`DeflatePool`]: a connection then takes back its own
/// state untouched when no other connection took it in between, so a busy connection costs
/// what `Live` costs, and idle ones keep only their history. Without a pool a connection keeps
/// its states (as `Live`). Choose:
///
/// * many connections, mostly idle (chat, notifications): the default, with a pool;
/// * a few busy connections, CPU first: [`idle_state(IdleState::Live)`](Self::idle_state),
///   possibly with a smaller [`memory_level`](Self::memory_level) (4 or 5 cost little ratio on
///   small messages) and [`compress_window_bits`](Self::compress_window_bits);
/// * the best ratio: `compress_window_bits(15)` (16 KiB more per idle connection in
///   `History`);
/// * a smaller inflate side: a server's [`client_max_window_bits`](Self::client_max_window_bits)
///   asks clients for a smaller window (negotiated: only if the client offers the parameter,
///   as browsers do), which shrinks the received history.
///
/// Per message, the output buffers are transient: compressing needs about the compressed
/// size, inflating at most the remaining message budget.
///
/// # Configuration
///
/// Build one per connection with the builder methods (all optional), then let the handshake
/// negotiate it. The same configuration methods serve both roles; see each method for what a
/// setting means on a client and on a server.
///
/// ```
/// use flate2::Compression;
/// use wsproto::extensions::PerMessageDeflate;
///
/// let deflate = PerMessageDeflate::new()
///     .client_no_context_takeover(true)
///     .client_max_window_bits(12)
///     .compression_level(Compression::fast())
///     .compression_threshold(64);
/// # let _ = deflate;
/// ```
pub struct PerMessageDeflate {
    settings: Settings,
    /// Where released states go between messages, if anywhere.
    pool: Option<DeflatePool>,
    /// The tags of the last compressor and inflater this connection gave to its pool with
    /// their context still in them ([`IdleState::History`]), so it can take them back unprimed
    /// if nobody else took them. Drawn from the pool's own counter at every give (0: none):
    /// a state given earlier holds an older context and must never be taken back as current.
    tx_tag: u64,
    rx_tag: u64,
    params: Option<DeflateParams>,
    compressor: Option<Compressor>,
    decompressor: Option<Decompress>,
    /// The last window of data we compressed ([`IdleState::History`], context takeover).
    tx_history: History,
    /// The last window of data we inflated ([`IdleState::History`], context takeover).
    rx_history: History,
    /// The outgoing message in progress is compressed.
    tx_compressed: bool,
    /// The incoming message in progress is compressed (set from RSV1 of its first frame;
    /// control frames in between do not touch it).
    rx_compressed: bool,
    /// The incoming message's DEFLATE stream ended with a `BFINAL` block.
    rx_stream_ended: bool,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate::new()
    }
}

impl PerMessageDeflate {
    /// The extension token, `permessage-deflate`.
    pub const NAME: &'static str = NAME;

    /// Default settings: context takeover in both directions, 15-bit windows (the client lets
    /// the server choose its window), the default compression level, every message compressed.
    pub fn new() -> Self {
        PerMessageDeflate {
            settings: Settings {
                client_no_context_takeover: false,
                server_no_context_takeover: false,
                client_max_window_bits: None,
                server_max_window_bits: None,
                level: Compression::default(),
                threshold: 0,
                mem_level: DEFAULT_MEM_LEVEL,
                compress_window_bits: None,
                idle: IdleState::History,
            },
            pool: None,
            tx_tag: NO_TAG,
            rx_tag: NO_TAG,
            params: None,
            compressor: None,
            decompressor: None,
            tx_history: History::default(),
            rx_history: History::default(),
            tx_compressed: false,
            rx_compressed: false,
            rx_stream_ended: false,
        }
    }

    /// Client: we reset our compression context after each message, and say so in the offer.
    /// Server: require clients to do so (always sent in the response).
    pub fn client_no_context_takeover(mut self, enabled: bool) -> Self {
        self.settings.client_no_context_takeover = enabled;
        self
    }

    /// Client: ask the server to reset its compression context after each message (the
    /// handshake fails if it does not agree), so we can drop our inflater between messages.
    /// Server: reset ours after each message (always sent in the response).
    pub fn server_no_context_takeover(mut self, enabled: bool) -> Self {
        self.settings.server_no_context_takeover = enabled;
        self
    }

    /// Client: compress with at most `bits` and offer `client_max_window_bits=bits` (8 is
    /// offered and used as 9: zlib cannot compress with 8).
    /// Server: ask clients to compress with at most `bits`; only possible when the client's
    /// offer carries `client_max_window_bits`, otherwise the server inflates with 15. 8 is
    /// asked as 9: it would save nothing (we inflate with at least 9) and zlib-based clients
    /// cannot compress with 8.
    ///
    /// # Panics
    ///
    /// If `bits` is not in 8..=15.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        assert!(valid_bits(bits), "window bits must be in 8..=15, got {bits}");
        self.settings.client_max_window_bits = Some(bits);
        self
    }

    /// Client: ask the server to compress with at most `bits` (the handshake fails if it does
    /// not agree); we inflate with that window.
    /// Server: compress with at most `bits` (or less if the client asks), always announced
    /// in the response (8 is announced and used as 9).
    ///
    /// # Panics
    ///
    /// If `bits` is not in 8..=15.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        assert!(valid_bits(bits), "window bits must be in 8..=15, got {bits}");
        self.settings.server_max_window_bits = Some(bits);
        self
    }

    /// The compression level for messages we send (default: [`Compression::default`]).
    pub fn compression_level(mut self, level: Compression) -> Self {
        self.settings.level = level;
        self
    }

    /// Send single-frame messages shorter than `bytes` uncompressed (RSV1 clear): for tiny
    /// messages compression costs more than it saves. Fragmented messages are always
    /// compressed, their size being unknown at the first frame. Default 0: compress all.
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.settings.threshold = bytes;
        self
    }

    /// Reuses compression states through `pool` (see [`DeflatePool`]) when no live state is
    /// kept between messages (no-context-takeover, or [`IdleState::History`]). Without one
    /// the connection keeps its own states between messages (reset when the context does not
    /// carry over). The upgrade helpers give every connection its configuration's pool
    /// ([`UpgradeConfig::deflate_pool`](crate::upgrade::UpgradeConfig::deflate_pool)).
    pub fn pool(mut self, pool: DeflatePool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// `pool` unless one was given.
    #[cfg(feature = "tokio")]
    pub(crate) fn pool_if_none(mut self, pool: &DeflatePool) -> Self {
        self.pool.get_or_insert_with(|| pool.clone());
        self
    }

    /// zlib's `memLevel` for our compressor, 1..=9 (default 8): the size of its block buffers,
    /// `7 << (level + 6)` bytes (112 KiB at 8, 14 KiB at 5, 896 B at 1). Lower levels end
    /// DEFLATE blocks sooner, which costs a little ratio on messages larger than the buffer;
    /// messages shorter than `1 << (level + 6)` bytes compress the same. Not negotiated: it
    /// only changes how we compress. (zlib-rs's 128 KiB hash table does not depend on it,
    /// unlike zlib's.)
    ///
    /// # Panics
    ///
    /// If `level` is not in 1..=9.
    pub fn memory_level(mut self, level: u8) -> Self {
        assert!((1..=9).contains(&level), "memory level must be in 1..=9, got {level}");
        self.settings.mem_level = level;
        self
    }

    /// Compress with a window of at most `bits` (9..=15; 8 is used as 9) even when the
    /// negotiated window is larger; never announced, as a peer inflating with a larger window
    /// decodes it (RFC 7692 §7.1.2: the window parameters are limits). The negotiated window
    /// still applies when it is smaller. Default: 14 (16 KiB) on a server, the negotiated window
    /// on a client. A smaller window makes the compressor smaller (`4 << bits` bytes) and,
    /// with [`IdleState::History`], the history an idle connection keeps (`1 << bits`), at some
    /// cost in ratio when messages repeat content from further back.
    ///
    /// # Panics
    ///
    /// If `bits` is not in 8..=15.
    pub fn compress_window_bits(mut self, bits: u8) -> Self {
        assert!(valid_bits(bits), "window bits must be in 8..=15, got {bits}");
        self.settings.compress_window_bits = Some(bits);
        self
    }

    /// What a context-takeover direction keeps between messages (default
    /// [`IdleState::History`]). No-context-takeover directions keep nothing either way.
    pub fn idle_state(mut self, idle: IdleState) -> Self {
        self.settings.idle = idle;
        self
    }

    /// The window bits our compressor actually uses: the negotiated window, capped by
    /// [`compress_window_bits`](Self::compress_window_bits) (or the server default).
    /// Whether idle states go to the pool between messages ([`IdleState::History`] with a
    /// pool): without a pool there is nowhere to keep them, so the connection keeps its own.
    fn releases_idle_state(&self) -> bool {
        self.pool.is_some() && self.settings.idle == IdleState::History
    }

    fn compress_bits(&self, params: DeflateParams) -> u8 {
        let cap = match (self.settings.compress_window_bits, params.role) {
            (Some(bits), _) => bits,
            (None, ConnectionType::Server) => DEFAULT_SERVER_COMPRESS_BITS,
            (None, ConnectionType::Client) => MAX_WINDOW_BITS,
        };
        params.compress_window_bits().min(cap.max(MIN_ZLIB_WINDOW_BITS))
    }

    /// The negotiated parameters, once [`enabled`](Extension::enabled).
    pub fn params(&self) -> Option<DeflateParams> {
        self.params
    }

    /// Whether the compressor and the decompressor are allocated right now (for tests of
    /// the lazy allocation and no-context-takeover release).
    #[doc(hidden)]
    pub fn state_allocated(&self) -> (bool, bool) {
        (self.compressor.is_some(), self.decompressor.is_some())
    }

    /// Compresses one outgoing frame's data; a final frame loses its `00 00 ff ff` tail.
    /// The settings our compressor is made with.
    fn compressor_key(&self, params: DeflateParams) -> CompressorKey {
        CompressorKey {
            level: self.settings.level.level(),
            bits: self.compress_bits(params),
            mem_level: self.settings.mem_level,
        }
    }

    fn compress(&mut self, params: DeflateParams, data: &[u8], fin: bool) -> Result<Bytes, ExtensionError> {
        let key = self.compressor_key(params);
        let keep_history = self.releases_idle_state() && !params.compress_no_context_takeover();
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            slot @ None => {
                let owner = keep_history.then_some(self.tx_tag);
                let pooled = self.pool.as_ref().and_then(|pool| pool.take_compressor(key, owner));
                let (mut compressor, ours) = pooled.unwrap_or_else(|| (Compressor::new(key), false));
                // Our own state, back untouched, already holds the context.
                if keep_history && !ours && !self.tx_history.is_empty() {
                    compressor.prime(self.tx_history.as_slice())?;
                }
                slot.insert(compressor)
            }
        };
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        compressor.compress_sync(data, &mut out)?;
        if keep_history {
            self.tx_history.push(data, 1 << key.bits);
        }
        if fin {
            end_message(&mut out);
            if params.compress_no_context_takeover() || keep_history {
                match &self.pool {
                    Some(pool) => {
                        if let Some(compressor) = self.compressor.take() {
                            self.tx_tag = pool.next_tag();
                            let owner = keep_history.then_some(self.tx_tag);
                            pool.give_compressor(compressor, owner);
                        }
                    }
                    // No pool: the connection keeps its own state, fresh for the next message.
                    None => {
                        if let Some(compressor) = &mut self.compressor {
                            compressor.reset();
                        }
                    }
                }
            }
        }
        Ok(into_bytes(out))
    }

    /// Inflates `input` (part of the current message), producing at most `max_output` bytes:
    /// more is an error with [`CloseCode::MESSAGE_TOO_BIG`], and the output buffer never grows past
    /// `max_output + 1` bytes.
    fn inflate(
        &mut self,
        input: &[u8],
        max_output: usize,
        flush: FlushDecompress,
    ) -> Result<Bytes, ExtensionError> {
        let Some(params) = self.params else { return Ok(Bytes::copy_from_slice(input)) };
        if self.rx_stream_ended {
            // The DEFLATE stream ended (BFINAL): what follows is ignored.
            return Ok(Bytes::new());
        }
        let bits = params.inflate_window_bits();
        let keep_history = self.releases_idle_state() && !params.inflate_no_context_takeover();
        let decompressor = match &mut self.decompressor {
            Some(decompressor) => decompressor,
            slot @ None => {
                let owner = keep_history.then_some(self.rx_tag);
                let pooled = self.pool.as_ref().and_then(|pool| pool.take_decompressor(bits, owner));
                let (mut decompressor, ours) =
                    pooled.unwrap_or_else(|| (Decompress::new_with_window_bits(false, bits), false));
                // Our own state, back untouched, already holds the context.
                if keep_history && !ours && !self.rx_history.is_empty() {
                    decompressor.set_dictionary(self.rx_history.as_slice()).map_err(|_| {
                        ExtensionError::new(CloseCode::INTERNAL_ERROR, "priming the inflater failed")
                    })?;
                }
                slot.insert(decompressor)
            }
        };
        // One byte more than allowed, to tell "exactly the budget" from "more".
        let limit = max_output.saturating_add(1);
        let mut out: Vec<u8> = Vec::new();
        let mut input = input;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(too_big());
                }
                let next = if out.capacity() == 0 {
                    input.len().saturating_mul(8).clamp(INFLATE_FIRST_STEP.0, INFLATE_FIRST_STEP.1)
                } else {
                    out.capacity().saturating_mul(2)
                };
                out.reserve_exact(next.min(limit) - out.len());
            }
            let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
            let status = decompressor.decompress_vec(input, &mut out, flush).map_err(|_| corrupt())?;
            let consumed = usize::try_from(decompressor.total_in() - in_before).unwrap_or(input.len());
            let produced = decompressor.total_out() - out_before;
            input = &input[consumed.min(input.len())..];
            if out.len() > max_output {
                return Err(too_big());
            }
            if status == Status::StreamEnd {
                self.rx_stream_ended = true;
                break;
            }
            if out.len() < out.capacity() {
                // Done when all input is consumed and the inflater did not run out of room.
                if input.is_empty() {
                    break;
                }
                // Input left, room left, and no progress: the inflater is stuck.
                if consumed == 0 && produced == 0 {
                    return Err(corrupt());
                }
            }
        }
        if keep_history {
            self.rx_history.push(&out, 1 << bits);
        }
        Ok(into_bytes(out))
    }

    /// The end of an incoming message: release or restart the inflater as needed.
    fn end_inbound_message(&mut self) {
        let reset = self.params.is_some_and(|p| p.inflate_no_context_takeover());
        if reset || self.rx_stream_ended {
            // A new DEFLATE stream follows: nothing to carry over.
            self.rx_history.clear();
        }
        let history = self.releases_idle_state();
        match &self.pool {
            Some(pool) if reset || self.rx_stream_ended || history => {
                if let (Some(decompressor), Some(params)) = (self.decompressor.take(), self.params) {
                    // Kept as ours (context in it) only if the context continues.
                    self.rx_tag = pool.next_tag();
                    let owner = (history && !reset && !self.rx_stream_ended).then_some(self.rx_tag);
                    pool.give_decompressor(params.inflate_window_bits(), decompressor, owner);
                }
            }
            // No pool: the connection keeps its own inflater, restarted for a new stream.
            None if reset || self.rx_stream_ended => {
                if let Some(decompressor) = &mut self.decompressor {
                    decompressor.reset(false);
                }
            }
            _ => {}
        }
        self.rx_stream_ended = false;
        self.rx_compressed = false;
    }

    /// The response parameters for an acceptable `offer`, and the agreement; `None` to decline.
    fn negotiate_offer(&self, offer: &str) -> Option<(String, DeflateParams)> {
        let offered = DeflateItem::parse_text(offer).ok()?;
        let settings = &self.settings;

        // Our (server) window: the smaller of our setting and the client's request.
        let server_bits = match offered.server_max_window_bits {
            None => None,
            Some(None) => return None, // a value is required
            Some(Some(bits)) if bits < MIN_ZLIB_WINDOW_BITS => return None, // cannot compress with 8
            Some(Some(bits)) => Some(bits),
        };
        let server_bits_agreed = match (server_bits, settings.server_max_window_bits) {
            (Some(a), Some(b)) => Some(a.min(b.max(MIN_ZLIB_WINDOW_BITS))),
            (a, b) => a.or(b.map(|b| b.max(MIN_ZLIB_WINDOW_BITS))),
        };

        // The client's window: its hint, limited by ours only when it said it supports the
        // parameter (otherwise we could not announce it, and must inflate with 15).
        // We never ask for 8 (we inflate with at least 9 anyway, and zlib-based clients cannot
        // compress with 8), but echo a client's own hint of 8.
        let ours = settings.client_max_window_bits.map(|b| b.max(MIN_ZLIB_WINDOW_BITS));
        let client_bits_agreed = match offered.client_max_window_bits {
            None => None,
            Some(hint) => match (hint, ours) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };

        let params = DeflateParams {
            role: ConnectionType::Server,
            client_no_context_takeover: offered.client_no_context_takeover
                || settings.client_no_context_takeover,
            server_no_context_takeover: offered.server_no_context_takeover
                || settings.server_no_context_takeover,
            client_max_window_bits: client_bits_agreed.unwrap_or(MAX_WINDOW_BITS),
            server_max_window_bits: server_bits_agreed.unwrap_or(MAX_WINDOW_BITS),
        };
        let mut response = Vec::new();
        if params.client_no_context_takeover {
            response.push(CLIENT_NO_CONTEXT_TAKEOVER.to_owned());
        }
        if params.server_no_context_takeover {
            response.push(SERVER_NO_CONTEXT_TAKEOVER.to_owned());
        }
        if let Some(bits) = client_bits_agreed {
            response.push(format!("{CLIENT_MAX_WINDOW_BITS}={bits}"));
        }
        if let Some(bits) = server_bits_agreed {
            response.push(format!("{SERVER_MAX_WINDOW_BITS}={bits}"));
        }
        Some((response.join("; "), params))
    }

    /// The agreement described by the server's `response` to our offer, or why it is invalid.
    fn negotiate_response(&self, response: &str) -> Result<DeflateParams, String> {
        let answer = DeflateItem::parse_text(response)?;
        let settings = &self.settings;
        if settings.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err(format!("the server did not accept {SERVER_NO_CONTEXT_TAKEOVER}"));
        }
        let server_bits = match answer.server_max_window_bits {
            Some(None) => return Err(format!("{SERVER_MAX_WINDOW_BITS} without a value")),
            Some(Some(bits)) => match settings.server_max_window_bits {
                Some(asked) if bits > asked => {
                    return Err(format!(
                        "{NAME}: {SERVER_MAX_WINDOW_BITS}={bits}, larger than the {asked} offered"
                    ))
                }
                _ => bits,
            },
            None => match settings.server_max_window_bits {
                Some(_) => return Err(format!("the server did not accept {SERVER_MAX_WINDOW_BITS}")),
                None => MAX_WINDOW_BITS,
            },
        };
        // We always offer client_max_window_bits, so the server may limit our window.
        let our_bits =
            settings.client_max_window_bits.map_or(MAX_WINDOW_BITS, |b| b.max(MIN_ZLIB_WINDOW_BITS));
        let client_bits = match answer.client_max_window_bits {
            Some(None) => return Err(format!("{CLIENT_MAX_WINDOW_BITS} without a value")),
            Some(Some(bits)) if bits < MIN_ZLIB_WINDOW_BITS => {
                return Err(format!("cannot compress with {CLIENT_MAX_WINDOW_BITS}={bits}"))
            }
            Some(Some(bits)) => bits.min(our_bits),
            None => our_bits,
        };
        Ok(DeflateParams {
            role: ConnectionType::Client,
            client_no_context_takeover: answer.client_no_context_takeover
                || settings.client_no_context_takeover,
            server_no_context_takeover: answer.server_no_context_takeover,
            client_max_window_bits: client_bits,
            server_max_window_bits: server_bits,
        })
    }

    /// Forgets any negotiation and compression state.
    fn reset_state(&mut self, params: DeflateParams) {
        self.params = Some(params);
        self.tx_tag = NO_TAG;
        self.rx_tag = NO_TAG;
        self.compressor = None;
        self.decompressor = None;
        self.tx_history = History::default();
        self.rx_history = History::default();
        self.tx_compressed = false;
        self.rx_compressed = false;
        self.rx_stream_ended = false;
    }
}

impl Extension for PerMessageDeflate {
    fn name(&self) -> &str {
        NAME
    }

    fn enabled(&self) -> bool {
        self.params.is_some()
    }

    fn offer(&mut self) -> Option<String> {
        let s = &self.settings;
        let mut params = vec![match s.client_max_window_bits {
            Some(bits) => format!("{CLIENT_MAX_WINDOW_BITS}={}", bits.max(MIN_ZLIB_WINDOW_BITS)),
            None => CLIENT_MAX_WINDOW_BITS.to_owned(),
        }];
        if let Some(bits) = s.server_max_window_bits {
            params.push(format!("{SERVER_MAX_WINDOW_BITS}={bits}"));
        }
        if s.client_no_context_takeover {
            params.push(CLIENT_NO_CONTEXT_TAKEOVER.to_owned());
        }
        if s.server_no_context_takeover {
            params.push(SERVER_NO_CONTEXT_TAKEOVER.to_owned());
        }
        Some(params.join("; "))
    }

    fn accept(&mut self, offer: &str) -> Option<String> {
        let (response, params) = self.negotiate_offer(offer)?;
        self.reset_state(params);
        Some(response)
    }

    fn finalize(&mut self, response: &str) -> Result<(), ExtensionError> {
        let params = self
            .negotiate_response(response)
            .map_err(|why| ExtensionError::new(CloseCode::MANDATORY_EXT, why))?;
        self.reset_state(params);
        Ok(())
    }

    fn frame_inbound_header(
        &mut self,
        _role: ConnectionType,
        opcode: Opcode,
        rsv: Rsv,
        _payload_len: u64,
    ) -> Result<Rsv, ExtensionError> {
        if rsv.rsv1() && !matches!(opcode, Opcode::Text | Opcode::Binary) {
            // RSV1 marks a compressed message on its first frame only (RFC 7692 §6.1).
            return Err(ExtensionError::new(
                CloseCode::PROTOCOL_ERROR,
                "RSV1 set on a frame other than the first of a message",
            ));
        }
        if matches!(opcode, Opcode::Text | Opcode::Binary) {
            if self.rx_stream_ended {
                self.end_inbound_message();
            }
            self.rx_compressed = rsv.rsv1();
        }
        Ok(Rsv::RSV1)
    }

    fn frame_inbound_payload_data(
        &mut self,
        data: Bytes,
        max_output: usize,
    ) -> Result<Bytes, ExtensionError> {
        if !self.rx_compressed || data.is_empty() {
            return Ok(data);
        }
        self.inflate(&data, max_output, FlushDecompress::None).inspect_err(|_| self.decompressor = None)
    }

    fn frame_inbound_complete(
        &mut self,
        fin: bool,
        max_output: usize,
    ) -> Result<Option<Bytes>, ExtensionError> {
        if !self.rx_compressed || !fin {
            return Ok(None);
        }
        let tail = self
            .inflate(&TAIL, max_output, FlushDecompress::Sync)
            .inspect_err(|_| self.decompressor = None)?;
        self.end_inbound_message();
        Ok((!tail.is_empty()).then_some(tail))
    }

    fn frame_outbound(
        &mut self,
        opcode: Opcode,
        rsv: Rsv,
        data: Bytes,
        fin: bool,
    ) -> Result<(Rsv, Bytes), ExtensionError> {
        let Some(params) = self.params else { return Ok((rsv, data)) };
        match opcode {
            Opcode::Text | Opcode::Binary => {
                self.tx_compressed = !(fin && data.len() < self.settings.threshold);
            }
            Opcode::Continuation => {}
            _ => return Ok((rsv, data)),
        }
        if !self.tx_compressed {
            return Ok((rsv, data));
        }
        let payload = self.compress(params, &data, fin)?;
        let rsv = if opcode == Opcode::Continuation { rsv } else { rsv.union(Rsv::RSV1) };
        Ok((rsv, payload))
    }

    fn shared_framing(&self, _opcode: Opcode, len: usize) -> SharedFraming {
        self.shared(len)
    }

    fn encode_shared(
        &self,
        key: u64,
        _opcode: Opcode,
        payload: &[u8],
    ) -> Result<(Rsv, Bytes), ExtensionError> {
        self.encode_whole(key, payload)
    }
}

/// Inflating would exceed the message budget (reported as a message too big).
fn too_big() -> ExtensionError {
    ExtensionError::new(CloseCode::MESSAGE_TOO_BIG, "message exceeds the maximum message size")
}

/// The compressed data is not valid DEFLATE.
fn corrupt() -> ExtensionError {
    ExtensionError::new(CloseCode::INVALID_FRAME_PAYLOAD_DATA, "invalid compressed data")
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("PerMessageDeflate")
            .field("client_no_context_takeover", &s.client_no_context_takeover)
            .field("server_no_context_takeover", &s.server_no_context_takeover)
            .field("client_max_window_bits", &s.client_max_window_bits)
            .field("server_max_window_bits", &s.server_max_window_bits)
            .field("level", &s.level.level())
            .field("threshold", &s.threshold)
            .field("memory_level", &s.mem_level)
            .field("compress_window_bits", &s.compress_window_bits)
            .field("idle_state", &s.idle)
            .field("params", &self.params)
            .field("compressor", &self.compressor.is_some())
            .field("decompressor", &self.decompressor.is_some())
            .finish()
    }
}

/// The four parameters of one permessage-deflate item of a `Sec-WebSocket-Extensions` header
/// (an offer in a received [`Request`](crate::Request), or the agreement in a received
/// [`AcceptConnection`](crate::AcceptConnection)), typed.
///
/// Parsing validates them as RFC 7692 does: known names, each at most once, no value on the
/// flags, window bits in 8..=15 written without leading zero.
///
/// ```
/// use wsproto::extensions::DeflateItem;
/// let item = DeflateItem::parse("permessage-deflate; client_max_window_bits; server_max_window_bits=10").unwrap();
/// assert_eq!(item.client_max_window_bits, Some(None)); // offered without a value
/// assert_eq!(item.server_max_window_bits, Some(Some(10)));
/// assert!(!item.server_no_context_takeover);
/// assert!(DeflateItem::parse("permessage-deflate; server_max_window_bits=16").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub struct DeflateItem {
    /// `client_no_context_takeover` is present.
    pub client_no_context_takeover: bool,
    /// `server_no_context_takeover` is present.
    pub server_no_context_takeover: bool,
    /// `client_max_window_bits`: `None` absent, `Some(None)` present without a value.
    pub client_max_window_bits: Option<Option<u8>>,
    /// `server_max_window_bits`: `None` absent, `Some(None)` present without a value.
    pub server_max_window_bits: Option<Option<u8>>,
}

impl DeflateItem {
    /// Parses one item (`permessage-deflate; params`).
    pub fn parse(item: &str) -> Result<DeflateItem, ExtensionError> {
        Self::parse_text(item).map_err(|why| ExtensionError::new(CloseCode::PROTOCOL_ERROR, why))
    }

    fn parse_text(item: &str) -> Result<DeflateItem, String> {
        let item = ExtensionItem::parse(item).ok_or_else(|| format!("malformed extension item {item:?}"))?;
        if !item.name.eq_ignore_ascii_case(NAME) {
            return Err(format!("expected {NAME}, got {:?}", item.name));
        }
        let mut params = DeflateItem::default();
        let mut seen = [false; 4];
        for (key, value) in &item.params {
            let index = [
                CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_MAX_WINDOW_BITS,
                SERVER_MAX_WINDOW_BITS,
            ]
            .iter()
            .position(|name| key.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown parameter {key:?}"))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("duplicated parameter {key:?}"));
            }
            let bits = || -> Result<Option<u8>, String> {
                match value {
                    None => Ok(None),
                    Some(v) => {
                        parse_bits(v).map(Some).ok_or_else(|| format!("invalid window bits {key}={v:?}"))
                    }
                }
            };
            match index {
                0 | 1 if value.is_some() => return Err(format!("{key} takes no value")),
                0 => params.client_no_context_takeover = true,
                1 => params.server_no_context_takeover = true,
                2 => params.client_max_window_bits = Some(bits()?),
                _ => params.server_max_window_bits = Some(bits()?),
            }
        }
        Ok(params)
    }
}

// The deflate accessors of the handshake events live here, with the parser they use, so
// the events know nothing of any extension.

impl crate::event::Request {
    /// The permessage-deflate offers among [`extensions`](Self::extensions), typed, in order
    /// (malformed ones skipped).
    pub fn deflate_offers(&self) -> Vec<DeflateItem> {
        self.extensions.iter().filter_map(|item| DeflateItem::parse(item).ok()).collect()
    }
}

impl crate::event::AcceptConnection {
    /// The agreed permessage-deflate parameters, typed, if the server agreed to it.
    pub fn deflate(&self) -> Option<DeflateItem> {
        self.extensions.iter().find_map(|item| DeflateItem::parse(item).ok())
    }
}

/// Hands a buffer out without keeping much unused capacity alive with it.
fn into_bytes(mut out: Vec<u8>) -> Bytes {
    if out.capacity() - out.len() > MAX_SPARE.max(out.len() / 8) {
        out.shrink_to_fit();
    }
    Bytes::from(out)
}

/// Ends a message's compressed data: the sync flush's `00 00 ff ff` tail is removed (RFC 7692
/// §7.2.1). When nothing was written since the last flush (an empty message, or an empty final
/// fragment) the flush produced no empty stored block: send the start of one, `00`, which the
/// receiver's `00 00 ff ff` completes (§7.2.3.6).
fn end_message(out: &mut Vec<u8>) {
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    } else if out.is_empty() {
        out.push(0x00);
    }
}

/// What makes two compressors interchangeable (a pooled one is reused only for the same key).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
struct CompressorKey {
    level: u32,
    bits: u8,
    mem_level: u8,
}

/// Our compressor: zlib-rs's safe `Deflate` used directly (rather than through flate2, whose
/// `Compress` cannot set the memory level), raw DEFLATE.
struct Compressor {
    key: CompressorKey,
    inner: Deflate,
}

impl Compressor {
    fn new(key: CompressorKey) -> Compressor {
        let config = DeflateConfig {
            level: i32::try_from(key.level).unwrap_or(6),
            // Negative: raw DEFLATE, no zlib header.
            window_bits: -i32::from(key.bits),
            mem_level: i32::from(key.mem_level),
            ..DeflateConfig::default()
        };
        Compressor { key, inner: Deflate::new_with_config(config) }
    }

    /// Makes `history` (at most one window, the last data the peer inflated from us) the
    /// context the next data may refer to.
    fn prime(&mut self, history: &[u8]) -> Result<(), ExtensionError> {
        self.inner
            .set_dictionary(history)
            .map(drop)
            .map_err(|_| ExtensionError::new(CloseCode::INTERNAL_ERROR, "priming the compressor failed"))
    }

    /// Compresses all of `data` into `out`, ending with a sync flush.
    fn compress_sync(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            // Safe code only: expose the spare capacity zeroed (cheap next to compressing).
            let start = out.len();
            out.resize(out.capacity(), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.compress(input, &mut out[start..], DeflateFlush::SyncFlush);
            let written = usize::try_from(self.inner.total_out() - out_before).unwrap_or(0);
            out.truncate(start + written);
            result.map_err(|_| ExtensionError::new(CloseCode::INTERNAL_ERROR, "compression failed"))?;
            let consumed = usize::try_from(self.inner.total_in() - in_before).unwrap_or(input.len());
            input = &input[consumed.min(input.len())..];
            // Done when all input is in and the flush did not run out of room.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// The last bytes of one direction's data, at most a window: what the peer's (or our)
/// LZ77 window holds, kept to prime the next message's compressor or inflater.
#[derive(Default)]
struct History(Vec<u8>);

impl History {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn as_slice(&self) -> &[u8] {
        &self.0
    }

    fn clear(&mut self) {
        // Free it: an idle connection should not keep a window it will not use.
        self.0 = Vec::new();
    }

    /// Appends `data`, keeping the last `limit` bytes; the capacity never exceeds `limit`.
    fn push(&mut self, data: &[u8], limit: usize) {
        let buf = &mut self.0;
        if data.len() >= limit {
            buf.clear();
            buf.reserve_exact(limit);
            buf.extend_from_slice(&data[data.len() - limit..]);
            return;
        }
        let total = buf.len() + data.len();
        if total > limit {
            let drop = total - limit;
            buf.copy_within(drop.., 0);
            buf.truncate(buf.len() - drop);
        }
        if buf.capacity() < buf.len() + data.len() {
            let want = (buf.len() + data.len()).max(buf.capacity() * 2).min(limit);
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(data);
    }
}

fn valid_bits(bits: u8) -> bool {
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits)
}

/// RFC 7692 §7.1.2: `1*DIGIT` without leading zero, 8..=15.
fn parse_bits(value: &str) -> Option<u8> {
    if value.is_empty()
        || value.len() > 2
        || value.starts_with('0')
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    value.parse().ok().filter(|&bits| valid_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bits_grammar() {
        assert_eq!(parse_bits("8"), Some(8));
        assert_eq!(parse_bits("15"), Some(15));
        for bad in ["", "7", "16", "08", "+9", "9 ", "1O", "255", "-9", "99999999999"] {
            assert_eq!(parse_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pool_is_explicit_and_shared() {
        let send = |ext: &mut PerMessageDeflate| {
            ext.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from_static(b"Hello"), true).unwrap();
        };
        // Without a pool, the connection keeps its own state (reset after each message).
        let mut alone = PerMessageDeflate::new().server_no_context_takeover(true);
        alone.accept("permessage-deflate").unwrap();
        send(&mut alone);
        assert_eq!(alone.state_allocated(), (true, false));
        send(&mut alone);
        assert_eq!(alone.state_allocated(), (true, false));

        // With one, it goes to the pool and the next message of any holder reuses it.
        let pool = DeflatePool::with_capacity(1);
        let mut a = PerMessageDeflate::new().server_no_context_takeover(true).pool(pool.clone());
        let mut b = PerMessageDeflate::new().server_no_context_takeover(true).pool(pool.clone());
        a.accept("permessage-deflate").unwrap();
        b.accept("permessage-deflate").unwrap();
        send(&mut a);
        assert_eq!(pool.len(), (1, 0));
        send(&mut b);
        send(&mut a);
        assert_eq!(pool.len(), (1, 0), "capacity 1: one state kept, reused by both");
        assert_eq!(a.state_allocated(), (false, false));
    }

    #[test]
    fn lazily_allocated() {
        let mut server = PerMessageDeflate::new().idle_state(IdleState::Live);
        server.accept("permessage-deflate").unwrap();
        assert_eq!(server.state_allocated(), (false, false));
        server.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from_static(b"Hello"), true).unwrap();
        assert_eq!(server.state_allocated(), (true, false));
    }

    /// A negotiated client/server pair with the given configurations.
    fn pair(client: PerMessageDeflate, server: PerMessageDeflate) -> (PerMessageDeflate, PerMessageDeflate) {
        let (mut client, mut server) = (client, server);
        let offer = client.offer().unwrap();
        let response = server.accept(&format!("permessage-deflate; {offer}")).unwrap();
        let response = if response.is_empty() { NAME.to_owned() } else { format!("{NAME}; {response}") };
        client.finalize(&response).unwrap();
        (client, server)
    }

    /// Sends one message from `tx` to `rx` in `fragments` frames; returns the compressed size
    /// and what `rx` delivered.
    fn transfer(
        tx: &mut PerMessageDeflate,
        rx: &mut PerMessageDeflate,
        data: &[u8],
        fragments: usize,
    ) -> (usize, Vec<u8>) {
        let role = rx.params().unwrap().role;
        let step = data.len().div_ceil(fragments.max(1)).max(1);
        let chunks: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(step).collect() };
        let (mut wire, mut out) = (0, Vec::new());
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { Opcode::Binary } else { Opcode::Continuation };
            let fin = i + 1 == chunks.len();
            let (rsv, payload) =
                tx.frame_outbound(opcode, Rsv::NONE, Bytes::copy_from_slice(chunk), fin).unwrap();
            wire += payload.len();
            rx.frame_inbound_header(role, opcode, rsv, payload.len() as u64).unwrap();
            out.extend_from_slice(&rx.frame_inbound_payload_data(payload, usize::MAX / 2).unwrap());
            if let Some(tail) = rx.frame_inbound_complete(fin, usize::MAX / 2).unwrap() {
                out.extend_from_slice(&tail);
            }
        }
        (wire, out)
    }

    /// Deterministic chat-like text: repeats from near and far back.
    fn chat(seed: u32, len: usize) -> Vec<u8> {
        let words =
            ["hello", "room", "general", "alice", "bob", "message", "typing", "ok", "lunch?", "deploy"];
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        let mut s = Vec::new();
        while s.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s.extend_from_slice(
                format!(
                    "{{\"user\":\"{}\",\"n\":{},\"text\":\"{} {}\"}}",
                    words[x as usize % 10],
                    x % 977,
                    words[(x >> 8) as usize % 10],
                    x % 31
                )
                .as_bytes(),
            );
        }
        s.truncate(len);
        s
    }

    #[test]
    fn every_memory_level_and_window_round_trips() {
        for mem_level in 1..=9 {
            for bits in [8, 9, 12, 15] {
                for idle in [IdleState::History, IdleState::Live] {
                    let (mut client, mut server) = pair(
                        PerMessageDeflate::new().idle_state(idle),
                        PerMessageDeflate::new()
                            .memory_level(mem_level)
                            .compress_window_bits(bits)
                            .idle_state(idle),
                    );
                    for (i, len) in [0, 1, 100, 5000, 70_000, 300].into_iter().enumerate() {
                        let data = chat(i as u32 + u32::from(mem_level), len);
                        let (_, got) = transfer(&mut server, &mut client, &data, 1 + i % 3);
                        assert!(
                            got == data,
                            "server -> client, memLevel {mem_level}, {bits} bits, {idle:?}, {len} B"
                        );
                        let (_, got) = transfer(&mut client, &mut server, &data, 2);
                        assert!(got == data, "client -> server, {idle:?}, {len} B");
                    }
                }
            }
        }
    }

    #[test]
    fn compressing_with_a_smaller_window_is_inflated_by_a_15_bit_peer() {
        // Negotiated: 15 bits both ways. The server silently compresses with 9.
        let (mut client, mut server) =
            pair(PerMessageDeflate::new(), PerMessageDeflate::new().compress_window_bits(9));
        assert_eq!(client.params().unwrap().server_max_window_bits, 15);
        let mut raw = Decompress::new_with_window_bits(false, 15);
        for i in 0..20 {
            let data = chat(i, 3000);
            let (rsv, payload) =
                server.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
            assert!(rsv.rsv1());
            // A plain 15-bit inflater (as any peer has) decodes it.
            let mut input = payload.to_vec();
            input.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(data.len() + 64);
            raw.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
            assert_eq!(out, data);
            // And so does the client, which negotiated 15.
            client.frame_inbound_header(ConnectionType::Client, Opcode::Text, rsv, 0).unwrap();
            let mut got = client.frame_inbound_payload_data(payload, usize::MAX / 2).unwrap().to_vec();
            got.extend_from_slice(
                &client.frame_inbound_complete(true, usize::MAX / 2).unwrap().unwrap_or_default(),
            );
            assert_eq!(got, data);
        }
        // The default on a server: 14 bits, whatever was negotiated; a client uses the
        // negotiated window.
        assert_eq!(server.compress_bits(server.params().unwrap()), 9);
        let (client, server) = pair(PerMessageDeflate::new(), PerMessageDeflate::new());
        assert_eq!(server.compress_bits(server.params().unwrap()), 14);
        assert_eq!(client.compress_bits(client.params().unwrap()), 15);
        let (client, server) =
            pair(PerMessageDeflate::new().server_max_window_bits(10), PerMessageDeflate::new());
        assert_eq!(server.compress_bits(server.params().unwrap()), 10, "a smaller negotiated window wins");
        assert_eq!(client.params().unwrap().inflate_window_bits(), 10);
    }

    #[test]
    fn history_keeps_the_context_and_releases_the_states() {
        let pool = DeflatePool::new();
        let (mut client, mut server) =
            pair(PerMessageDeflate::new().pool(pool.clone()), PerMessageDeflate::new().pool(pool));
        let data = chat(7, 2000);
        let (first, got) = transfer(&mut server, &mut client, &data, 1);
        assert_eq!(got, data);
        assert_eq!(server.state_allocated(), (false, false), "compressor released after the message");
        assert_eq!(client.state_allocated(), (false, false), "inflater released after the message");
        assert_eq!((server.tx_history.as_slice(), client.rx_history.as_slice()), (&data[..], &data[..]));
        // The same message again: the context was taken over, so it refers to the first.
        let (second, got) = transfer(&mut server, &mut client, &data, 1);
        assert_eq!(got, data);
        assert!(second * 10 < first, "second message {second} B, first {first} B");
        // Fragmented messages too, and the client's direction.
        for i in 0..10 {
            let data = chat(100 + i, 10_000);
            assert_eq!(transfer(&mut client, &mut server, &data, 3).1, data);
            assert_eq!(transfer(&mut server, &mut client, &data, 2).1, data);
        }
        // What is kept is bounded by the windows: 14 bits for the server's compressor, 15 for
        // the client's inflater, 15 both ways for the client's compressor and server's inflater.
        assert_eq!(server.tx_history.as_slice().len(), 1 << 14);
        assert!(server.tx_history.0.capacity() <= 1 << 14);
        assert_eq!(client.rx_history.as_slice().len(), 1 << 15);
        assert_eq!(server.rx_history.as_slice().len(), 1 << 15);
    }

    #[test]
    fn no_context_takeover_keeps_no_history() {
        let pool = DeflatePool::new();
        let (mut client, mut server) = pair(
            PerMessageDeflate::new()
                .client_no_context_takeover(true)
                .server_no_context_takeover(true)
                .pool(pool.clone()),
            PerMessageDeflate::new().pool(pool),
        );
        let data = chat(3, 5000);
        assert_eq!(transfer(&mut server, &mut client, &data, 1).1, data);
        assert_eq!(transfer(&mut client, &mut server, &data, 2).1, data);
        for side in [&client, &server] {
            assert_eq!(side.state_allocated(), (false, false));
            assert!(side.tx_history.is_empty() && side.rx_history.is_empty());
        }
    }

    #[test]
    fn a_server_that_only_receives_never_allocates_a_compressor() {
        for idle in [IdleState::History, IdleState::Live] {
            let (mut client, mut server) = pair(
                PerMessageDeflate::new(),
                PerMessageDeflate::new().idle_state(idle).pool(DeflatePool::new()),
            );
            for i in 0..3 {
                let data = chat(i, 1000);
                assert_eq!(transfer(&mut client, &mut server, &data, 1).1, data);
            }
            assert_eq!(server.state_allocated(), (false, idle == IdleState::Live), "{idle:?}");
            assert!(server.tx_history.is_empty());
        }
    }

    #[test]
    fn history_pooled_states_are_primed_per_connection() {
        // Two connections share one pool: a state released by one and taken by the other
        // must carry no context across (it is reset, then primed with the taker's history).
        let pool = DeflatePool::with_capacity(1);
        let mk = || PerMessageDeflate::new().pool(pool.clone());
        let (mut c1, mut s1) = pair(PerMessageDeflate::new(), mk());
        let (mut c2, mut s2) = pair(PerMessageDeflate::new(), mk());
        for i in 0..20 {
            let a = chat(i, 700);
            let b = chat(1000 + i, 900);
            assert_eq!(transfer(&mut s1, &mut c1, &a, 1).1, a);
            assert_eq!(transfer(&mut s2, &mut c2, &b, 1).1, b);
            assert_eq!(transfer(&mut c1, &mut s1, &b, 1).1, b);
            assert_eq!(transfer(&mut c2, &mut s2, &a, 2).1, a);
        }
        assert_eq!(pool.len(), (1, 1));
    }

    #[test]
    fn a_pooled_state_comes_back_to_its_owner_with_its_context() {
        // One connection with a pool: it takes back its own compressor and inflater untouched,
        // so it compresses exactly as if it had kept them (IdleState::Live).
        let pool = DeflatePool::new();
        let (mut c1, mut pooled) =
            pair(PerMessageDeflate::new(), PerMessageDeflate::new().pool(pool.clone()));
        let (mut c2, mut live) =
            pair(PerMessageDeflate::new(), PerMessageDeflate::new().idle_state(IdleState::Live));
        for i in 0..30 {
            let data = chat(i, 300 + 97 * i as usize);
            let a = pooled.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
            let b = live.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
            assert_eq!(a, b, "message {i}");
            assert_eq!(transfer(&mut c1, &mut pooled, &data, 2).1, data);
            assert_eq!(transfer(&mut c2, &mut live, &data, 2).1, data);
        }
        assert_eq!(pooled.state_allocated(), (false, false));
        assert_eq!(pool.len(), (1, 1));
    }

    #[test]
    fn pooled_states_interleaved_across_connections_keep_each_context() {
        // More connections than the pool holds, in an irregular order: states are taken back
        // by their owner, taken by others (reset and primed), or evicted.
        for capacity in [0, 1, 2, 3, 8] {
            let pool = DeflatePool::with_capacity(capacity);
            let mut conns: Vec<_> = (0..5)
                .map(|i| {
                    let server = PerMessageDeflate::new().pool(pool.clone());
                    let server = if i == 4 { server.server_no_context_takeover(true) } else { server };
                    pair(PerMessageDeflate::new().pool(pool.clone()), server)
                })
                .collect();
            let mut x = 12345u32;
            for step in 0..200u32 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let (client, server) = &mut conns[(x >> 16) as usize % 5];
                let data = chat(step, 50 + (x >> 8) as usize % 3000);
                if x & 1 == 0 {
                    assert_eq!(
                        transfer(server, client, &data, 1 + step as usize % 2).1,
                        data,
                        "cap {capacity}"
                    );
                } else {
                    assert_eq!(transfer(client, server, &data, 1).1, data, "cap {capacity}");
                }
            }
            assert!(pool.len().0 <= capacity && pool.len().1 <= capacity);
        }
    }

    #[test]
    fn history_keeps_the_last_window() {
        let mut h = History::default();
        h.push(b"abc", 8);
        h.push(b"defgh", 8);
        assert_eq!(h.as_slice(), b"abcdefgh");
        h.push(b"ij", 8);
        assert_eq!(h.as_slice(), b"cdefghij");
        h.push(b"0123456789", 8);
        assert_eq!(h.as_slice(), b"23456789");
        assert!(h.0.capacity() <= 8);
        h.clear();
        assert!(h.is_empty() && h.0.capacity() == 0);
    }
}

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
/// the oldest: with the default of 4 and 15-bit windows, about 1.5 MB of compressors. It is
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

struct PoolInner {
    capacity: usize,
    /// Compressors (each knows its level, window bits and memory level), oldest first.
    compressors: Mutex<Vec<Pooled<Compressor>>>,
    /// Inflaters, by window bits, oldest first.
    decompressors: Mutex<Vec<Pooled<(u8, Decompress)>>>,
    /// The next owner tag handed out ([`DeflatePool::next_tag`]).
    next_tag: AtomicU64,
}

/// The tag of a connection that gave no state with its context in it yet.
const NO_TAG: u64 = 0;

impl Default for DeflatePool {
    fn default() -> Self {
        DeflatePool::with_capacity(4)
    }
}

impl DeflatePool {
    /// A pool keeping at most 4 states of each kind.
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
    fn next_tag(&self) -> u64 {
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
    fn take_compressor(&self, key: CompressorKey, owner: Option<u64>) -> Option<(Compressor, bool)> {
        let (mut compressor, ours) = take(&self.0.compressors, owner, |c| c.key == key)?;
        if !ours {
            compressor.reset();
        }
        Some((compressor, ours))
    }

    /// Keeps `compressor` for reuse: reset later by whoever takes it, unless `owner` takes it
    /// back first.
    fn give_compressor(&self, compressor: Compressor, owner: Option<u64>) {
        give(&self.0.compressors, self.0.capacity, compressor, owner);
    }

    fn take_decompressor(&self, bits: u8, owner: Option<u64>) -> Option<(Decompress, bool)> {
        let ((_, mut decompressor), ours) = take(&self.0.decompressors, owner, |(b, _)| *b == bits)?;
        if !ours {
            decompressor.reset(false);
        }
        Some((decompressor, ours))
    }

    fn give_decompressor(&self, bits: u8, decompressor: Decompress, owner: Option<u64>) {
        give(&self.0.decompressors, self.0.capacity, (bits, decompressor), owner);
    }
}

/// A state in a pool, with the connection whose context it still holds, if any.
struct Pooled<T> {
    owner: Option<u64>,
    state: T,
}

/// Takes `owner`'s own matching state (`true`), else the oldest matching one not tagged with
/// `owner` (`false`, to be reset by the caller).
fn take<T>(list: &Mutex<Vec<Pooled<T>>>, owner: Option<u64>, fits: impl Fn(&T) -> bool) -> Option<(T, bool)> {
    let mut list = lock(list);
    if let Some(i) = owner.and_then(|o| list.iter().position(|p| p.owner == Some(o) && fits(&p.state))) {
        return Some((list.remove(i).state, true));
    }
    let i = list.iter().position(|p| fits(&p.state))?;
    Some((list.remove(i).state, false))
}

/// Adds a state (newest last); a full pool drops its oldest.
fn give<T>(list: &Mutex<Vec<Pooled<T>>>, capacity: usize, state: T, owner: Option<u64>) {
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
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ===== prepared messages =====

impl CompressorKey {
    /// The key as the `u64` of [`SharedFraming::Encoded`]: level, window bits, memory level.
    fn pack(self) -> u64 {
        u64::from(self.level) | u64::from(self.bits) << 32 | u64::from(self.mem_level) << 40
    }

    /// The key [`pack`](Self::pack) made, or `None` for another value.
    fn unpack(key: u64) -> Option<Self> {
        let found =
            CompressorKey { level: key as u32, bits: (key >> 32) as u8, mem_level: (key >> 40) as u8 };
        (found.pack() == key).then_some(found)
    }
}

impl PerMessageDeflate {
    /// See [`Extension::shared_framing`]: below the threshold a message is sent as it is;
    /// compressed from a fresh context (no context takeover for our direction), it depends
    /// only on the message and the compressor's settings; with context takeover it is this
    /// connection's own.
    fn shared(&self, len: usize) -> SharedFraming {
        let Some(params) = self.params else { return SharedFraming::Untouched };
        if len < self.settings.threshold {
            return SharedFraming::Untouched;
        }
        if !params.compress_no_context_takeover() {
            return SharedFraming::PerConnection;
        }
        SharedFraming::Encoded(self.compressor_key(params).pack())
    }

    /// See [`Extension::encode_shared`]: the message compressed from a fresh context (a
    /// compressor from the pool, or a new one), as [`shared`](Self::shared)'s key says.
    fn encode_whole(&self, key: u64, data: &[u8]) -> Result<(Rsv, Bytes), ExtensionError> {
        let key = CompressorKey::unpack(key).ok_or_else(|| {
            ExtensionError::new(CloseCode::INTERNAL_ERROR, "not a permessage-deflate sharing key")
        })?;
        let pool = self.pool.as_ref();
        let (mut compressor, _) = pool
            .and_then(|pool| pool.take_compressor(key, None))
            .unwrap_or_else(|| (Compressor::new(key), false));
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        compressor.compress_sync(data, &mut out)?;
        end_message(&mut out);
        if let Some(pool) = pool {
            pool.give_compressor(compressor, None);
        }
        Ok((Rsv::RSV1, into_bytes(out)))
    }
}
