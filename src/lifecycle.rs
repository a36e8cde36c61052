//! The connection's lifecycle, sans-IO: the replies it owes, keepalive pings, timeouts and the
//! lingering close.
//!
//! [`Lifecycle`] makes the decisions a session needs on top of a [`Connection`](crate::Connection):
//! which events to send without being asked (pongs, the close reply, keepalive pings, the
//! close that ends a timed-out connection) and when. Time is a parameter, as in quinn-proto:
//! the driver reports what was received and sent and when, asks for the next deadline
//! ([`poll_timeout`](Lifecycle::poll_timeout)), and calls
//! [`handle_timeout`](Lifecycle::handle_timeout) once it has passed. It never reads a clock and
//! performs no I/O, so it is tested deterministically; the tokio session drives it with a
//! timer.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::close::CloseCode;
use crate::event::{CloseConnection, CloseSource, Event, Ping};

/// What a session does by itself, and its timeouts.
///
/// The defaults follow Python websockets' (a keepalive ping every 20 s, 20 s to answer it, 10 s
/// for the closing handshake) so that a silent peer is cut off within about 40 s, and a peer
/// that stops reading within the send timeout (30 s). Each automation and timeout can be
/// switched off.
///
/// ```
/// use std::time::Duration;
/// use wsproto::SessionConfig;
/// let config = SessionConfig::default().keepalive(Some(Duration::from_secs(5)), Duration::from_secs(5));
/// assert_eq!(config.keepalive_interval, Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Answer every ping with a pong (default `true`).
    pub auto_pong: bool,
    /// Answer the peer's close (or a violation we detected) with the close frame owed
    /// (default `true`).
    pub auto_close_reply: bool,
    /// Send a ping after this long without one (default 20 s); `None`: no keepalive.
    pub keepalive_interval: Option<Duration>,
    /// Fail the connection with 1011 when a keepalive ping is not answered within this
    /// (default 20 s).
    pub keepalive_timeout: Duration,
    /// Close with 1001 (going away) after this long without receiving anything (default: none,
    /// keepalive covers a silent peer).
    pub idle_timeout: Option<Duration>,
    /// Give up on a peer that does not read: fail when a write makes no progress for this
    /// long (default 30 s).
    pub send_timeout: Option<Duration>,
    /// Time allowed for the peer's close reply after ours (default 10 s).
    pub close_timeout: Duration,
    /// Most bytes buffered for writing before sending waits for the peer to read
    /// (`poll_ready` flushes and waits beyond it): the write buffer stays within this plus one
    /// message (default 64 KiB).
    pub write_buffer: usize,
    /// After we failed the connection (or, for a client, after the closing handshake), how
    /// long input is drained and discarded while waiting for the peer's EOF before the
    /// transport is dropped, so a peer still sending reads our close frame rather than a
    /// reset (default 2 s). A server ends at once after a clean closing handshake (see
    /// [`Lifecycle::drains_after_close`]).
    pub linger: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            auto_pong: true,
            auto_close_reply: true,
            keepalive_interval: Some(Duration::from_secs(20)),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: None,
            send_timeout: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(10),
            write_buffer: 64 << 10,
            linger: Duration::from_secs(2),
        }
    }
}

impl SessionConfig {
    /// Sets the keepalive: a ping after `interval` without one (`None`: no keepalive), failing
    /// the connection when it is not answered within `timeout`.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// Sets whether pings are answered automatically.
    pub fn auto_pong(mut self, enabled: bool) -> Self {
        self.auto_pong = enabled;
        self
    }

    /// Sets whether the close frame owed to the peer is sent automatically.
    pub fn auto_close_reply(mut self, enabled: bool) -> Self {
        self.auto_close_reply = enabled;
        self
    }

    /// Sets the idle timeout (`None`: none).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the send timeout (`None`: wait for a peer that does not read as long as it takes).
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets the time allowed for the peer's close reply.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the write buffer's high-water mark (see [`write_buffer`](Self::write_buffer)).
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes;
        self
    }

    /// Sets how long input is drained after we failed the connection.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
}

/// Why a session ended without a clean closing handshake.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Timeout {
    /// A keepalive ping was not answered in time (we closed with 1011).
    Keepalive,
    /// Nothing was received for the idle timeout (we closed with 1001).
    Idle,
    /// A write made no progress for the send timeout: the peer does not read.
    Send,
    /// The peer did not answer our close in time.
    Close,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Keepalive => "keepalive ping not answered in time",
            Timeout::Idle => "nothing received for the idle timeout",
            Timeout::Send => "the peer stopped reading (send timeout)",
            Timeout::Close => "the peer did not answer the close in time",
        })
    }
}

/// The lifecycle policy of one connection (see the module documentation).
#[derive(Debug)]
pub struct Lifecycle {
    config: SessionConfig,
    /// Events owed to the peer, in order: pongs, close replies, keepalive pings.
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
    /// Since when writes have made no progress.
    write_stalled_since: Option<Instant>,
    /// When we sent our close frame.
    close_sent: Option<Instant>,
    /// The closing handshake is over (or abandoned): only lingering or nothing is left.
    closed: bool,
    /// We failed the connection (violation or timeout): drain input until then.
    linger_until: Option<Instant>,
    /// What ended the session, if a timeout did.
    timed_out: Option<Timeout>,
}

impl Lifecycle {
    /// A lifecycle starting at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Lifecycle {
            config,
            owed: VecDeque::new(),
            last_received: now,
            last_ping: now,
            awaiting_pong: None,
            pings: 0,
            rtt: None,
            write_stalled_since: None,
            close_sent: None,
            closed: false,
            linger_until: None,
            timed_out: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The round trip of the last answered keepalive ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The timeout that ended the session, if one did.
    pub fn timed_out(&self) -> Option<Timeout> {
        self.timed_out
    }

    /// Whether our close frame was sent.
    pub fn close_sent(&self) -> bool {
        self.close_sent.is_some()
    }

    /// Whether we failed the connection and input is being drained (see
    /// [`SessionConfig::linger`]) until the returned instant.
    pub fn lingering(&self) -> Option<Instant> {
        self.linger_until
    }

    /// Whether, once our side is shut down, input should still be drained until the peer's
    /// EOF (bounded by [`SessionConfig::linger`]). After a failure, yes: a peer still sending
    /// then reads our close frame instead of a reset. After a clean closing handshake, only a
    /// client waits, since RFC 6455 has the server close the transport first; the peer sent
    /// nothing after its close frame, so a server drops the transport at once. (Over HTTP/2,
    /// browsers never end the stream of a closed WebSocket: a server waiting for it held
    /// every closed stream for the whole linger time.)
    pub fn drains_after_close(&self, role: crate::role::ConnectionType) -> bool {
        self.linger_until.is_some() || self.timed_out.is_some() || role.is_client()
    }

    /// An event was received at `now`: queues what it calls for (a pong, the close reply).
    pub fn received(&mut self, now: Instant, event: &Event) {
        self.last_received = now;
        match event {
            Event::Ping(ping) if self.config.auto_pong && self.close_sent.is_none() => {
                self.owed.push_back(ping.response().into());
            }
            Event::Pong(pong)
                if self.awaiting_pong.as_ref().is_some_and(|(payload, _)| *payload == pong.payload) =>
            {
                let (_, sent) = self.awaiting_pong.take().expect("checked");
                self.rtt = Some(now.saturating_duration_since(sent));
            }
            Event::CloseConnection(close) => {
                if let Some(reply) = close.reply().filter(|_| self.config.auto_close_reply) {
                    self.owed.push_back(reply.into());
                }
                if matches!(close.source, CloseSource::Violation(_)) {
                    self.linger_until = Some(now + self.config.linger);
                } else if close.reply_owed && !self.config.auto_close_reply {
                    // The application answers; the handshake is not over yet.
                } else {
                    self.closed = true;
                }
            }
            _ => {}
        }
    }

    /// The next event owed to the peer, to send before anything else.
    pub fn poll_owed(&mut self) -> Option<Event> {
        self.owed.pop_front()
    }

    /// Puts back an owed event that could not be sent yet.
    pub fn unpoll_owed(&mut self, event: Event) {
        self.owed.push_front(event);
    }

    /// Whether events are owed.
    pub fn has_owed(&self) -> bool {
        !self.owed.is_empty()
    }

    /// An event was sent at `now` (by the application or as owed).
    pub fn sent(&mut self, now: Instant, event: &Event) {
        match event {
            Event::Ping(_) => self.last_ping = now,
            Event::CloseConnection(_) if self.close_sent.is_none() => {
                self.close_sent = Some(now);
                // A ping we sent will not be answered any more.
                self.awaiting_pong = None;
                self.owed.retain(|e| !matches!(e, Event::Ping(_) | Event::Pong(_)));
            }
            _ => {}
        }
    }

    /// The pending write is stuck at `now` (the peer does not read): the send timeout runs
    /// from the first stalled call.
    pub fn write_stalled(&mut self, now: Instant) {
        self.write_stalled_since.get_or_insert(now);
    }

    /// Writes made progress (the send timeout stops).
    #[inline]
    pub fn write_progressed(&mut self) {
        self.write_stalled_since = None;
    }

    /// The closing handshake completed: nothing is left but to shut the transport down.
    pub fn closed(&mut self) {
        self.closed = true;
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(until) = self.linger_until {
            return Some(until);
        }
        if self.closed {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(sent) = self.close_sent {
            at(sent + self.config.close_timeout);
        } else {
            if let Some(interval) = self.config.keepalive_interval {
                match &self.awaiting_pong {
                    Some((_, sent)) => at(*sent + self.config.keepalive_timeout),
                    None => at(self.last_ping.max(self.last_received) + interval),
                }
            }
            if let Some(idle) = self.config.idle_timeout {
                at(self.last_received + idle);
            }
        }
        if let (Some(since), Some(limit)) = (self.write_stalled_since, self.config.send_timeout) {
            at(since + limit);
        }
        next
    }

    /// Acts on the deadlines passed at `now`: queues a keepalive ping, or fails the connection
    /// (queueing its close frame) and returns the timeout that ended it.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if self.timed_out.is_some() || self.closed && self.linger_until.is_none() {
            return None;
        }
        if let (Some(since), Some(limit)) = (self.write_stalled_since, self.config.send_timeout) {
            if now >= since + limit {
                // Nothing more can be written: no close frame, just give up.
                return self.give_up(now, Timeout::Send, None);
            }
        }
        if let Some(sent) = self.close_sent {
            if now >= sent + self.config.close_timeout && !self.closed {
                return self.give_up(now, Timeout::Close, None);
            }
            return None;
        }
        if let Some((_, sent)) = &self.awaiting_pong {
            if now >= *sent + self.config.keepalive_timeout {
                let close = CloseConnection::with_reason(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
                return self.give_up(now, Timeout::Keepalive, Some(close));
            }
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_received + idle {
                let close = CloseConnection::with_reason(CloseCode::GOING_AWAY, "idle timeout");
                return self.give_up(now, Timeout::Idle, Some(close));
            }
        }
        if let Some(interval) = self.config.keepalive_interval {
            if self.awaiting_pong.is_none() && now >= self.last_ping.max(self.last_received) + interval {
                self.pings += 1;
                let payload = Bytes::copy_from_slice(&self.pings.to_be_bytes());
                self.awaiting_pong = Some((payload.clone(), now));
                self.last_ping = now;
                self.owed.push_back(Ping::new(payload).into());
            }
        }
        None
    }

    /// Ends the session for `timeout`: queues `close` (if any) in place of everything owed,
    /// and lingers for its reply.
    fn give_up(&mut self, now: Instant, timeout: Timeout, close: Option<CloseConnection>) -> Option<Timeout> {
        self.timed_out = Some(timeout);
        self.owed.clear();
        self.awaiting_pong = None;
        if let Some(close) = close {
            self.owed.push_back(close.into());
            self.linger_until = Some(now + self.config.linger);
        } else {
            self.closed = true;
        }
        Some(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Pong;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn pings_are_answered_and_keepalive_measures_the_round_trip() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(SessionConfig::default(), t0);
        life.received(t0, &Ping::new("hi").into());
        assert_eq!(life.poll_owed(), Some(Pong::new("hi").into()));
        // Quiet for 20 s: a keepalive ping.
        assert_eq!(life.poll_timeout(), Some(t0 + secs(20)));
        assert_eq!(life.handle_timeout(t0 + secs(20)), None);
        let Some(Event::Ping(ping)) = life.poll_owed() else { panic!("a keepalive ping") };
        life.sent(t0 + secs(20), &ping.clone().into());
        assert_eq!(life.poll_timeout(), Some(t0 + secs(40)), "its pong is due within 20 s");
        life.received(t0 + secs(20) + Duration::from_millis(35), &Pong::new(ping.payload).into());
        assert_eq!(life.rtt(), Some(Duration::from_millis(35)));
    }

    #[test]
    fn unanswered_keepalive_fails_with_1011() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(SessionConfig::default(), t0);
        life.handle_timeout(t0 + secs(20));
        let ping = life.poll_owed().unwrap();
        life.sent(t0 + secs(20), &ping);
        assert_eq!(life.handle_timeout(t0 + secs(39)), None);
        assert_eq!(life.handle_timeout(t0 + secs(40)), Some(Timeout::Keepalive));
        let Some(Event::CloseConnection(close)) = life.poll_owed() else { panic!("a close") };
        assert_eq!(close.code, CloseCode::INTERNAL_ERROR);
        assert_eq!(life.lingering(), Some(t0 + secs(42)));
    }

    #[test]
    fn close_reply_is_owed_and_close_timeout_bounds_the_wait() {
        let t0 = Instant::now();
        let mut life = Lifecycle::new(SessionConfig::default(), t0);
        let peer_close =
            CloseConnection::received(CloseCode::GOING_AWAY, "bye".into(), CloseSource::Peer, true);
        life.received(t0, &peer_close.clone().into());
        assert_eq!(life.poll_owed(), peer_close.reply().map(Event::from));
        assert_eq!(life.poll_timeout(), None, "the handshake is complete once the reply is out");

        let mut life = Lifecycle::new(SessionConfig::default(), t0);
        life.sent(t0, &CloseConnection::new(1000u16).into());
        assert_eq!(life.poll_timeout(), Some(t0 + secs(10)));
        assert_eq!(life.handle_timeout(t0 + secs(10)), Some(Timeout::Close));
    }

    #[test]
    fn stalled_writes_hit_the_send_timeout() {
        let t0 = Instant::now();
        let config = SessionConfig::default().keepalive(None, secs(20));
        let mut life = Lifecycle::new(config, t0);
        life.write_stalled(t0);
        life.write_stalled(t0 + secs(10));
        assert_eq!(life.poll_timeout(), Some(t0 + secs(30)));
        assert_eq!(life.handle_timeout(t0 + secs(30)), Some(Timeout::Send));
        assert_eq!(life.poll_owed(), None, "nothing can be written to a peer that does not read");
    }

    #[test]
    fn automations_can_be_switched_off() {
        let t0 = Instant::now();
        let config =
            SessionConfig::default().auto_pong(false).auto_close_reply(false).keepalive(None, secs(1));
        let mut life = Lifecycle::new(config, t0);
        life.received(t0, &Ping::new("x").into());
        let close = CloseConnection::received(CloseCode::GOING_AWAY, String::new(), CloseSource::Peer, true);
        life.received(t0, &close.into());
        assert_eq!(life.poll_owed(), None);
        assert_eq!(life.poll_timeout(), None);
    }
}
