//! Connection states and every transition between them.
//!
//! Every transition of an established connection lives in this file (h11's "rule 1"): the
//! rest of the crate asks these functions whether an action is allowed and what state follows.
//! The opening-handshake phase (CONNECTING, REJECTING) is driven by
//! [`Handshake`](crate::handshake::Handshake), whose documentation lists its transitions.
//!
//! ```text
//!                     handshake (WsConnection only)
//!   CONNECTING ──send/receive 101──▶ OPEN
//!       │  └─reject with body──▶ REJECTING ──last RejectData──▶ CLOSED
//!       └────reject, no body──────────────────────────────────▶ CLOSED
//!
//!   OPEN ──send Close──▶ LOCAL_CLOSING ──receive Close──▶ CLOSED
//!     │                       └──peer violation (we fail)──▶ CLOSED
//!     ├──receive Close──▶ REMOTE_CLOSING ──send Close──▶ CLOSED
//!     └──peer violation──▶ REMOTE_CLOSING (reply with the failure's response())
//!
//!   any state ──EOF──▶ CLOSED (1006 reported unless a close was already reported)
//! ```
//!
//! | state          | may send                                   | received bytes |
//! |----------------|--------------------------------------------|----------------|
//! | OPEN           | Text, Bytes, Ping, Pong, Close             | parsed         |
//! | LOCAL_CLOSING  | nothing                                    | parsed         |
//! | REMOTE_CLOSING | Close                                      | ignored        |
//! | CLOSED         | nothing                                    | refused        |

/// Where a connection is in its life (RFC 6455 §4 naming, as python wsproto).
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

/// The state after sending `kind` in `state`, or `None` if that send is not allowed.
pub(crate) fn after_send(state: ConnectionState, kind: SendKind) -> Option<ConnectionState> {
    use ConnectionState::*;
    match (state, kind) {
        (Open, SendKind::Data | SendKind::Ping | SendKind::Pong) => Some(Open),
        (Open, SendKind::Close) => Some(LocalClosing),
        (RemoteClosing, SendKind::Close) => Some(Closed),
        _ => None,
    }
}

/// The state after a Close frame from the peer has been delivered.
pub(crate) fn after_receive_close(state: ConnectionState) -> ConnectionState {
    use ConnectionState::*;
    match state {
        Open => RemoteClosing,
        LocalClosing => Closed,
        other => other,
    }
}

/// The state after we failed the connection because of a peer violation.
///
/// The failure is reported as a `CloseConnection` event; answering it with `response()` must
/// complete the close (python wsproto's bug §18.7 left the connection stuck in LOCAL_CLOSING):
/// from OPEN we behave as if the peer had closed, so our close reply moves to CLOSED; if we
/// had already sent Close, there is nothing left to wait for.
pub(crate) fn after_failure(state: ConnectionState) -> ConnectionState {
    use ConnectionState::*;
    match state {
        Open => RemoteClosing,
        LocalClosing => Closed,
        other => other,
    }
}

/// The state after the transport reached EOF.
pub(crate) fn after_eof(_state: ConnectionState) -> ConnectionState {
    ConnectionState::Closed
}

/// Whether received bytes are parsed (`Some(true)`), silently ignored (`Some(false)`), or
/// refused as misuse (`None`).
pub(crate) fn accepts_bytes(state: ConnectionState) -> Option<bool> {
    use ConnectionState::*;
    match state {
        Open | LocalClosing => Some(true),
        RemoteClosing => Some(false),
        Closed | Connecting | Rejecting => None,
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
}
