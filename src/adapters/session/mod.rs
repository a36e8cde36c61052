//! Sessions: the connection's lifecycle handled for you, over a `Framed<T, WsCodec>`.
//!
//! A [`Session`] is a `Stream` of received [`Event`]s and a `Sink` of events to send, like the
//! `Framed` it wraps, that also does what every application otherwise writes by hand (the
//! decisions are the sans-IO [`Lifecycle`]'s; the session only does the I/O and the timing):
//!
//! * **Replies**: pings are answered with pongs and the peer's close with the close frame owed,
//!   while the stream is polled, so a reader that only reads stays connected.
//! * **Keepalive**: a ping after 20 s in which nothing was received and no ping sent; no pong
//!   within 20 s fails the connection with 1011 and [`Error::Timeout`]. The last round trip is
//!   [`Session::rtt`].
//! * **Timeouts**: idle (nothing received, off by default), send (the peer does not read: the
//!   session gives up instead of holding the connection), close (the peer does not answer our
//!   close).
//! * **Clean close**: [`Session::close_with`] (and `SinkExt::close`, with 1000) sends the close
//!   frame, waits (bounded) for the reply, and shuts the transport down (`poll_shutdown`: TLS
//!   sends `close_notify`). After a failure, and as a client after the closing handshake, the
//!   stream drains and discards input for a bounded time before it ends, so a peer still
//!   sending reads our close code rather than a reset.
//! * **Sending while closing**: once the close has begun (ours sent or queued, or the peer's
//!   received), messages sent are discarded rather than refused, so an echo or broadcast loop
//!   keeps running until the stream ends and the closing handshake completes.
//! * **Graceful shutdown**: sessions registered with a [`Shutdown`] close with 1001 when it
//!   is triggered; [`Shutdown::graceful`] waits for them up to a deadline.
//! * **Writes**: replies to pipelined messages go out together (see
//!   [`SessionConfig::coalesce_writes`]); a payload of 16 KiB or more goes out from your
//!   `Bytes`, header and payload in one vectored write, without a copy into the write buffer
//!   (over transports that take vectored writes, such as TCP and tokio-rustls streams).
//!
//! To broadcast, send each session a clone of one [`PreparedMessage`](crate::PreparedMessage)
//! (`session.send(msg.clone().into())`): the frame is built once and shared.
//!
//! The stream ends (`None`) once the connection is over: data events, control events and the
//! received [`CloseConnection`] come out as they arrive, so a loop over
//! the stream needs no close handling of its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsproto::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto::Event;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let (stream, _) = listener.accept().await?;
//! let (mut ws, _request) = wsproto::upgrade::accept(stream, Default::default()).await?;
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
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Framed;

use crate::adapters::error::Error;
use crate::codec::{self, WsCodec};
use crate::connection::state::ConnectionState;
use crate::connection::traffic::Traffic;
use crate::event::{CloseConnection, Event};
use crate::lifecycle::{Lifecycle, LifecyclePhase, SessionConfig, Timeout};
use crate::trace::{self, ConnectionLog};
use crate::wire::close::CloseCode;

mod queue;
mod shutdown;
mod split;

use queue::{WriteQueue, LARGE_PAYLOAD};
pub use shutdown::Shutdown;
use shutdown::ShutdownMember;
pub use split::{SessionReader, SessionWriter};

/// A WebSocket connection with its lifecycle handled: see the [module documentation](self).
///
/// The session moves bytes and arms one timer; every decision (what to answer, when to close,
/// drain and end) is its [`Lifecycle`]'s.
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
    /// Set when the session is registered with a [`Shutdown`].
    shutdown: Option<ShutdownMember>,
    /// The last event came out while more input was buffered: the next flush may wait for
    /// the replies to it (see [`SessionConfig::coalesce_writes`]).
    read_ahead: bool,
    /// A flush was held back: the writes go out when reading would wait.
    deferred: bool,
    /// Split into halves: never coalesce (the reader may be parked on something else).
    pub(super) split: bool,
    /// Large payloads sent without a copy, each written after its place in the `Framed`
    /// write buffer (see the `queue` module). Boxed, and made on the first one: a connection
    /// that never sends one carries a pointer.
    queue: Option<Box<WriteQueue>>,
    /// The connection's span and closing log line (feature `tracing`; zero-sized without).
    log: ConnectionLog,
    /// A write failed while reading: the events already in the read buffer are delivered
    /// first, then this error (a peer that sent a ping and a message and vanished is heard
    /// in full). Boxed: a connection carries a pointer.
    write_error: Option<Box<Error>>,
}

/// A session's statistics at one moment ([`Session::stats`]): plain data.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages and bytes received and sent (see [`Traffic`](crate::Traffic)).
    pub traffic: Traffic,
    /// The round trip of the last answered keepalive ping.
    pub rtt: Option<Duration>,
    /// The keepalive round trips smoothed (RFC 6298's SRTT: each sample counts for 1/8).
    pub smoothed_rtt: Option<Duration>,
    /// How long since the last event from the peer (a message, a ping or pong, a close), or
    /// since the session started.
    pub since_last_received: Duration,
    /// Bytes encoded and not yet written to the transport.
    pub write_buffered: usize,
}

impl<T> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.framed.codec().connection().state())
            .field("phase", &self.life.phase())
            .field("rtt", &self.life.rtt())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// A session over an established transport (from the upgrade helper or built by hand).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with its time driver (`enable_time`, or `enable_all`): the
    /// session's timer is made here.
    pub fn new(mut framed: Framed<T, WsCodec>, config: SessionConfig) -> Self {
        let now = Instant::now();
        framed.set_backpressure_boundary(config.write_buffer);
        let role = framed.codec().connection().role();
        let log = ConnectionLog::new(role, framed.codec().connection().extensions());
        Session {
            framed,
            life: Lifecycle::new(config, role, now.into_std()),
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            timer_waker: None,
            shutdown: None,
            read_ahead: false,
            deferred: false,
            write_error: None,
            split: false,
            queue: None,
            log,
        }
    }

    /// Registers the session with a server's [`Shutdown`]: when it is triggered the session
    /// closes with 1001 (going away).
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.member());
        self
    }

    /// The bare `Framed` transport, for tokio-util pipelines (the lifecycle's pending replies
    /// and timers are dropped: from then on nothing is answered by itself). Bytes sent and not
    /// yet written are in its write buffer.
    pub fn into_inner(mut self) -> Framed<T, WsCodec> {
        self.log.detach();
        if let Some(queue) = self.queue.as_mut().filter(|queue| !queue.is_empty()) {
            let all = queue.take_into_buffer(self.framed.write_buffer());
            *self.framed.write_buffer_mut() = all;
        }
        self.framed
    }

    /// The transport under the session (the TCP or TLS stream, hyper's upgraded I/O...).
    pub fn get_ref(&self) -> &T {
        self.framed.get_ref()
    }

    /// The sans-IO connection: negotiated extensions, the role, the state.
    pub fn connection(&self) -> &crate::connection::Connection {
        self.framed.codec().connection()
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.framed.codec().connection().state()
    }

    /// The round trip of the last answered keepalive ping (Python websockets' `latency`).
    pub fn rtt(&self) -> Option<Duration> {
        self.life.rtt()
    }

    /// The connection's statistics now, in one read: traffic counters, round trips, time
    /// since the peer was last heard from, bytes waiting to be written.
    ///
    /// ```no_run
    /// # async fn run(ws: wsproto::session::Session<tokio::net::TcpStream>) {
    /// let stats = ws.stats();
    /// println!(
    ///     "{} messages in, {} out, {} wire bytes sent, rtt {:?}, quiet for {:?}",
    ///     stats.traffic.messages_received,
    ///     stats.traffic.messages_sent,
    ///     stats.traffic.bytes_sent,
    ///     stats.smoothed_rtt,
    ///     stats.since_last_received,
    /// );
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        Stats {
            traffic: self.framed.codec().connection().traffic(),
            rtt: self.life.rtt(),
            smoothed_rtt: self.life.smoothed_rtt(),
            since_last_received: Instant::now()
                .into_std()
                .saturating_duration_since(self.life.last_received()),
            write_buffered: self.write_buffered(),
        }
    }

    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        self.life.config()
    }

    /// Runs a lifecycle input that may log (a close, a timeout, the end of input) inside the
    /// connection's span; the per-message inputs are called directly.
    fn logged<R>(&mut self, input: impl FnOnce(&mut Lifecycle) -> R) -> R {
        let Session { log, life, .. } = self;
        log.in_span(|| input(life))
    }

    /// A control frame (or close) was written to the connection.
    fn sent_control(&mut self, event: &Event) {
        if let Event::CloseConnection(close) = event {
            self.log.close(close, false);
            self.logged(|life| life.handle_sent(now(), event));
        } else {
            self.life.handle_sent(now(), event);
        }
    }

    /// The transport failed: nothing more can be exchanged.
    fn transport_failed(&mut self, error: &dyn fmt::Display) {
        self.log.in_span(|| trace::transport_failed(error));
        self.life.handle_transport_error();
        self.log_ended();
    }

    /// A timeout ended the connection: the close frame it queued (1001 idle, 1011 keepalive)
    /// is written as far as the transport takes it now, before the application hears of it:
    /// a loop that stops at the error (`event?`) drops the session right after. If the
    /// application goes on polling, the session completes the closing handshake as usual.
    fn timeout_error(&mut self, cx: &mut Context<'_>, timeout: Timeout) -> Error {
        if let Err(e) = self.poll_write_owed(cx) {
            self.transport_failed(&e);
        }
        self.log_ended();
        Error::Timeout(timeout)
    }

    /// The connection's closing line (once): when its stream ends, or when an error ends it
    /// for the application (which may never poll it again).
    fn log_ended(&mut self) {
        let traffic = self.framed.codec().connection().traffic();
        let timeout = self.life.timed_out();
        self.log.ended(timeout.as_ref().map(|t| t as &dyn fmt::Display), &traffic);
    }

    /// A write failed while reading (see `write_error`): nothing more can be sent, but what
    /// the peer sent before is delivered.
    fn write_failed(&mut self, error: Error) {
        self.transport_failed(&error);
        self.write_error = Some(Box::new(error));
    }

    /// After a failed write: the next event already in the read buffer (the transport is not
    /// read again), then the write's error. A frame the buffer holds only part of, or one
    /// that breaks the protocol, ends it there: nothing can be answered any more. After the
    /// peer's close the stream just ends, as when its close arrives with the write failing.
    fn next_buffered_or(&mut self, error: Box<Error>) -> Result<Event, Error> {
        let mut buffer = std::mem::take(self.framed.read_buffer_mut());
        let decoded = tokio_util::codec::Decoder::decode(self.framed.codec_mut(), &mut buffer);
        *self.framed.read_buffer_mut() = buffer;
        match decoded {
            Ok(Some(event)) => {
                if !matches!(event, Event::CloseConnection(_)) {
                    self.write_error = Some(error);
                }
                Ok(event)
            }
            Ok(None) | Err(_) => Err(*error),
        }
    }

    /// The HTTP version and subprotocol of the handshake, for the connection's span.
    pub(crate) fn record_handshake(&self, http: &str, subprotocol: Option<&str>) {
        trace::handshake_accepted(http, subprotocol, self.connection().extensions().len());
        self.log.record_handshake(http, subprotocol);
    }

    /// Bytes sent and not yet written to the transport.
    fn write_buffered(&self) -> usize {
        self.framed.write_buffer().len() + self.queue.as_ref().map_or(0, |queue| queue.len())
    }

    /// Encodes a message, leaving a large payload out of the write buffer (see the `queue`
    /// module) where the transport takes vectored writes; others are copied as `Framed` does.
    fn start_send_data(&mut self, event: Event) -> Result<(), Error> {
        let len = match &event {
            Event::TextMessage(m) => m.data.len(),
            Event::BytesMessage(m) => m.data.len(),
            Event::PreparedMessage(m) => m.len(),
            _ => 0,
        };
        if len < LARGE_PAYLOAD || !self.framed.get_ref().is_write_vectored() {
            return Ok(Pin::new(&mut self.framed).start_send(event)?);
        }
        let mut buffer = std::mem::take(self.framed.write_buffer_mut());
        let result = self.framed.codec_mut().encode_split(event, &mut buffer, LARGE_PAYLOAD);
        if let Ok(Some(payload)) = result {
            // Written after the header, and everything encoded before it.
            self.queue.get_or_insert_with(Default::default).push(buffer.len(), payload);
            *self.framed.write_buffer_mut() = buffer;
            return Ok(());
        }
        *self.framed.write_buffer_mut() = buffer;
        result?;
        Ok(())
    }

    /// Whether large payloads wait to be written (then the session, not `Framed`, writes the
    /// write buffer: they go between its bytes).
    fn queued(&self) -> bool {
        self.queue.as_ref().is_some_and(|queue| !queue.is_empty())
    }

    /// Writes the queued payloads with the write buffer around them; ready once they are out
    /// (the write buffer may still hold what the last write did not take).
    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), codec::Error>> {
        let Some(queue) = self.queue.as_mut().filter(|queue| !queue.is_empty()) else {
            return Poll::Ready(Ok(()));
        };
        // Out of `Framed` while the transport is borrowed; put back whatever happens.
        let mut buffer = std::mem::take(self.framed.write_buffer_mut());
        let result = queue.poll_write(self.framed.get_mut(), &mut buffer, cx);
        *self.framed.write_buffer_mut() = buffer;
        ready!(result)?;
        Poll::Ready(Ok(()))
    }

    /// `Framed::poll_ready` with the queue in front: ready while what waits to be written is
    /// under the write buffer's bound.
    fn poll_ready_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), codec::Error>> {
        if self.queued() && self.write_buffered() >= self.life.config().write_buffer {
            ready!(self.poll_write_queue(cx))?;
        }
        Pin::new(&mut self.framed).poll_ready(cx)
    }

    /// `Framed::poll_flush` with the queue in front.
    fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), codec::Error>> {
        ready!(self.poll_write_queue(cx))?;
        Pin::new(&mut self.framed).poll_flush(cx)
    }

    /// Closes cleanly: sends a close frame with `code` and `reason`, waits (up to the close
    /// timeout) for the peer's reply, then shuts the transport down. Events received
    /// meanwhile are discarded. If the close has begun already, waits for it to finish.
    ///
    /// A code that cannot be sent (1005 with a reason, 1006, 1015, codes outside the
    /// registry below 3000, or beyond 4999) is refused with [`Error::Local`] before anything
    /// happens: the session is unchanged.
    pub async fn close_with(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        let close = close_frame(code, reason)?;
        self.logged(|life| life.handle_close_request(close));
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Drives the session until the stream ends, discarding events.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match ready!(Pin::new(&mut *self).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                // The peer did not answer: the connection is closed all the same.
                Some(Err(Error::Timeout(Timeout::Close))) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Writes what the lifecycle owes the peer, then flushes; ready once all of it is out.
    fn poll_send_owed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(Pin::new(&mut *self).poll_ready(cx))?;
        Pin::new(&mut *self).poll_flush(cx)
    }

    /// Writes what the lifecycle owes the peer, as far as the transport takes it now.
    fn poll_write_owed(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if !self.life.has_owed() {
            return Ok(());
        }
        loop {
            match self.poll_ready_io(cx) {
                Poll::Ready(result) => result?,
                Poll::Pending => {
                    self.life.handle_write_stalled(now());
                    return Ok(());
                }
            }
            let Some(event) = self.life.poll_transmit(self.state()) else { break };
            // Owed events are control frames: the clone is a few bytes.
            Pin::new(&mut self.framed).start_send(event.clone())?;
            self.sent_control(&event);
        }
        self.poll_flush_buffered(cx)
    }

    /// Writes held back for coalescing, now that reading would wait.
    fn poll_write_deferred(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if !self.deferred {
            return Ok(());
        }
        self.poll_flush_buffered(cx)
    }

    /// Flushes what is buffered as far as the transport takes it now, and tells the lifecycle
    /// whether the write progressed or stalled.
    fn poll_flush_buffered(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        match self.poll_flush_io(cx) {
            Poll::Ready(result) => {
                result?;
                self.deferred = false;
                self.life.handle_write_progress();
                self.release_flushed_write_buffer();
            }
            // The transport wakes us when it takes more; the send timeout runs meanwhile. The
            // flush is retried when reading would wait, so replies left in the buffer go out
            // once the peer reads again, even if the application never sends.
            Poll::Pending => {
                self.deferred = true;
                self.life.handle_write_stalled(now());
            }
        }
        Ok(())
    }

    /// Drops a flushed write buffer that grew for a large frame now, not at the next send:
    /// an idle connection would keep it (the largest frame it sent) until then.
    fn release_flushed_write_buffer(&mut self) {
        if self.framed.codec().releases(self.framed.write_buffer()) {
            let mut buffer = std::mem::take(self.framed.write_buffer_mut());
            self.framed.codec_mut().release_flushed(&mut buffer);
            *self.framed.write_buffer_mut() = buffer;
        }
    }

    /// On a timer (a keepalive or other deadline, so at least once per keepalive interval):
    /// a read buffer with nothing in it gives back the read-ahead a past burst reserved (up to
    /// 128 KiB per connection), so a connection gone quiet keeps the idle size.
    fn release_idle_read_buffer(&mut self) {
        if self.framed.read_buffer().is_empty() {
            let mut buffer = std::mem::take(self.framed.read_buffer_mut());
            self.framed.codec_mut().release_idle(&mut buffer);
            *self.framed.read_buffer_mut() = buffer;
        }
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
                self.life.handle_write_progress();
                Poll::Ready(result.map_err(Error::from))
            }
            Poll::Pending => {
                self.life.handle_write_stalled(now());
                self.poll_timers(cx);
                match self.life.poll_error() {
                    Some(timeout) => Poll::Ready(Err(self.timeout_error(cx, timeout))),
                    None => Poll::Pending,
                }
            }
        }
    }

    /// Hands the lifecycle the deadlines that passed and arms the timer for the next one.
    /// Returns whether a deadline was handled (the caller looks at the lifecycle again).
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        let mut handled = false;
        loop {
            let Some(deadline) = self.life.poll_timeout().map(Instant::from_std) else { return handled };
            if self.armed.is_none_or(|armed| deadline < armed) {
                self.timer.as_mut().reset(deadline);
                self.armed = Some(deadline);
                self.timer_waker = None;
            } else if !self.timer.is_elapsed()
                && self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            {
                // Armed, not due, and it will wake this task: nothing to poll.
                return handled;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                self.timer_waker = Some(cx.waker().clone());
                return handled;
            }
            // Fired (perhaps at a deadline since pushed back): act, then re-arm.
            self.armed = None;
            self.logged(|life| life.handle_timeout(now()));
            self.release_idle_read_buffer();
            handled = true;
            if self.life.phase() == LifecyclePhase::Done {
                return true;
            }
        }
    }

    /// [`LifecyclePhase::ShuttingDown`]: writes what is still owed, then shuts the write side down.
    fn poll_shut_down(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Err(e) = self.poll_write_owed(cx) {
            self.transport_failed(&e);
            return Poll::Ready(());
        }
        if !self.life.has_owed() {
            // `poll_close` flushes, then shuts the write side down (TLS: close_notify). Its
            // error changes nothing: the connection is ending either way.
            if self.poll_write_queue(cx).is_ready() && Pin::new(&mut self.framed).poll_close(cx).is_ready() {
                self.life.handle_shut_down(now());
                return Poll::Ready(());
            }
        }
        // A peer that does not read keeps the flush pending: the deadline ends the wait.
        if self.poll_timers(cx) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// [`LifecyclePhase::Draining`]: discards input until the peer's EOF or the deadline.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.framed).poll_next(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(_) => {
                    self.life.handle_eof(now());
                    return Poll::Ready(());
                }
                Poll::Pending if self.poll_timers(cx) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for Session<T> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(error) = this.write_error.take() {
                return Poll::Ready(Some(this.next_buffered_or(error)));
            }
            if let Some(timeout) = this.life.poll_error() {
                return Poll::Ready(Some(Err(this.timeout_error(cx, timeout))));
            }
            match this.life.phase() {
                LifecyclePhase::Open => {}
                LifecyclePhase::ShuttingDown => {
                    ready!(this.poll_shut_down(cx));
                    continue;
                }
                LifecyclePhase::Draining => {
                    ready!(this.poll_drain(cx));
                    continue;
                }
                LifecyclePhase::Done => {
                    // Over: no longer counted by a `Shutdown`.
                    this.shutdown = None;
                    this.log_ended();
                    return Poll::Ready(None);
                }
            }
            if this.shutdown.as_mut().is_some_and(ShutdownMember::requested) {
                this.logged(Lifecycle::handle_shutdown_request);
            }
            if this.poll_timers(cx) {
                continue;
            }
            // Owed events first: replies, a keepalive ping, our close.
            if let Err(e) = this.poll_write_owed(cx) {
                this.write_failed(e);
                continue;
            }
            if this.life.phase() != LifecyclePhase::Open {
                continue;
            }
            match Pin::new(&mut this.framed).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    if let Event::CloseConnection(close) = &event {
                        this.log.close(close, true);
                        this.logged(|life| life.handle_received(now(), &event));
                    } else {
                        // Messages, pings and pongs log nothing at `debug` and above. A
                        // message decoded from the bytes of the read before it arrived with
                        // it: its time is known without reading the clock again (one clock
                        // read per read, not per pipelined message).
                        let message = matches!(event, Event::TextMessage(_) | Event::BytesMessage(_));
                        let at = if message && !this.framed.codec().decoded_fresh_bytes() {
                            this.life.last_received()
                        } else {
                            now()
                        };
                        this.life.handle_received(at, &event);
                    }
                    this.read_ahead = this.life.config().coalesce_writes
                        && !this.split
                        && !this.framed.read_buffer().is_empty();
                    // Answer at once (a pong, the close reply) if the transport takes it.
                    if let Err(e) = this.poll_write_owed(cx) {
                        // A peer that closed may be gone before our reply: its close is what
                        // the application hears of (the stream ends after it), not the write.
                        // Any other event is delivered, then what else is buffered, then the
                        // error.
                        if matches!(event, Event::CloseConnection(_)) {
                            this.transport_failed(&e);
                        } else {
                            this.write_failed(e);
                        }
                    }
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.transport_failed(&e);
                    return Poll::Ready(Some(Err(e.into())));
                }
                // EOF: the codec reported the close (1006 or the peer's) before ending.
                Poll::Ready(None) => this.logged(|life| life.handle_eof(now())),
                Poll::Pending => {
                    this.read_ahead = false;
                    if let Err(e) = this.poll_write_deferred(cx) {
                        this.write_failed(e);
                        continue;
                    }
                    // Waiting for input: to be woken by a shutdown request too (checked here,
                    // not per message: registering takes locks).
                    if this.shutdown.as_mut().is_some_and(|member| member.poll_requested(cx)) {
                        this.logged(Lifecycle::handle_shutdown_request);
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
        if let Err(e) = this.poll_write_owed(cx) {
            this.transport_failed(&e);
            return Poll::Ready(Err(e));
        }
        if this.life.has_owed() {
            // Owed events (pongs, the close reply) go first.
            this.poll_timers(cx);
            if let Some(timeout) = this.life.poll_error() {
                return Poll::Ready(Err(this.timeout_error(cx, timeout)));
            }
            return Poll::Pending;
        }
        if this.life.closing() {
            // What is sent now is discarded (see `Lifecycle::admits`): no need to wait.
            return Poll::Ready(Ok(()));
        }
        let poll = this.poll_ready_io(cx);
        this.write_poll(cx, poll)
    }

    fn start_send(self: Pin<&mut Self>, event: Event) -> Result<(), Error> {
        let this = self.get_mut();
        if !this.life.admits(this.state(), &event) {
            return Ok(());
        }
        match event {
            Event::TextMessage(_) | Event::BytesMessage(_) | Event::PreparedMessage(_) => {
                this.start_send_data(event)?;
            }
            control => {
                Pin::new(&mut this.framed).start_send(control.clone())?;
                this.sent_control(&control);
            }
        }
        Ok(())
    }

    /// Flushes, except right after an event that more buffered input follows (see
    /// [`SessionConfig::coalesce_writes`]): then the writes wait for the replies to that
    /// input, up to the write buffer's bound, and go out when reading would wait.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.read_ahead) && this.write_buffered() < this.life.config().write_buffer {
            this.deferred = true;
            return Poll::Ready(Ok(()));
        }
        let poll = this.poll_flush_io(cx);
        if poll.is_ready() {
            this.deferred = false;
        }
        let flushed = this.write_poll(cx, poll);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.release_flushed_write_buffer();
        }
        flushed
    }

    /// Closes cleanly with 1000 (see [`Session::close_with`]).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.logged(|life| life.handle_close_request(CloseConnection::new(CloseCode::NORMAL_CLOSURE)));
        this.poll_finish(cx)
    }
}

/// A close frame with `code` and `reason` (none when empty), if it can be sent.
fn close_frame(code: impl Into<CloseCode>, reason: &str) -> Result<CloseConnection, Error> {
    let close = if reason.is_empty() {
        CloseConnection::new(code)
    } else {
        CloseConnection::with_reason(code, reason)
    };
    crate::connection::check_close(&close)?;
    Ok(close)
}

/// The current time, as the lifecycle counts it (tokio's clock, so a paused clock works).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}
