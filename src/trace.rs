//! Every `tracing` event and span the crate emits (feature `tracing`), in one place.
//!
//! Each function is a decision worth a line in a server's log; without the feature its body is
//! empty and the call compiles to nothing. Levels:
//!
//! * `info`: one line per connection: [`ConnectionLog::ended`] (how it ended, its traffic),
//!   or, for a connection that never became a WebSocket, [`handshake_refused`] (answered
//!   with an error status) or [`handshake_failed`] (timed out, or the transport failed).
//! * `debug`: why each connection ended: handshakes accepted, closes sent and received (with
//!   their code and origin), peer violations with their close code, timeouts, transport
//!   failures, shutdown requests, and a graceful shutdown's start and end (the application
//!   logs its own shutdown at `info`).
//! * `trace`: keepalive pings and their round trips.
//!
//! Connections run inside a `websocket` span (created by every session, see
//! [`ConnectionLog::new`]) with the role, the HTTP version, the negotiated extensions and
//! subprotocol; a server that wraps each connection's task in a span of its own with the peer
//! address (as the `echo_server` example does) gets that as the parent.
#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]
// The handshake and session events are the tokio layer's.
#![cfg_attr(not(feature = "tokio"), allow(dead_code))]

use std::time::Duration;

use crate::connection::traffic::Traffic;
use crate::event::CloseConnection;
#[cfg(feature = "tracing")]
use crate::event::CloseSource;
use crate::role::ConnectionType;

/// What a session logs about its connection: its `websocket` span, and what its closing line
/// reports. Without the feature, a zero-sized value whose methods do nothing.
pub(crate) struct ConnectionLog {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "tracing")]
    started: std::time::Instant,
    /// The first close of the connection: its code and who sent it.
    #[cfg(feature = "tracing")]
    close: Option<(u16, &'static str)>,
    #[cfg(feature = "tracing")]
    ended: bool,
}

impl ConnectionLog {
    /// A connection's `websocket` span: `role` and `extensions` now, `http` and `subprotocol`
    /// recorded by the entry point that knows them ([`record_handshake`](Self::record_handshake)).
    #[inline(always)]
    pub(crate) fn new(role: ConnectionType, extensions: &[Box<dyn crate::extensions::Extension>]) -> Self {
        #[cfg(feature = "tracing")]
        {
            let names: Vec<&str> = extensions.iter().map(|e| e.name()).collect();
            let span = tracing::info_span!(
                "websocket",
                role = role_name(role),
                http = tracing::field::Empty,
                extensions = %names.join(", "),
                subprotocol = tracing::field::Empty,
            );
            ConnectionLog { span, started: std::time::Instant::now(), close: None, ended: false }
        }
        #[cfg(not(feature = "tracing"))]
        ConnectionLog {}
    }

    /// The HTTP version the handshake used and the subprotocol agreed.
    pub(crate) fn record_handshake(&self, http: &str, subprotocol: Option<&str>) {
        #[cfg(feature = "tracing")]
        {
            self.span.record("http", http);
            if let Some(subprotocol) = subprotocol {
                self.span.record("subprotocol", subprotocol);
            }
        }
    }

    /// Runs `f` inside the connection's span.
    #[inline(always)]
    pub(crate) fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        f()
    }

    /// A close frame was received (`by_peer`) or sent: the first one is what ended the
    /// connection.
    #[inline(always)]
    pub(crate) fn close(&mut self, close: &CloseConnection, by_peer: bool) {
        #[cfg(feature = "tracing")]
        if self.close.is_none() {
            let by = match (&close.source, by_peer) {
                (CloseSource::Violation(_), _) => "us (peer violation)",
                (CloseSource::TransportEnded, _) => "nobody (transport ended)",
                (_, true) => "peer",
                (_, false) => "us",
            };
            self.close = Some((close.code.0, by));
        }
    }

    /// The session hands its connection over (as a bare `Framed`): no closing line, the
    /// connection goes on without the session.
    pub(crate) fn detach(&mut self) {
        #[cfg(feature = "tracing")]
        {
            self.ended = true;
        }
    }

    /// The connection is over: its one `info` line, once.
    pub(crate) fn ended(&mut self, timeout: Option<&dyn std::fmt::Display>, traffic: &Traffic) {
        #[cfg(feature = "tracing")]
        if !std::mem::replace(&mut self.ended, true) {
            let _entered = self.span.enter();
            let (code, by) = self.close.unwrap_or((1006, "nobody"));
            tracing::info!(
                code,
                closed_by = by,
                timeout = timeout.map(tracing::field::display),
                lived = ?self.started.elapsed(),
                messages_in = traffic.messages_received,
                messages_out = traffic.messages_sent,
                bytes_in = traffic.bytes_received,
                bytes_out = traffic.bytes_sent,
                "websocket closed"
            );
        }
    }
}

/// A session dropped before its connection ended (the application left its loop on its own):
/// the line all the same, with what is known (the traffic is the codec's, gone with it).
#[cfg(feature = "tracing")]
impl Drop for ConnectionLog {
    fn drop(&mut self) {
        if !self.ended {
            let _entered = self.span.enter();
            let (code, by) = self.close.unwrap_or((1006, "nobody (the application dropped the session)"));
            tracing::info!(code, closed_by = by, lived = ?self.started.elapsed(), "websocket closed");
        }
    }
}

#[cfg(feature = "tracing")]
fn role_name(role: ConnectionType) -> &'static str {
    if role.is_client() {
        "client"
    } else {
        "server"
    }
}

/// Who began the closing handshake, for the log.
#[cfg(feature = "tracing")]
fn origin(source: &CloseSource) -> &'static str {
    match source {
        CloseSource::Local => "us",
        CloseSource::Peer => "peer",
        CloseSource::Violation(_) => "peer violation",
        CloseSource::TransportEnded => "transport ended",
    }
}

/// A server answered an upgrade request with an error status (a protocol violation, or the
/// application's rejection); a client was refused by the server.
pub(crate) fn handshake_refused(role: ConnectionType, status: u16, reason: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        role = role_name(role),
        status,
        %reason,
        "websocket handshake refused"
    );
}

/// The handshake failed without an answer: it timed out, the transport failed or ended.
pub(crate) fn handshake_failed(role: ConnectionType, error: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::info!(role = role_name(role), %error, "websocket handshake failed");
}

/// The handshake succeeded.
pub(crate) fn handshake_accepted(http: &str, subprotocol: Option<&str>, extensions: usize) {
    #[cfg(feature = "tracing")]
    tracing::debug!(http, subprotocol, extensions, "websocket handshake accepted");
}

/// A close frame (or its equivalent: a violation, the transport's end) was received.
pub(crate) fn close_received(close: &CloseConnection) {
    #[cfg(feature = "tracing")]
    match &close.source {
        CloseSource::Violation(violation) => tracing::debug!(
            code = close.code.0,
            %violation,
            "peer violated the protocol: closing with {}",
            close.code.0
        ),
        source => tracing::debug!(
            code = close.code.0,
            reason = close.reason.as_deref().unwrap_or(""),
            origin = origin(source),
            "close received"
        ),
    }
}

/// Our close frame was written.
pub(crate) fn close_sent(close: &CloseConnection) {
    #[cfg(feature = "tracing")]
    tracing::debug!(code = close.code.0, reason = close.reason.as_deref().unwrap_or(""), "close sent");
}

/// A timeout ended the connection.
pub(crate) fn timed_out(timeout: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::debug!("timed out: {timeout}");
}

/// The application or a graceful shutdown asked to close.
pub(crate) fn close_requested(shutdown: bool) {
    #[cfg(feature = "tracing")]
    tracing::debug!(shutdown, "closing");
}

/// The transport failed (read or write error).
pub(crate) fn transport_failed(error: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::debug!(%error, "transport failed");
}

/// A keepalive ping was queued.
pub(crate) fn keepalive_ping(number: u64) {
    #[cfg(feature = "tracing")]
    tracing::trace!(number, "keepalive ping");
}

/// A keepalive ping was answered.
pub(crate) fn keepalive_pong(rtt: Duration) {
    #[cfg(feature = "tracing")]
    tracing::trace!(?rtt, "keepalive pong");
}

/// A graceful shutdown began with `live` sessions (at `debug`: the application logs its own
/// shutdown).
pub(crate) fn shutdown_started(live: usize) {
    #[cfg(feature = "tracing")]
    tracing::debug!(sessions = live, "graceful shutdown: closing every session with 1001");
}

/// A graceful shutdown ended: `left` sessions had not finished by the deadline.
pub(crate) fn shutdown_finished(left: usize, took: Duration) {
    #[cfg(feature = "tracing")]
    tracing::debug!(left, took = ?took, "graceful shutdown: over");
}
