//! The connection's lifecycle, sans-IO: every decision a session makes on top of a
//! [`Connection`](crate::Connection).
//!
//! [`Lifecycle`] is the only owner of those decisions: which events to send without being asked
//! (pongs, the close reply, keepalive pings, the close of a timeout or of a graceful shutdown),
//! what happens to an application's send once the close has begun, when the closing handshake
//! is over, when to shut the transport down, how long to drain input after that, and when the
//! connection is done. Time is a parameter, as in quinn-proto: the driver reports what happened
//! with `handle_*` inputs and takes the results from `poll_*` outputs and [`phase`](Lifecycle::phase):
//!
//! | input | when |
//! |-------|------|
//! | [`handle_received`](Lifecycle::handle_received) | an event came out of the connection |
//! | [`handle_sent`](Lifecycle::handle_sent) | a control event was written to the connection (after it succeeded) |
//! | [`handle_write_stalled`](Lifecycle::handle_write_stalled) / [`handle_write_progress`](Lifecycle::handle_write_progress) | the transport would not take bytes / took them |
//! | [`handle_timeout`](Lifecycle::handle_timeout) | the instant of [`poll_timeout`](Lifecycle::poll_timeout) passed |
//! | [`handle_close_request`](Lifecycle::handle_close_request) | the application asks to close |
//! | [`handle_shutdown_request`](Lifecycle::handle_shutdown_request) | the server shuts down gracefully |
//! | [`handle_shut_down`](Lifecycle::handle_shut_down) | the transport's write side is shut down |
//! | [`handle_eof`](Lifecycle::handle_eof) / [`handle_transport_error`](Lifecycle::handle_transport_error) | the transport ended or failed |
//!
//! | output | what the driver does |
//! |--------|----------------------|
//! | [`poll_transmit`](Lifecycle::poll_transmit) | sends the event (before the application's) |
//! | [`poll_timeout`](Lifecycle::poll_timeout) | arms a timer |
//! | [`poll_error`](Lifecycle::poll_error) | reports the timeout that ended the connection, once |
//! | [`phase`](Lifecycle::phase) | [`LifecyclePhase::Open`]: reads and writes; [`LifecyclePhase::ShuttingDown`]: writes what is owed, then shuts the write side down; [`LifecyclePhase::Draining`]: reads and discards; [`LifecyclePhase::Done`]: drops the transport |
//! | [`admits`](Lifecycle::admits) | writes the application's event, or discards it |
//!
//! It never reads a clock and performs no I/O, so every decision is tested with explicit time;
//! the tokio [`Session`](crate::session::Session) only moves bytes and arms the timer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::connection::state::{ConnectionState, SendKind};
use crate::event::{CloseConnection, CloseSource, Event, Ping};
use crate::role::ConnectionType;
use crate::trace;
use crate::wire::close::CloseCode;

mod config;
#[cfg(test)]
mod tests;

pub use config::{SessionConfig, Timeout};

/// What the driver of a [`Lifecycle`] does with the transport now.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum LifecyclePhase {
    /// Messages flow, and a closing handshake may be under way: read, write what
    /// [`poll_transmit`](Lifecycle::poll_transmit) gives first, then what the application
    /// sends.
    Open,
    /// The closing handshake is over, or the connection failed: write what is still owed, then
    /// shut the transport's write side down (TLS sends `close_notify`) and report
    /// [`handle_shut_down`](Lifecycle::handle_shut_down).
    ShuttingDown,
    /// Our side is shut down: read and discard input until the peer's EOF
    /// ([`handle_eof`](Lifecycle::handle_eof)) or the deadline, so a peer still sending reads
    /// our close frame rather than a reset.
    Draining,
    /// Over: drop the transport.
    Done,
}

/// The lifecycle policy of one connection (see the module documentation).
#[derive(Debug)]
pub struct Lifecycle {
    config: SessionConfig,
    role: ConnectionType,
    phase: LifecyclePhase,
    /// When shutting down and draining give up (set on leaving [`LifecyclePhase::Open`]).
    end_by: Option<Instant>,
    /// Events owed to the peer, in order: pongs, close replies, keepalive pings, our close.
    owed: VecDeque<Event>,
    /// When something was last received.
    last_received: Instant,
    /// When a ping was last sent (by us or the application).
    last_ping: Instant,
    /// The keepalive ping awaiting its pong: payload and when it was sent.
    awaiting_pong: Option<(Bytes, Instant)>,
    /// Counter for keepalive payloads.
    pings: u64,
    /// The last keepalive round trip.
    rtt: Option<Duration>,
    /// The round trips smoothed (RFC 6298's SRTT: 7/8 of the previous plus 1/8 of the new).
    smoothed_rtt: Option<Duration>,
    /// Since when writes have made no progress.
    write_stalled_since: Option<Instant>,
    /// When our close frame was sent.
    close_sent: Option<Instant>,
    /// A close of ours is queued (by the application or a graceful shutdown).
    close_queued: bool,
    /// The peer's close frame (or a violation, or EOF) was received.
    close_received: bool,
    /// No close is owed either way any more (the peer's answered ours, or the transport ended).
    exchange_over: bool,
    /// We failed the connection (a violation or a timeout): drain until then.
    linger_until: Option<Instant>,
    /// What ended the connection, if a timeout did.
    timed_out: Option<Timeout>,
    /// The timeout not yet reported by [`poll_error`](Self::poll_error).
    unreported: Option<Timeout>,
}

impl Lifecycle {
    /// A lifecycle for a connection in `role`, open at `now`.
    pub fn new(config: SessionConfig, role: ConnectionType, now: Instant) -> Self {
        Lifecycle {
            config,
            role,
            phase: LifecyclePhase::Open,
            end_by: None,
            owed: VecDeque::new(),
            last_received: now,
            last_ping: now,
            awaiting_pong: None,
            pings: 0,
            rtt: None,
            smoothed_rtt: None,
            write_stalled_since: None,
            close_sent: None,
            close_queued: false,
            close_received: false,
            exchange_over: false,
            linger_until: None,
            timed_out: None,
            unreported: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What to do with the transport now.
    pub fn phase(&self) -> LifecyclePhase {
        self.phase
    }

    /// The round trip of the last answered keepalive ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The keepalive round trips smoothed as TCP does (RFC 6298's SRTT: each new sample counts
    /// for 1/8), `None` before the first answered keepalive ping.
    pub fn smoothed_rtt(&self) -> Option<Duration> {
        self.smoothed_rtt
    }

    /// When the connection last received an event (or opened, before the first).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// The timeout that ended the connection, if one did.
    pub fn timed_out(&self) -> Option<Timeout> {
        self.timed_out
    }

    /// Whether our close frame was sent.
    pub fn close_sent(&self) -> bool {
        self.close_sent.is_some()
    }

    /// Whether the close has begun (ours sent or queued, or the peer's received): from then on
    /// the application's messages are discarded ([`admits`](Self::admits)).
    pub fn closing(&self) -> bool {
        self.close_sent.is_some()
            || self.close_queued
            || self.close_received
            || self.phase != LifecyclePhase::Open
    }

    // ===== inputs =====

    /// An event came out of the connection at `now`: queues what it calls for (a pong, the
    /// close reply) and, once the closing handshake is over or the peer violated the protocol,
    /// moves to [`LifecyclePhase::ShuttingDown`].
    pub fn handle_received(&mut self, now: Instant, event: &Event) {
        self.last_received = now;
        match event {
            Event::Ping(ping) if self.config.auto_pong && !self.closing() => {
                // Only the latest ping's pong is owed (RFC 6455 §5.5.3 allows answering just the
                // most recent one): a ping flood cannot grow the queue.
                self.owed.retain(|e| !matches!(e, Event::Pong(_)));
                self.owed.push_back(ping.response().into());
            }
            Event::Pong(pong)
                if self.awaiting_pong.as_ref().is_some_and(|(payload, _)| *payload == pong.payload) =>
            {
                if let Some((_, sent)) = self.awaiting_pong.take() {
                    let rtt = now.saturating_duration_since(sent);
                    trace::keepalive_pong(rtt);
                    self.rtt = Some(rtt);
                    self.smoothed_rtt = Some(match self.smoothed_rtt {
                        Some(srtt) => (srtt * 7 + rtt) / 8,
                        None => rtt,
                    });
                }
            }
            Event::CloseConnection(close) => {
                trace::close_received(close);
                self.close_received = true;
                self.awaiting_pong = None;
                // Nothing but a close may follow the peer's close.
                self.owed.retain(|e| matches!(e, Event::CloseConnection(_)));
                match close.reply() {
                    Some(reply) if self.config.auto_close_reply => {
                        // The reply is our close: one of ours still queued is moot.
                        self.owed.clear();
                        self.owed.push_back(reply.into());
                    }
                    // The application answers (a close of its own still queued does).
                    Some(_) => {}
                    None => {
                        // It answers ours, or the transport ended: nothing is left to send.
                        self.owed.clear();
                        self.exchange_over = true;
                    }
                }
                if matches!(close.source, CloseSource::Violation(_)) {
                    self.linger_until = Some(later(now, self.config.linger));
                }
                self.advance(now);
            }
            _ => {}
        }
    }

    /// Whether an event the application sends is written (`true`) or discarded (`false`) in
    /// the connection's `state`.
    ///
    /// Once the close has begun, messages, pings and pongs are discarded rather than refused:
    /// the peer would not read them, and an echo or broadcast loop sending while a close is
    /// under way must not end the connection before its closing handshake. A second close is
    /// discarded the same way. Anything else the connection refuses (an event that is never
    /// sent after the handshake, an over-long control payload) is still written, so the
    /// connection reports the misuse.
    pub fn admits(&self, state: ConnectionState, event: &Event) -> bool {
        match SendKind::of(event) {
            Some(SendKind::Close) => !self.close_sent() && state.may_send(SendKind::Close),
            Some(_) => !self.closing(),
            None => true,
        }
    }

    /// `event` was written to the connection at `now` (report it after the send succeeded).
    /// Only pings and closes change the lifecycle; messages need not be reported.
    pub fn handle_sent(&mut self, now: Instant, event: &Event) {
        match event {
            Event::Ping(ping) => {
                self.last_ping = now;
                if let Some((payload, sent)) = &mut self.awaiting_pong {
                    if *payload == ping.payload {
                        *sent = now;
                    }
                }
            }
            Event::CloseConnection(close) if self.close_sent.is_none() => {
                trace::close_sent(close);
                self.close_sent = Some(now);
                self.close_queued = false;
                // A ping we sent will not be answered any more, and nothing else may follow.
                self.awaiting_pong = None;
                self.owed.clear();
                self.advance(now);
            }
            _ => {}
        }
    }

    /// The transport would not take bytes at `now` (the peer does not read): the send timeout
    /// runs from the first stalled call, and the keepalive waits (a ping the peer cannot read
    /// is not an unanswered ping).
    pub fn handle_write_stalled(&mut self, now: Instant) {
        self.write_stalled_since.get_or_insert(now);
    }

    /// The transport took bytes: the send timeout stops.
    #[inline]
    pub fn handle_write_progress(&mut self) {
        self.write_stalled_since = None;
    }

    /// The application asks to close with `close`: it is queued ahead of everything owed,
    /// unless the close has begun already. Returns whether it was queued.
    pub fn handle_close_request(&mut self, close: CloseConnection) -> bool {
        self.queue_close(close, false)
    }

    /// The server is shutting down gracefully: close with 1001 (going away), unless the close
    /// has begun already.
    pub fn handle_shutdown_request(&mut self) -> bool {
        self.queue_close(CloseConnection::with_reason(CloseCode::GOING_AWAY, "server shutting down"), true)
    }

    /// The transport's write side was shut down at `now` ([`LifecyclePhase::ShuttingDown`] is over):
    /// drain input after a failure, and as a client (RFC 6455 has the server close the
    /// transport first); a server that completed the closing handshake is done at once (over
    /// HTTP/2, browsers never end the stream of a closed WebSocket).
    pub fn handle_shut_down(&mut self, now: Instant) {
        if self.phase != LifecyclePhase::ShuttingDown {
            return;
        }
        let failed = self.linger_until.is_some() || self.timed_out.is_some();
        if failed || self.role.is_client() {
            self.phase = LifecyclePhase::Draining;
            self.end_by.get_or_insert(later(now, self.config.linger));
        } else {
            self.done();
        }
    }

    /// The transport's read side ended at `now` (after the connection reported its close).
    pub fn handle_eof(&mut self, now: Instant) {
        match self.phase {
            LifecyclePhase::Open => {
                self.close_received = true;
                self.owed.retain(|e| matches!(e, Event::CloseConnection(_)));
                self.enter_shutting_down(now);
            }
            LifecyclePhase::Draining => self.done(),
            LifecyclePhase::ShuttingDown | LifecyclePhase::Done => {}
        }
    }

    /// The transport failed: nothing more can be exchanged.
    pub fn handle_transport_error(&mut self) {
        self.done();
    }

    /// Acts on the deadlines passed at `now`: queues a keepalive ping, fails the connection
    /// (queueing its close frame, reported by [`poll_error`](Self::poll_error)), or gives up
    /// shutting down or draining.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase != LifecyclePhase::Open {
            // Shutting down or draining is bounded by its own deadline.
            if self.end_by.is_some_and(|end| now >= end) {
                self.done();
            }
            return;
        }
        if let (Some(since), Some(limit)) = (self.write_stalled_since, self.config.send_timeout) {
            if now >= later(since, limit) {
                // Nothing more can be written: no close frame, just give up.
                return self.give_up(now, Timeout::Send, None);
            }
        }
        if let Some(sent) = self.close_sent {
            if now >= later(sent, self.config.close_timeout) {
                self.give_up(now, Timeout::Close, None);
            }
            return;
        }
        if self.close_received {
            // The reply is up to the application; the close timeout does not apply to it.
            return;
        }
        if let Some((_, sent)) = &self.awaiting_pong {
            if self.write_stalled_since.is_none() && now >= later(*sent, self.config.keepalive_timeout) {
                let close = CloseConnection::with_reason(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
                return self.give_up(now, Timeout::Keepalive, Some(close));
            }
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= later(self.last_received, idle) {
                let close = CloseConnection::with_reason(CloseCode::GOING_AWAY, "idle timeout");
                return self.give_up(now, Timeout::Idle, Some(close));
            }
        }
        if let Some(interval) = self.config.keepalive_interval {
            if self.awaiting_pong.is_none() && now >= later(self.last_ping.max(self.last_received), interval)
            {
                self.pings += 1;
                trace::keepalive_ping(self.pings);
                let payload = Bytes::copy_from_slice(&self.pings.to_be_bytes());
                self.awaiting_pong = Some((payload.clone(), now));
                self.last_ping = now;
                self.owed.push_back(Ping::new(payload).into());
            }
        }
    }

    // ===== outputs =====

    /// The next event owed to the peer that may still be sent in the connection's `state`, to
    /// write before anything the application sends. Owed events made moot meanwhile are
    /// dropped.
    pub fn poll_transmit(&mut self, state: ConnectionState) -> Option<Event> {
        while let Some(event) = self.owed.pop_front() {
            if SendKind::of(&event).is_some_and(|kind| state.may_send(kind)) {
                return Some(event);
            }
        }
        None
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has events to give (some may turn out
    /// moot).
    pub fn has_owed(&self) -> bool {
        !self.owed.is_empty()
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            LifecyclePhase::Done => return None,
            LifecyclePhase::ShuttingDown | LifecyclePhase::Draining => {
                if let Some(end) = self.end_by {
                    at(end);
                }
            }
            LifecyclePhase::Open => {
                if let (Some(since), Some(limit)) = (self.write_stalled_since, self.config.send_timeout) {
                    at(later(since, limit));
                }
                if let Some(sent) = self.close_sent {
                    at(later(sent, self.config.close_timeout));
                } else if !self.close_received {
                    if let Some(interval) = self.config.keepalive_interval {
                        match &self.awaiting_pong {
                            Some(_) if self.write_stalled_since.is_some() => {}
                            Some((_, sent)) => at(later(*sent, self.config.keepalive_timeout)),
                            None => at(later(self.last_ping.max(self.last_received), interval)),
                        }
                    }
                    if let Some(idle) = self.config.idle_timeout {
                        at(later(self.last_received, idle));
                    }
                }
            }
        }
        next
    }

    /// The timeout that ended the connection, once: the driver reports it to the application.
    pub fn poll_error(&mut self) -> Option<Timeout> {
        self.unreported.take()
    }

    // ===== transitions =====

    /// Queues our close ahead of everything owed, unless the close has begun already.
    fn queue_close(&mut self, close: CloseConnection, shutdown: bool) -> bool {
        if self.closing() {
            return false;
        }
        trace::close_requested(shutdown);
        self.close_queued = true;
        self.owed.push_front(close.into());
        true
    }

    /// Leaves [`LifecyclePhase::Open`] once the closing handshake is over or the connection failed.
    fn advance(&mut self, now: Instant) {
        let handshake_over = self.close_sent.is_some() && self.close_received;
        if self.phase == LifecyclePhase::Open
            && (handshake_over || self.exchange_over || self.linger_until.is_some())
        {
            self.enter_shutting_down(now);
        }
    }

    fn enter_shutting_down(&mut self, now: Instant) {
        if self.phase == LifecyclePhase::Open {
            self.phase = LifecyclePhase::ShuttingDown;
            self.end_by = Some(self.linger_until.unwrap_or(later(now, self.config.linger)));
        }
    }

    /// Ends the connection for `timeout`: sends `close` (if any) in place of everything owed
    /// and lingers for its reply; without one, nothing more can be exchanged.
    fn give_up(&mut self, now: Instant, timeout: Timeout, close: Option<CloseConnection>) {
        trace::timed_out(&timeout);
        self.timed_out = Some(timeout);
        self.unreported = Some(timeout);
        self.owed.clear();
        self.awaiting_pong = None;
        match close {
            Some(close) => {
                self.owed.push_back(close.into());
                self.linger_until = Some(later(now, self.config.linger));
                self.enter_shutting_down(now);
            }
            None => self.done(),
        }
    }

    fn done(&mut self) {
        self.phase = LifecyclePhase::Done;
        self.owed.clear();
        self.end_by = None;
    }
}

/// `t + d`, or a deadline too far away to matter when that overflows `Instant`: a timeout
/// set to `Duration::MAX` means "never", not a panic.
fn later(t: Instant, d: Duration) -> Instant {
    /// About a century: past the life of any process, and representable on every platform.
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d).or_else(|| t.checked_add(NEVER)).unwrap_or(t)
}
