//! Traffic counters: what a connection has received and sent.

use crate::event::Event;

/// What a [`Connection`](crate::Connection) has received and sent so far: plain counters,
/// read with [`Connection::traffic`](crate::Connection::traffic) (or, with the round trip and
/// the write buffer, `session::Session::stats` with the `tokio` feature).
///
/// Wire bytes are every byte of every frame (headers, masks and control frames included), as
/// parsed or produced by the connection; payload bytes are the text and binary data the
/// application received or gave to send, after decompression and before compression. With
/// permessage-deflate, [`sent_wire_per_payload`](Self::sent_wire_per_payload) is the
/// compression ratio as the network sees it.
///
/// ```
/// use wsproto::{Config, Connection, ConnectionType, TextMessage};
///
/// let mut server = Connection::new(ConnectionType::Server, Config::default());
/// let frame = server.send_bytes(TextMessage::new("Hello"))?;
/// let traffic = server.traffic();
/// assert_eq!((traffic.messages_sent, traffic.payload_sent, traffic.bytes_sent), (1, 5, 7));
/// assert_eq!(frame.len(), 7);
/// # Ok::<(), wsproto::LocalProtocolError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Whole text and binary messages received (the last frame of each).
    pub messages_received: u64,
    /// Whole text and binary messages sent (prepared messages included).
    pub messages_sent: u64,
    /// Bytes parsed from the transport.
    pub bytes_received: u64,
    /// Bytes produced for the transport.
    pub bytes_sent: u64,
    /// Text and binary payload delivered to the application (decompressed).
    pub payload_received: u64,
    /// Text and binary payload the application sent (before compression).
    pub payload_sent: u64,
}

impl Traffic {
    /// Wire bytes received per payload byte delivered (`None` before any payload): below 1.0
    /// when the peer compresses well; framing and control frames count as wire bytes.
    pub fn received_wire_per_payload(&self) -> Option<f64> {
        ratio(self.bytes_received, self.payload_received)
    }

    /// Wire bytes sent per payload byte sent (`None` before any payload).
    pub fn sent_wire_per_payload(&self) -> Option<f64> {
        ratio(self.bytes_sent, self.payload_sent)
    }

    /// Counts `wire` bytes parsed and the `event` they produced, if any.
    #[inline]
    pub(crate) fn received(&mut self, wire: usize, event: Option<&Event>) {
        self.bytes_received += wire as u64;
        if let Some((payload, finished)) = event.and_then(message_part) {
            self.payload_received += payload as u64;
            self.messages_received += u64::from(finished);
        }
    }

    /// Counts `wire` bytes produced for a send of the [`message_part`] `part`.
    #[inline]
    pub(crate) fn sent(&mut self, wire: usize, part: Option<(usize, bool)>) {
        self.bytes_sent += wire as u64;
        if let Some((payload, finished)) = part {
            self.payload_sent += payload as u64;
            self.messages_sent += u64::from(finished);
        }
    }
}

/// The payload length of a text, binary or prepared message (part), and whether it ends the
/// message; `None` for control events.
#[inline]
pub(crate) fn message_part(event: &Event) -> Option<(usize, bool)> {
    match event {
        Event::TextMessage(m) => Some((m.data.len(), m.message_finished)),
        Event::BytesMessage(m) => Some((m.data.len(), m.message_finished)),
        Event::PreparedMessage(m) => Some((m.len(), true)),
        _ => None,
    }
}

fn ratio(wire: u64, payload: u64) -> Option<f64> {
    (payload > 0).then(|| wire as f64 / payload as f64)
}
