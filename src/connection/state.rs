//! The connection's state machine after the handshake: every state and every transition.
//!
//! [`StateMachine`] is the only code that changes a connection's state (h11's "rule 1",
//! quinn-proto's owned state): the [`Connection`](crate::Connection) reports what happened
//! (an event sent, a close frame or a violation received, EOF) and asks what is allowed. The
//! opening handshake has its own phases, in [`Handshake`](crate::handshake::Handshake).
//!
//! ```text
//!   OPEN ──send Close──▶ LOCAL_CLOSING ──receive Close──▶ CLOSED
//!     │                       └──peer violation (we fail)──▶ CLOSED
//!     ├──receive Close──▶ REMOTE_CLOSING ──send Close──▶ CLOSED
//!     └──peer violation──▶ REMOTE_CLOSING (reply with the failure's close frame)
//!
//!   any state ──EOF──▶ CLOSED (1006 reported unless a close was already reported)
//! ```
//!
//! | state          | may send                                   | received bytes |
//! |----------------|--------------------------------------------|----------------|
//! | OPEN           | Text, Bytes, Ping, Pong, Close             | parsed         |
//! | LOCAL_CLOSING  | nothing                                    | parsed         |
//! | REMOTE_CLOSING | Close                                      | ignored        |
//! | CLOSED         | nothing                                    | refused (ignored after EOF) |
//!
//! Once a close frame or a violation has been reported nothing more is parsed, whatever the
//! state: the rest of the input is dropped.

/// Where a connection is in its life (RFC 6455 §4 naming, as python wsproto).
// Exhaustive by decision: the RFC's states; a new one would be a new protocol.
#[allow(clippy::exhaustive_enums)]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ConnectionState {
    /// The opening handshake is in progress.
    Connecting,
    /// Handshake complete; messages flow both ways.
    Open,
    /// The peer sent Close; we have not answered yet.
    RemoteClosing,
    /// We sent Close; waiting for the peer's.
    LocalClosing,
    /// Closing handshake complete, transport gone, or rejection finished.
    Closed,
    /// The handshake is being rejected with an HTTP response whose body is still flowing.
    Rejecting,
}

/// What the caller wants to send, as far as the state machine cares.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum SendKind {
    Data,
    Ping,
    Pong,
    Close,
}

impl SendKind {
    /// What sending `event` is to the state machine; `None` for events that are not sent after
    /// the handshake (handshake events).
    pub(crate) fn of(event: &crate::event::Event) -> Option<SendKind> {
        use crate::event::Event;
        match event {
            Event::TextMessage(_) | Event::BytesMessage(_) | Event::PreparedMessage(_) => {
                Some(SendKind::Data)
            }
            Event::Ping(_) => Some(SendKind::Ping),
            Event::Pong(_) => Some(SendKind::Pong),
            Event::CloseConnection(_) => Some(SendKind::Close),
            _ => None,
        }
    }
}

impl ConnectionState {
    /// Whether `kind` may be sent in this state (the one send table, below).
    #[inline]
    pub(crate) fn may_send(self, kind: SendKind) -> bool {
        after_send(self, kind).is_some()
    }
}

/// What to do with bytes the transport delivered.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Input {
    /// Buffer them for parsing.
    Parse,
    /// Drop them: the peer closed, or a close or violation was already reported.
    Ignore,
    /// Misuse: the connection is closed.
    Refuse,
}

/// A connection's state after the handshake, with the side conditions that decide what
/// happens to input.
#[derive(Clone, Debug)]
pub(crate) struct StateMachine {
    state: ConnectionState,
    /// A close frame or a violation was reported: nothing more is parsed.
    reading_done: bool,
    /// The transport reported EOF.
    eof: bool,
}

impl StateMachine {
    /// A connection whose handshake just completed.
    pub(crate) fn open() -> Self {
        StateMachine { state: ConnectionState::Open, reading_done: false, eof: false }
    }

    /// The current state.
    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    /// What to do with bytes received now.
    pub(crate) fn input(&self) -> Input {
        use ConnectionState::*;
        match self.state {
            Open | LocalClosing if !self.reading_done => Input::Parse,
            Open | LocalClosing | RemoteClosing => Input::Ignore,
            Closed | Connecting | Rejecting if self.eof => Input::Ignore,
            Closed | Connecting | Rejecting => Input::Refuse,
        }
    }

    /// Whether buffered bytes are parsed.
    #[inline]
    pub(crate) fn parsing(&self) -> bool {
        self.input() == Input::Parse
    }

    /// Whether `kind` may be sent now.
    #[inline]
    pub(crate) fn may_send(&self, kind: SendKind) -> bool {
        self.state.may_send(kind)
    }

    /// `kind` was sent (after [`may_send`](Self::may_send) allowed it).
    #[inline]
    pub(crate) fn sent(&mut self, kind: SendKind) {
        if let Some(next) = after_send(self.state, kind) {
            self.state = next;
        }
    }

    /// The peer's close frame was received. Returns whether our close reply is owed (it is
    /// not when the peer's frame answers ours).
    pub(crate) fn received_close(&mut self) -> bool {
        let reply_owed = self.state == ConnectionState::Open;
        self.reading_done = true;
        self.state = match self.state {
            ConnectionState::Open => ConnectionState::RemoteClosing,
            ConnectionState::LocalClosing => ConnectionState::Closed,
            other => other,
        };
        reply_owed
    }

    /// We fail the connection because of a peer violation. Returns whether our close frame
    /// is owed (it is not when we had already sent one).
    ///
    /// Answering the failure must complete the close (python wsproto left the connection stuck
    /// in LOCAL_CLOSING after a violation): from OPEN we behave as if the peer had closed, so
    /// our close frame moves to CLOSED; if we had already sent Close, there is nothing left to
    /// wait for.
    pub(crate) fn failed(&mut self) -> bool {
        // The same moves as a received close.
        self.received_close()
    }

    /// The transport reached EOF.
    pub(crate) fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// After EOF, once buffered frames are delivered: moves to CLOSED and returns whether the
    /// abnormal closure (1006) must be reported, which it is unless a close was already
    /// reported (RFC 6455 §7.1.5).
    pub(crate) fn close_at_eof(&mut self) -> bool {
        if !self.eof || self.state == ConnectionState::Closed {
            return false;
        }
        self.state = ConnectionState::Closed;
        !std::mem::replace(&mut self.reading_done, true)
    }
}

/// The state after sending `kind` in `state`, or `None` if that send is not allowed.
fn after_send(state: ConnectionState, kind: SendKind) -> Option<ConnectionState> {
    use ConnectionState::*;
    match (state, kind) {
        (Open, SendKind::Data | SendKind::Ping | SendKind::Pong) => Some(Open),
        (Open, SendKind::Close) => Some(LocalClosing),
        (RemoteClosing, SendKind::Close) => Some(Closed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionState::*;
    use super::*;

    #[test]
    fn send_table() {
        let kinds = [SendKind::Data, SendKind::Ping, SendKind::Pong, SendKind::Close];
        for state in [Connecting, Open, RemoteClosing, LocalClosing, Closed, Rejecting] {
            for kind in kinds {
                let expected = match (state, kind) {
                    (Open, SendKind::Close) => Some(LocalClosing),
                    (Open, _) => Some(Open),
                    (RemoteClosing, SendKind::Close) => Some(Closed),
                    _ => None,
                };
                assert_eq!(after_send(state, kind), expected, "{state:?} {kind:?}");
            }
        }
    }

    #[test]
    fn close_sequences() {
        // The peer closes first: our reply is owed and completes the close.
        let mut sm = StateMachine::open();
        assert!(sm.received_close());
        assert_eq!((sm.state(), sm.input()), (RemoteClosing, Input::Ignore));
        assert!(sm.may_send(SendKind::Close) && !sm.may_send(SendKind::Data));
        sm.sent(SendKind::Close);
        assert_eq!((sm.state(), sm.input()), (Closed, Input::Refuse));

        // We close first: the peer's close answers ours.
        let mut sm = StateMachine::open();
        sm.sent(SendKind::Close);
        assert_eq!((sm.state(), sm.input()), (LocalClosing, Input::Parse));
        assert!(!sm.received_close());
        assert_eq!(sm.state(), Closed);

        // A violation after our close: nothing owed, closed.
        let mut sm = StateMachine::open();
        sm.sent(SendKind::Close);
        assert!(!sm.failed());
        assert_eq!(sm.state(), Closed);
    }

    #[test]
    fn eof_reports_1006_once_unless_a_close_was_reported() {
        let mut sm = StateMachine::open();
        assert!(!sm.close_at_eof(), "no EOF yet");
        sm.receive_eof();
        assert!(sm.close_at_eof());
        assert!(!sm.close_at_eof(), "reported once");
        assert_eq!((sm.state(), sm.input()), (Closed, Input::Ignore));

        let mut sm = StateMachine::open();
        sm.received_close();
        sm.receive_eof();
        assert!(!sm.close_at_eof(), "the peer's close was reported");
        assert_eq!(sm.state(), Closed);
    }
}
