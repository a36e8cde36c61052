//! A session split into a read half and a write half, to drive from two tasks.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::adapters::error::Error;
use crate::connection::state::ConnectionState;
use crate::event::{CloseConnection, Event};
use crate::wire::close::CloseCode;

impl<T: AsyncRead + AsyncWrite + Unpin> Session<T> {
    /// Splits the session into a read half and a write half, to drive from two tasks.
    ///
    /// Both halves share the session: replies owed by what the reader receives (pongs, the
    /// close reply) go out through the same transport whichever half is polled, the keepalive
    /// and timeouts keep running, and either half can read the state. Whatever the transport
    /// or the timer becomes ready for wakes both halves, so neither waits on a wakeup the
    /// other consumed. [`SessionReader::reunite`] puts them back together.
    pub fn split(mut self) -> (SessionReader<T>, SessionWriter<T>) {
        self.split = true;
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
            Ok(halves) => {
                let mut session =
                    halves.session.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
                session.split = false;
                Ok(session)
            }
            Err(_) => unreachable!("both halves were given"),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> SessionWriter<T> {
    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.shared.session().state()
    }

    /// Closes cleanly (see [`Session::close_with`]): sends the close frame; the reader completes the
    /// closing handshake and sees the stream end. A code that cannot be sent is refused with
    /// [`Error::Local`] before anything happens.
    pub async fn close_with(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        let close = super::close_frame(code, reason)?;
        self.shared.session().life.handle_close_request(close);
        poll_fn(|cx| self.shared.with(cx, false, |s, cx| s.poll_send_owed(cx))).await
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
        self.shared.with(cx, false, |s, cx| {
            s.life.handle_close_request(CloseConnection::new(CloseCode::NORMAL_CLOSURE));
            s.poll_send_owed(cx)
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
