//! Graceful shutdown of a server's sessions.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Graceful shutdown for a server's sessions.
///
/// Register each session ([`Session::with_shutdown`](super::Session::with_shutdown)); [`graceful`](Self::graceful) asks every
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
    /// Set before `requested` is cancelled: what a busy session checks per poll (one atomic
    /// load; the token's own check takes a lock).
    flag: AtomicBool,
    /// Wakes the sessions parked waiting for input.
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
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Asks every registered session to close with 1001 and waits until they all have, or
    /// `deadline` passes; returns how many were still live then. Sessions registered later
    /// close as soon as they are polled.
    pub async fn graceful(&self, deadline: Duration) -> usize {
        let started = tokio::time::Instant::now();
        crate::trace::shutdown_started(self.live());
        self.inner.flag.store(true, Ordering::Release);
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
        let left = self.live();
        crate::trace::shutdown_finished(left, started.elapsed());
        left
    }

    pub(super) fn member(&self) -> ShutdownMember {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        ShutdownMember {
            inner: self.inner.clone(),
            requested: Box::pin(self.inner.requested.clone().cancelled_owned()),
            seen: false,
        }
    }
}

/// A session's registration with a [`Shutdown`]: counted live until dropped.
pub(super) struct ShutdownMember {
    inner: Arc<ShutdownInner>,
    requested: Pin<Box<WaitForCancellationFutureOwned>>,
    seen: bool,
}

impl ShutdownMember {
    /// Whether shutdown was requested (reported once): one atomic load, for every poll.
    #[inline]
    pub(super) fn requested(&mut self) -> bool {
        if self.seen || !self.inner.flag.load(Ordering::Acquire) {
            return false;
        }
        self.seen = true;
        true
    }

    /// [`requested`](Self::requested), and if not, makes sure the task is woken when it is:
    /// for a session about to wait for input (a busy one finds the flag on its next poll).
    pub(super) fn poll_requested(&mut self, cx: &mut Context<'_>) -> bool {
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
