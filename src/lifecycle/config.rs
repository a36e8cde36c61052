//! What a session does by itself, and the timeouts that end it.

use std::fmt;
use std::time::Duration;

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
    /// Send a ping after this long with neither a ping sent nor anything received (default 20
    /// s): a peer that talks more often is never pinged (its traffic shows it is there, and
    /// [`Lifecycle::rtt`](super::Lifecycle::rtt) stays `None`); `None`: no keepalive.
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
    /// reset (default 2 s). A server ends at once after a clean closing handshake: RFC 6455
    /// has the server close the transport first, and the peer sends nothing after its close
    /// frame.
    pub linger: Duration,
    /// Write replies to pipelined input together (default `true`): a message sent right
    /// after one was received, while more input is already buffered, is written with the
    /// replies to that input, in one write, instead of on its own. The writes go out when the
    /// session next has nothing to read (a `next()` that would wait), on a send that does not
    /// follow a received message, when they pass [`write_buffer`](Self::write_buffer), or at
    /// the close. A peer with 16 messages in flight then costs one write instead of 16; a
    /// single message is written at once, as without it. Turn it off for a handler that sends
    /// and then waits on something else before reading again, while its peer pipelines.
    /// Split sessions never coalesce. A session dropped without a close can lose writes held
    /// back this way, as a `Framed` loses what it has not flushed.
    pub coalesce_writes: bool,
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
            coalesce_writes: true,
        }
    }
}

impl SessionConfig {
    /// Sets the keepalive: a ping after `interval` with neither a ping sent nor anything
    /// received (`None`: no keepalive), failing the connection when it is not answered within
    /// `timeout`. Any timeout here may be `Duration::MAX` (never).
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

    /// Turns write coalescing on or off (see [`coalesce_writes`](Self::coalesce_writes)).
    pub fn coalesce_writes(mut self, enabled: bool) -> Self {
        self.coalesce_writes = enabled;
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
