//! A message-level view of events, shared by the tests and the fuzz targets
//! (`fuzz/src/lib.rs` includes this file).

use std::borrow::Borrow;

use wsproto::Event;

/// A message-level view of events: data chunks of one message joined (also across control
/// events between its fragments), so that any chunking of the same bytes compares equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Norm {
    /// A text message and whether it finished.
    Text(String, bool),
    /// A binary message and whether it finished.
    Binary(Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close: its code and reason.
    Close(u16, Option<String>),
    /// Any other event, by name.
    Other(&'static str),
}

/// Joins the data chunks of each message.
pub fn normalize<E: Borrow<Event>>(events: impl IntoIterator<Item = E>) -> Vec<Norm> {
    let mut out: Vec<Norm> = Vec::new();
    // Index in `out` of the message still being received.
    let mut open: Option<usize> = None;
    for ev in events {
        match ev.borrow() {
            Event::TextMessage(m) => {
                if let Some(Norm::Text(s, fin)) = open.and_then(|i| out.get_mut(i)) {
                    s.push_str(&m.data);
                    *fin = m.message_finished;
                } else {
                    out.push(Norm::Text(m.data.to_string(), m.message_finished));
                    open = Some(out.len() - 1);
                }
                if m.message_finished {
                    open = None;
                }
            }
            Event::BytesMessage(m) => {
                if let Some(Norm::Binary(b, fin)) = open.and_then(|i| out.get_mut(i)) {
                    b.extend_from_slice(&m.data);
                    *fin = m.message_finished;
                } else {
                    out.push(Norm::Binary(m.data.to_vec(), m.message_finished));
                    open = Some(out.len() - 1);
                }
                if m.message_finished {
                    open = None;
                }
            }
            Event::Ping(p) => out.push(Norm::Ping(p.payload.to_vec())),
            Event::Pong(p) => out.push(Norm::Pong(p.payload.to_vec())),
            Event::CloseConnection(c) => out.push(Norm::Close(c.code.0, c.reason.clone())),
            other => out.push(Norm::Other(other.name())),
        }
    }
    out
}
