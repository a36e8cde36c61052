//! Limits, delivery and the masking-key source of a connection.

use crate::wire::mask::KeySource;

/// Settings of a connection: limits, delivery and the masking-key source.
///
/// The fields are public to read (and to set); the builder methods of the same names set them
/// in a chain. Every limit is on by default. Exceeding the frame or message limit closes the
/// connection with 1009 (message too big); exceeding the handshake limit rejects it with 431.
///
/// ```
/// use wsproto::{Config, Delivery};
/// let config = Config::default().max_message_size(1 << 20).max_frame_size(64 << 10).delivery(Delivery::Messages);
/// assert_eq!(config.limits.max_message_size, 1 << 20);
/// assert_eq!(config.delivery, Some(Delivery::Messages));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Config {
    /// Size limits on what the peer sends.
    pub limits: Limits,
    /// How received data is delivered; `None` leaves it to the driver: data as it arrives
    /// ([`Delivery::DEFAULT_CHUNKS`]) for a [`Connection`](crate::Connection) or
    /// [`WsConnection`](crate::WsConnection), whole messages for the tokio upgrade helper.
    pub delivery: Option<Delivery>,
    /// Where masking keys and handshake nonces come from.
    pub key_source: KeySource,
}

/// How received data messages are delivered as events.
///
/// Control frames (ping, pong, close) are always delivered whole and as soon as they arrive,
/// also between the fragments of a message. Text is validated as its bytes arrive in every
/// mode, so invalid UTF-8 fails the connection at the first impossible byte.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Delivery {
    /// Data as it arrives, python wsproto's way: each event is a chunk of a frame
    /// (`frame_finished`, `message_finished` say where it ends), so memory per message stays
    /// bounded by about `min_size` plus one read whatever the message size. A frame still
    /// arriving is delivered in chunks of at least `min_size` bytes, and a frame no larger than
    /// that is one event however the transport splits it; `min_size: 1` hands out every byte
    /// at once.
    Chunks {
        /// The least payload of a frame still arriving that is delivered as a chunk.
        min_size: usize,
    },
    /// One event per frame, once it is complete (bounded by the frame limit).
    Frames,
    /// One event per message, once it is complete (bounded by the message limit): what most
    /// applications and every other WebSocket library deliver.
    Messages,
}

impl Delivery {
    /// Chunks of at least 16 KiB: the core's default.
    pub const DEFAULT_CHUNKS: Delivery = Delivery::Chunks { min_size: 16 << 10 };

    /// The least chunk of a frame still arriving, in chunk delivery.
    pub(crate) fn min_chunk_size(self) -> Option<usize> {
        match self {
            Delivery::Chunks { min_size } => Some(min_size.max(1)),
            Delivery::Frames | Delivery::Messages => None,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery::DEFAULT_CHUNKS
    }
}

/// The size limits of a [`Config`].
///
/// | limit | counts | default | when exceeded |
/// |-------|--------|---------|---------------|
/// | `max_frame_size` | the payload of one frame on the wire; a compressed frame may exceed it by what DEFLATE adds to incompressible data (at most 1/64 + 1 KiB), so a frame within the limit uncompressed is never refused because the peer compressed it | 16 MiB | close 1009, before the payload is read |
/// | `max_message_size` | a whole message, summed over its fragments, after decompression | 64 MiB | close 1009; inflating stops at the limit |
/// | `max_fragments` | the frames of one message, the first included; caps what a peer can make us parse for one message with empty continuation frames. The default is twice what Autobahn's largest fragmented case (4 MiB in 64 B frames) and a message at `max_message_size` in 1 KiB frames need | 131,072 | close 1009 |
/// | `max_handshake_size` | the HTTP head of the upgrade request or response | 16 KiB | rejection 431 |
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest payload of one frame (see the table for compressed frames).
    pub max_frame_size: usize,
    /// Largest message, summed over its fragments, after decompression.
    pub max_message_size: usize,
    /// Most frames in one message, the first included (a message always has its first frame:
    /// 0 acts as 1).
    pub max_fragments: usize,
    /// Largest HTTP request or response head.
    pub max_handshake_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: Limits::DEFAULT_MAX_FRAME_SIZE,
            max_message_size: Limits::DEFAULT_MAX_MESSAGE_SIZE,
            max_fragments: Limits::DEFAULT_MAX_FRAGMENTS,
            max_handshake_size: Limits::DEFAULT_MAX_HANDSHAKE_SIZE,
        }
    }
}

impl Limits {
    /// Default largest frame payload: 16 MiB.
    pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
    /// Default largest message (after decompression, across fragments): 64 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
    /// Default most frames in one message: 131,072 (2^17).
    pub const DEFAULT_MAX_FRAGMENTS: usize = 1 << 17;
    /// Default largest HTTP head during the opening handshake: 16 KiB.
    pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 16 << 10;

    /// No frame, message or fragment limit (the handshake limit stays, and so does the bound on
    /// what a server buffers between a client's request and its answer: 16 MiB and a frame
    /// header).
    ///
    /// Dangerous with untrusted peers: they can then make a whole-message consumer buffer
    /// without bound, or make you inflate a compression bomb. Only for trusted peers, or when
    /// you consume chunks as they arrive and enforce your own limits.
    pub fn unlimited() -> Self {
        Limits {
            max_frame_size: usize::MAX,
            max_message_size: usize::MAX,
            max_fragments: usize::MAX,
            ..Limits::default()
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

    /// Sets the most frames one message may have (see [`Limits`]).
    pub fn max_fragments(mut self, frames: usize) -> Self {
        self.limits.max_fragments = frames;
        self
    }

    /// Sets the largest HTTP head accepted during the opening handshake.
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.limits.max_handshake_size = bytes;
        self
    }

    /// Replaces all limits at once, e.g. with [`Limits::unlimited`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how received data is delivered (see [`Delivery`]).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// Sets where masking keys and handshake nonces come from (see [`KeySource`]).
    pub fn key_source(mut self, source: KeySource) -> Self {
        self.key_source = source;
        self
    }

    /// The delivery in force: the configured one, else `default`.
    pub(crate) fn delivery_or(&self, default: Delivery) -> Delivery {
        self.delivery.unwrap_or(default)
    }
}
