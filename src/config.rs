//! Limits and per-connection settings.

use crate::mask::KeySource;

/// Default largest frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
/// Default largest message (after decompression, across fragments): 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Default largest HTTP head during the opening handshake: 16 KiB.
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 16 << 10;
/// Default least chunk of a partially received frame: 16 KiB.
pub const DEFAULT_MIN_CHUNK_SIZE: usize = 16 << 10;

/// Settings of a connection: limits, delivery mode and the masking-key source.
///
/// Every limit is on by default. Exceeding the frame or message limit closes the connection
/// with 1009 (message too big); exceeding the handshake limit rejects it with 431.
///
/// ```
/// use wsproto::Config;
/// let config = Config::default().max_message_size(1 << 20).max_frame_size(64 << 10);
/// assert_eq!(config.limits().max_message_size, 1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    limits: Limits,
    partial_frames: bool,
    min_chunk_size: usize,
    key_source: KeySource,
}

/// The size limits of a [`Config`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Largest payload of one frame, on the wire.
    pub max_frame_size: usize,
    /// Largest message, summed over its fragments, after decompression.
    pub max_message_size: usize,
    /// Largest HTTP request or response head.
    pub max_handshake_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
        }
    }
}

impl Limits {
    /// No frame or message limit (the handshake limit stays).
    ///
    /// Dangerous with untrusted peers: they can then make a whole-message consumer buffer
    /// without bound, or make you inflate a compression bomb. Only for trusted peers, or when
    /// you consume streamed chunks and enforce your own limits.
    pub fn unlimited() -> Self {
        Limits { max_frame_size: usize::MAX, max_message_size: usize::MAX, ..Limits::default() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            partial_frames: true,
            min_chunk_size: DEFAULT_MIN_CHUNK_SIZE,
            key_source: KeySource::default(),
        }
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest frame payload accepted from the peer.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.limits.max_frame_size = bytes;
        self
    }

    /// Sets the largest message accepted from the peer (after decompression).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.limits.max_message_size = bytes;
        self
    }

    /// Sets the largest HTTP head accepted during the opening handshake.
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.limits.max_handshake_size = bytes;
        self
    }

    /// Replaces all limits at once, e.g. with [`Limits::unlimited`].
    pub fn limits_set(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether data frames are delivered in chunks as their bytes arrive (`true`, the default,
    /// as in python wsproto: memory per frame stays bounded by about
    /// [`min_chunk_size`](Self::min_chunk_size) plus one read), or only once the whole frame is
    /// buffered (`false`: one event per frame, bounded by the frame limit).
    ///
    /// Either way, text is validated as bytes arrive, so invalid UTF-8 fails the connection at
    /// the first impossible byte.
    pub fn partial_frames(mut self, enabled: bool) -> Self {
        self.partial_frames = enabled;
        self
    }

    /// With [`partial_frames`](Self::partial_frames) on, the least payload of a frame still
    /// arriving that is delivered as a chunk (default 16 KiB). A frame no larger than this, and
    /// the last part of any frame, is delivered once complete, so small messages are one event
    /// however the transport splits them, and a large frame arrives in chunks of at least this
    /// size rather than one per read. `1` delivers every byte as soon as it arrives, as python
    /// wsproto does. Memory per frame in progress stays bounded by about this size plus one read.
    pub fn min_chunk_size(mut self, bytes: usize) -> Self {
        self.min_chunk_size = bytes.max(1);
        self
    }

    /// Sets where masking keys and handshake nonces come from (see [`KeySource`]).
    pub fn key_source(mut self, source: KeySource) -> Self {
        self.key_source = source;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether partial frames are delivered.
    pub fn delivers_partial_frames(&self) -> bool {
        self.partial_frames
    }

    /// The least partial-frame chunk delivered (see [`min_chunk_size`](Self::min_chunk_size)).
    pub fn min_chunk(&self) -> usize {
        self.min_chunk_size
    }

    pub(crate) fn keys(&self) -> &KeySource {
        &self.key_source
    }
}
