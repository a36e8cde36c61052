//! Sessions: the connection's lifecycle handled for you, over a `Framed<T, WsCodec>`.
//!
//! A [`Session`] is a `Stream` of received [`Event`]s and a `Sink` of events to send, like the
//! `Framed` it wraps, that also does what every application otherwise writes by hand (the
//! decisions are the sans-IO [`Lifecycle`]'s; the session only does the I/O and the timing):
//!
//! * **Replies**: pings are answered with pongs and the peer's close with the close frame owed,
//!   while the stream is polled, so a reader that only reads stays connected.
//! * **Keepalive**: a ping after 20 s without one; no pong within 20 s fails the connection
//!   with 1011 and [`Error::Timeout`]. The last round trip is [`Session::rtt`].
//! * **Timeouts**: idle (nothing received, off by default), send (the peer does not read: the
//!   session gives up instead of holding the connection), close (the peer does not answer our
//!   close).
//! * **Clean close**: [`Session::close`] (and `SinkExt::close`, with 1000) sends the close
//!   frame, waits (bounded) for the reply, and shuts the transport down (`poll_shutdown`: TLS
//!   sends `close_notify`). After the closing handshake, or after failing the connection, the
//!   stream drains and discards input for a bounded time before it ends, so a peer still
//!   sending reads our close code rather than a reset.
//! * **Graceful shutdown**: sessions registered with a [`Shutdown`] close with 1001 when it
//!   is triggered; [`Shutdown::graceful`] waits for them up to a deadline.
//!
//! To broadcast, send each session a clone of one [`PreparedMessage`](crate::PreparedMessage)
//! (`session.send(msg.clone().into())`): the frame is built once and shared.
//!
//! The stream ends (`None`) once the connection is over: data events, control events and the
//! received [`CloseConnection`] come out as they arrive, so a loop over
//! the stream needs no close handling of its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsproto::upgrade::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto::Event;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let (stream, _) = listener.accept().await?;
//! let mut ws = wsproto::upgrade::accept_session(stream, Default::default()).await?;
//! while let Some(event) = ws.next().await {
//!     match event? {
//!         Event::TextMessage(m) => ws.send(m.into()).await?,
//!         Event::BytesMessage(m) => ws.send(m.into()).await?,
//!         _ => {} // pings, pongs and the close are handled by the session
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Framed;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::close::CloseCode;
use crate::codec::{self, WsCodec};
use crate::error::LocalProtocolError;
use crate::event::{CloseConnection, Event};
use crate::lifecycle::{Lifecycle, SessionConfig, Timeout};
use crate::state::ConnectionState;

/// Errors of a [`Session`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// We misused the API (e.g. sent a message after Close).
    Local(LocalProtocolError),
    /// A timeout ended the connection (see [`Timeout`]).
    Timeout(Timeout),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Local(e) => write!(f, "local protocol error: {e}"),
            Error::Timeout(t) => write!(f, "session ended: {t}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Local(e) => Some(e),
            Error::Timeout(_) => None,
        }
    }
}

crate::error::wrap_errors!(Error { Error::Io: io::Error, Error::Local: LocalProtocolError, Error::Timeout: Timeout });

impl From<codec::Error> for Error {
    fn from(e: codec::Error) -> Self {
        match e {
            codec::Error::Io(e) => Error::Io(e),
            codec::Error::Local(e) => Error::Local(e),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Local(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::Timeout(t) => io::Error::new(io::ErrorKind::TimedOut, t.to_string()),
        }
    }
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Phase {
    /// Messages flow; the closing handshake may be in progress.
    Open,
    /// The closing handshake is over, or the connection failed: flushing what is owed, then
    /// shutting the transport down.
    ShuttingDown,
    /// Transport shut down: discarding input until EOF or the deadline.
    Draining,
    /// Over: the stream has ended.
    Done,
}

/// A WebSocket connection with its lifecycle handled: see the [module documentation](self).
pub struct Session<T> {
    framed: Framed<T, WsCodec>,
    life: Lifecycle,
    /// Armed at the lifecycle's next deadline, lazily: it is moved earlier when needed, never
    /// later (a deadline pushed back by traffic is found when the timer fires, and re-armed),
    /// so a busy connection does not touch the timer wheel per message.
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// The waker the timer holds (the timer is not polled again for the same task).
    timer_waker: Option<Waker>,
    phase: Phase,
    /// When draining gives up waiting for EOF.
    drain_until: Option<Instant>,
    /// A timeout to report from the stream once.
    pending_error: Option<Timeout>,
    /// Set when the session is registered with a [`Shutdown`].
    shutdown: Option<ShutdownMember>,
}

impl<T> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.framed.codec().connection().state())
            .field("phase", &self.phase)
            .field("rtt", &self.life.rtt())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// A session over an established transport (from the upgrade helper or built by hand).
    pub fn new(mut framed: Framed<T, WsCodec>, config: SessionConfig) -> Self {
        let now = Instant::now();
        framed.set_backpressure_boundary(config.write_buffer);
        Session {
            framed,
            life: Lifecycle::new(config, now.into_std()),
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            timer_waker: None,
            phase: Phase::Open,
            drain_until: None,
            pending_error: None,
            shutdown: None,
        }
    }

    /// Registers the session with a server's [`Shutdown`]: when it is triggered the session
    /// closes with 1001 (going away).
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.member());
        self
    }

    /// The `Framed` transport back (the lifecycle's pending replies and timers are dropped).
    pub fn into_inner(self) -> Framed<T, WsCodec> {
        self.framed
    }

    /// The `Framed` transport.
    pub fn get_ref(&self) -> &Framed<T, WsCodec> {
        &self.framed
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.framed.codec().connection().state()
    }

    /// The round trip of the last answered keepalive ping (Python websockets' `latency`).
    pub fn rtt(&self) -> Option<Duration> {
        self.life.rtt()
    }

    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        self.life.config()
    }

    /// Closes cleanly: sends a close frame with `code` and `reason`, waits (up to the close
    /// timeout) for the peer's reply, then shuts the transport down. Events received
    /// meanwhile are discarded.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        let close = if reason.is_empty() {
            CloseConnection::new(code)
        } else {
            CloseConnection::with_reason(code, reason)
        };
        poll_fn(|cx| self.poll_start_close(cx, &close)).await?;
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Queues `close` for sending, once, unless a close was already sent or received.
    fn poll_start_close(&mut self, cx: &mut Context<'_>, close: &CloseConnection) -> Poll<Result<(), Error>> {
        if !self.life.close_sent() && self.state() == ConnectionState::Open {
            ready!(Pin::new(&mut *self).poll_ready(cx))?;
            Pin::new(&mut *self).start_send(close.clone().into())?;
        }
        Poll::Ready(Ok(()))
    }

    /// Drives the session until the stream ends, discarding events.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Our close frame may still be in the write buffer.
        if self.phase == Phase::Open {
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.framed).poll_flush(cx) {
                self.phase = Phase::Done;
                return Poll::Ready(Err(e.into()));
            }
        }
        loop {
            match ready!(Pin::new(&mut *self).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(Error::Timeout(Timeout::Close))) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Writes what the lifecycle owes the peer, as far as the transport takes it now.
    fn poll_write_owed(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if !self.life.has_owed() {
            return Ok(());
        }
        while self.life.has_owed() {
            match Pin::new(&mut self.framed).poll_ready(cx) {
                Poll::Ready(result) => result?,
                Poll::Pending => {
                    self.life.write_stalled(now());
                    return Ok(());
                }
            }
            let Some(event) = self.life.poll_owed() else { break };
            if !self.allowed(&event) {
                continue;
            }
            self.life.sent(now(), &event);
            Pin::new(&mut self.framed).start_send(event)?;
        }
        match Pin::new(&mut self.framed).poll_flush(cx) {
            Poll::Ready(result) => {
                result?;
                self.life.write_progressed();
            }
            Poll::Pending => self.life.write_stalled(now()),
        }
        Ok(())
    }

    /// The outcome of a write poll: progress stops the send timeout; a stall starts it and
    /// is reported as the timeout once that passes.
    fn write_poll(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<Result<(), codec::Error>>,
    ) -> Poll<Result<(), Error>> {
        match poll {
            Poll::Ready(result) => {
                self.life.write_progressed();
                Poll::Ready(result.map_err(Error::from))
            }
            Poll::Pending => {
                self.life.write_stalled(now());
                self.poll_timers(cx);
                match self.pending_error.take() {
                    Some(timeout) => Poll::Ready(Err(Error::Timeout(timeout))),
                    None => Poll::Pending,
                }
            }
        }
    }

    /// Whether an owed event may still be sent (a pong is moot once we closed, a close once
    /// one was sent).
    fn allowed(&self, event: &Event) -> bool {
        matches!(
            (self.state(), event),
            (ConnectionState::Open, _) | (ConnectionState::RemoteClosing, Event::CloseConnection(_))
        )
    }

    /// Handles the deadlines that have passed and arms the timer for the next one.
    fn poll_timers(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut deadline = self.life.poll_timeout().map(Instant::from_std);
            if matches!(self.phase, Phase::ShuttingDown | Phase::Draining) {
                deadline = match (deadline, self.drain_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let Some(deadline) = deadline else { return };
            if self.armed.is_none_or(|armed| deadline < armed) {
                self.timer.as_mut().reset(deadline);
                self.armed = Some(deadline);
                self.timer_waker = None;
            } else if !self.timer.is_elapsed()
                && self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            {
                // Armed, not due, and it will wake this task: nothing to poll.
                return;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                self.timer_waker = Some(cx.waker().clone());
                return;
            }
            // Fired (perhaps at a deadline since pushed back): act, then re-arm.
            self.armed = None;
            let now = Instant::now();
            if let Some(timeout) = self.life.handle_timeout(now.into_std()) {
                self.pending_error = Some(timeout);
                if matches!(timeout, Timeout::Send | Timeout::Close) {
                    // Nothing more can be exchanged: drop the transport.
                    self.phase = Phase::Done;
                    return;
                }
            }
            if matches!(self.phase, Phase::ShuttingDown | Phase::Draining)
                && self.drain_until.is_some_and(|d| d <= now)
            {
                self.phase = Phase::Done;
                return;
            }
        }
    }

    /// Moves to the end of the connection once the closing handshake is over (or failed).
    fn update_phase(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        let over = self.state() == ConnectionState::Closed && !self.life.has_owed();
        let failed = self.pending_error.is_some() || self.life.lingering().is_some();
        if over || (failed && !self.life.has_owed()) {
            self.phase = Phase::ShuttingDown;
        }
    }

    /// Shuts the transport down, then drains input until EOF or the deadline.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.phase == Phase::ShuttingDown {
            // Until the peer's EOF, bounded by the linger time (from the failure, or from now).
            let linger = self.life.config().linger;
            let lingering = self.life.lingering().map(Instant::from_std);
            let until =
                *self.drain_until.get_or_insert_with(|| lingering.unwrap_or_else(|| Instant::now() + linger));
            // `poll_close` flushes, then shuts the write side down (TLS: close_notify).
            match Pin::new(&mut self.framed).poll_close(cx) {
                // A peer that does not read keeps the flush pending: the timer ends the wait.
                Poll::Pending if Instant::now() < until => {
                    self.poll_timers(cx);
                    if self.phase != Phase::Done {
                        return Poll::Pending;
                    }
                }
                Poll::Pending => self.phase = Phase::Done,
                Poll::Ready(_) => {
                    let role = self.framed.codec().connection().role();
                    let drains = self.pending_error.is_some() || self.life.drains_after_close(role);
                    self.phase = if drains { Phase::Draining } else { Phase::Done };
                }
            }
        }
        if self.phase == Phase::Draining {
            loop {
                match Pin::new(&mut self.framed).poll_next(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(_) => {
                        self.phase = Phase::Done;
                        break;
                    }
                    Poll::Pending => {
                        self.poll_timers(cx);
                        if self.phase == Phase::Done {
                            break;
                        }
                        return Poll::Pending;
                    }
                }
            }
        }
        Poll::Ready(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for Session<T> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(timeout) = this.pending_error.take() {
                return Poll::Ready(Some(Err(Error::Timeout(timeout))));
            }
            match this.phase {
                Phase::Done => {
                    // Over: no longer counted by a `Shutdown`.
                    this.shutdown = None;
                    return Poll::Ready(None);
                }
                Phase::ShuttingDown | Phase::Draining => {
                    ready!(this.poll_end(cx));
                    continue;
                }
                Phase::Open => {}
            }
            if let Some(member) = &mut this.shutdown {
                if member.poll_requested(cx)
                    && this.state() == ConnectionState::Open
                    && !this.life.close_sent()
                {
                    let close = CloseConnection::with_reason(CloseCode::GOING_AWAY, "server shutting down");
                    this.life.unpoll_owed(close.into());
                }
            }
            this.poll_timers(cx);
            if this.phase == Phase::Done {
                continue;
            }
            // Owed events first: replies, a keepalive ping the timers just queued, or the close
            // of a keepalive or idle timeout (reported right after).
            if let Err(e) = this.poll_write_owed(cx) {
                this.phase = Phase::Done;
                return Poll::Ready(Some(Err(e)));
            }
            if this.pending_error.is_some() {
                this.update_phase();
                continue;
            }
            match Pin::new(&mut this.framed).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    this.life.received(now(), &event);
                    if this.life.has_owed() {
                        // Answer at once (a pong, the close reply) if the transport takes it.
                        if let Err(e) = this.poll_write_owed(cx) {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    this.update_phase();
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.phase = Phase::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    // EOF: the codec reported the close (1006 or the peer's) before ending.
                    this.life.closed();
                    this.phase = Phase::ShuttingDown;
                    continue;
                }
                Poll::Pending => {
                    this.update_phase();
                    if this.phase != Phase::Open {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Event> for Session<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.poll_write_owed(cx)?;
        if this.life.has_owed() {
            // Owed events (pongs, the close reply) go first.
            this.poll_timers(cx);
            if let Some(timeout) = this.pending_error.take() {
                return Poll::Ready(Err(Error::Timeout(timeout)));
            }
            return Poll::Pending;
        }
        let poll = Pin::new(&mut this.framed).poll_ready(cx);
        this.write_poll(cx, poll)
    }

    fn start_send(self: Pin<&mut Self>, event: Event) -> Result<(), Error> {
        let this = self.get_mut();
        this.life.sent(now(), &event);
        Pin::new(&mut this.framed).start_send(event)?;
        this.update_phase();
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.framed).poll_flush(cx);
        this.write_poll(cx, poll)
    }

    /// Closes cleanly with 1000 (see [`Session::close`]).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_start_close(cx, &CloseConnection::new(CloseCode::NORMAL_CLOSURE)))?;
        this.poll_finish(cx)
    }
}

/// The current time, as the lifecycle counts it (tokio's clock, so a paused clock works).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Graceful shutdown for a server's sessions.
///
/// Register each session ([`Session::with_shutdown`]); [`graceful`](Self::graceful) asks every
/// live one to close with 1001 (going away), waits for them to finish up to a deadline, and
/// returns how many were still open then (drop them, or their tasks). Works beside hyper's or
/// axum's own graceful shutdown: trigger both from the same signal.
///
/// ```no_run
/// # async fn run() {
/// use std::time::Duration;
/// use wsproto::session::Shutdown;
///
/// let shutdown = Shutdown::new();
/// // ... each accepted connection: `session.with_shutdown(&shutdown)` ...
/// tokio::signal::ctrl_c().await.unwrap();
/// let left = shutdown.graceful(Duration::from_secs(5)).await;
/// eprintln!("{left} sessions did not close in time");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    requested: CancellationToken,
    live: AtomicUsize,
    finished: Notify,
}

impl Shutdown {
    /// A shutdown handle with no session yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many registered sessions are live.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Whether shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.is_cancelled()
    }

    /// Asks every registered session to close with 1001 and waits until they all have, or
    /// `deadline` passes; returns how many were still live then. Sessions registered later
    /// close as soon as they are polled.
    pub async fn graceful(&self, deadline: Duration) -> usize {
        self.inner.requested.cancel();
        let wait = async {
            loop {
                let finished = self.inner.finished.notified();
                if self.live() == 0 {
                    return;
                }
                finished.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.live()
    }

    fn member(&self) -> ShutdownMember {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        ShutdownMember {
            inner: self.inner.clone(),
            requested: Box::pin(self.inner.requested.clone().cancelled_owned()),
            seen: false,
        }
    }
}

/// A session's registration with a [`Shutdown`]: counted live until dropped.
struct ShutdownMember {
    inner: Arc<ShutdownInner>,
    requested: Pin<Box<WaitForCancellationFutureOwned>>,
    seen: bool,
}

impl ShutdownMember {
    /// Whether shutdown was requested (reported once).
    fn poll_requested(&mut self, cx: &mut Context<'_>) -> bool {
        if self.seen {
            return false;
        }
        if self.requested.as_mut().poll(cx).is_ready() {
            self.seen = true;
            return true;
        }
        false
    }
}

impl Drop for ShutdownMember {
    fn drop(&mut self) {
        self.inner.live.fetch_sub(1, Ordering::AcqRel);
        self.inner.finished.notify_waiters();
    }
}

// ===== split halves =====

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// Splits the session into a read half and a write half, to drive from two tasks.
    ///
    /// Both halves share the session: replies owed by what the reader receives (pongs, the
    /// close reply) go out through the same transport whichever half is polled, the keepalive
    /// and timeouts keep running, and either half can read the state. Whatever the transport
    /// or the timer becomes ready for wakes both halves, so neither waits on a wakeup the
    /// other consumed. [`SessionReader::reunite`] puts them back together.
    pub fn split(self) -> (SessionReader<T>, SessionWriter<T>) {
        let shared = Arc::new(Halves {
            session: std::sync::Mutex::new(self),
            wakers: Arc::new(BothHalves { read: AtomicWaker::new(), write: AtomicWaker::new() }),
        });
        (SessionReader { shared: shared.clone() }, SessionWriter { shared })
    }
}

/// What the halves share.
struct Halves<T> {
    session: std::sync::Mutex<Session<T>>,
    wakers: Arc<BothHalves>,
}

impl<T> Halves<T> {
    /// Runs `f` on the session with a context that wakes both halves, `cx` registered as the
    /// waker of the calling half.
    fn with<R>(
        &self,
        cx: &mut Context<'_>,
        reader: bool,
        f: impl FnOnce(&mut Session<T>, &mut Context<'_>) -> R,
    ) -> R {
        let slot = if reader { &self.wakers.read } else { &self.wakers.write };
        slot.register(cx.waker());
        let waker = Waker::from(self.wakers.clone());
        let mut both = Context::from_waker(&waker);
        let mut session = self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut session, &mut both)
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session<T>> {
        self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Wakes the tasks of both halves.
struct BothHalves {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl std::task::Wake for BothHalves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}

/// The read half of a [`Session`] (see [`Session::split`]): a `Stream` of received events.
pub struct SessionReader<T> {
    shared: Arc<Halves<T>>,
}

/// The write half of a [`Session`] (see [`Session::split`]): a `Sink` of events.
pub struct SessionWriter<T> {
    shared: Arc<Halves<T>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> SessionReader<T> {
    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.shared.session().state()
    }

    /// The round trip of the last answered keepalive ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.session().rtt()
    }

    /// Puts the halves of one session back together; halves of different sessions are given
    /// back.
    #[allow(clippy::result_large_err)]
    pub fn reunite(
        self,
        writer: SessionWriter<T>,
    ) -> Result<Session<T>, (SessionReader<T>, SessionWriter<T>)> {
        if !Arc::ptr_eq(&self.shared, &writer.shared) {
            return Err((self, writer));
        }
        drop(writer);
        match Arc::try_unwrap(self.shared) {
            Ok(halves) => Ok(halves.session.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Err(_) => unreachable!("both halves were given"),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> SessionWriter<T> {
    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.shared.session().state()
    }

    /// Closes cleanly (see [`Session::close`]); the reader sees the stream end.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        let close = if reason.is_empty() {
            CloseConnection::new(code)
        } else {
            CloseConnection::with_reason(code, reason)
        };
        poll_fn(|cx| self.shared.with(cx, false, |s, cx| s.poll_start_close(cx, &close))).await?;
        poll_fn(|cx| self.shared.with(cx, false, |s, cx| Pin::new(s).poll_flush(cx))).await
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for SessionReader<T> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.with(cx, true, |s, cx| Pin::new(s).poll_next(cx))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Event> for SessionWriter<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.with(cx, false, |s, cx| Pin::new(s).poll_ready(cx))
    }

    fn start_send(self: Pin<&mut Self>, event: Event) -> Result<(), Error> {
        Pin::new(&mut *self.shared.session()).start_send(event)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.with(cx, false, |s, cx| Pin::new(s).poll_flush(cx))
    }

    /// Sends a close with 1000 and flushes it; the reader completes the closing handshake and
    /// sees the stream end.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let close = CloseConnection::new(CloseCode::NORMAL_CLOSURE);
        self.shared.with(cx, false, |s, cx| {
            ready!(s.poll_start_close(cx, &close))?;
            Pin::new(s).poll_flush(cx)
        })
    }
}

impl<T> fmt::Debug for SessionReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionReader").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SessionWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWriter").finish_non_exhaustive()
    }
}
