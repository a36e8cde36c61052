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

use crate::error::ExtensionError;
use crate::extensions::{Extension, SharedFraming};
use crate::frame::{Opcode, Rsv};
use crate::role::ConnectionType;
use crate::wire::close::CloseCode;
use crate::wire::headers::ExtensionItem;

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

mod engine;
mod negotiate;
mod pool;
#[cfg(test)]
mod tests;

use engine::{Compressor, CompressorKey, History};
use negotiate::valid_bits;
pub use negotiate::{DeflateItem, DeflateParams};
pub use pool::DeflatePool;
use pool::NO_TAG;

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
/// uncompressed (RSV1 clear). Data that does not compress (random bytes, media, archives) is not
/// deflated byte by byte, which costs zlib 20-30 times what text does: a frame longer than 32
/// KiB is deflated a 32 KiB probe at a time, and after a probe that saves less than a sixteenth
/// the data that follows (64 KiB, doubling up to 1 MiB while the probes keep failing) goes out
/// as stored DEFLATE blocks, a copy any inflater reads; the compressor keeps the same window as
/// the receiver, so later data still refers back to it. A megabyte of random bytes encodes
/// about 8 times faster than when deflated whole, and takes its size plus a few bytes per 64
/// KiB on the wire, as it would deflated. Inflating is streaming and bounded: each received chunk is
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
/// The connection's codec buffers come on top: a 1 KiB read buffer on a quiet connection and
/// no write buffer; after a burst, up to 128 KiB of read-ahead stays reserved until a
/// session's timer finds the connection quiet and releases it (`SECURITY.md`).
///
/// # Choosing
///
/// `History` trades CPU for memory: a message on a connection whose state was released
/// costs a state (allocated, or reset from a pool) and the priming, which for the compressor
/// means hashing up to a window of data, a few to a few tens of microseconds. Give the
/// connections of a server a shared [`DeflatePool`]: a connection then takes back its own
/// state untouched when no other connection took it in between, so busy connections (up to
/// the pool's capacity, 16 by default, busy at the same time) cost what `Live` costs, and
/// idle ones keep only their history. Without a pool a connection keeps
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

    /// Default settings: context takeover in both directions, 15-bit windows negotiated (the
    /// client lets the server choose its window), a server compressing with at most 14 bits
    /// unless [`compress_window_bits`](Self::compress_window_bits) says otherwise, the default
    /// compression level, every message compressed.
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

    /// Client: ask the server to reset its compression context after each message, so we can
    /// drop our inflater between messages (the handshake fails if the server accepts
    /// permessage-deflate without it; a server that declines the offer leaves the connection
    /// uncompressed).
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

    /// Client: ask the server to compress with at most `bits`; we inflate with that window (the
    /// handshake fails if the server accepts permessage-deflate without agreeing; a server that
    /// declines the offer leaves the connection uncompressed).
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
