//! Large payloads written without a copy into the write buffer.
//!
//! `Framed` encodes every frame into its write buffer, so a 1 MiB message is copied once more
//! on its way to the socket. A session sends a payload of [`LARGE_PAYLOAD`] bytes or more
//! differently: the frame header stays in the write buffer, the write buffer's contents so
//! far and the payload (`Bytes`, shared with the caller) move to a [`WriteQueue`], and the
//! queue goes out with vectored writes (`writev`), header and payload together. Whatever is
//! encoded afterwards waits in the write buffer behind the queue, so the bytes leave in the
//! order they were sent.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Payloads from this size on are written from the caller's buffer instead of being copied.
///
/// Below it, copying into the write buffer costs less than the queue; 16 KiB frames echoed
/// with 16 in flight still go out in one `writev` (the queue holds up to [`MAX_SLICES`]).
pub(super) const LARGE_PAYLOAD: usize = 16 << 10;

/// Most slices given to one vectored write (Linux's `IOV_MAX` is 1024; a few dozen are plenty).
const MAX_SLICES: usize = 64;

/// Bytes to write, in order, before what the `Framed` write buffer holds.
#[derive(Debug, Default)]
pub(super) struct WriteQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl WriteQueue {
    /// Appends `bytes` (nothing if empty).
    pub(super) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// Bytes not yet written.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Writes everything with vectored writes; ready once the queue is empty.
    pub(super) fn poll_write<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.len > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self
                .chunks
                .iter()
                .zip(&mut slices)
                .map(|(chunk, slice)| *slice = IoSlice::new(chunk))
                .count();
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Drops the first `n` bytes.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Everything still queued, followed by `rest`, in one buffer (copied): for handing the
    /// transport back as a bare `Framed`, whose write buffer must hold all of it.
    pub(super) fn into_buffer(self, rest: &[u8]) -> BytesMut {
        let mut buf = BytesMut::with_capacity(self.len + rest.len());
        for chunk in &self.chunks {
            buf.extend_from_slice(chunk);
        }
        buf.extend_from_slice(rest);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call, vectored or not.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if !self.vectored {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
                return self.poll_write(cx, first);
            }
            let mut left = self.max;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(left);
                self.out.extend_from_slice(&buf[..take]);
                left -= take;
                n += take;
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn partial_vectored_writes_keep_the_order_of_the_chunks() {
        let chunks: Vec<Bytes> = (0u8..100).map(|i| Bytes::from(vec![i; 1 + i as usize * 7])).collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for (max, vectored) in
            [(1, true), (5, true), (333, true), (1 << 20, true), (7, false), (1 << 20, false)]
        {
            let mut queue = WriteQueue::default();
            for chunk in &chunks {
                queue.push(chunk.clone());
            }
            queue.push(Bytes::new());
            assert_eq!(queue.len(), expected.len());
            let mut io = Trickle { out: Vec::new(), max, vectored };
            let waker = futures_util::task::noop_waker();
            let poll = queue.poll_write(&mut io, &mut Context::from_waker(&waker));
            assert!(matches!(poll, Poll::Ready(Ok(()))));
            assert_eq!(queue.len(), 0);
            assert_eq!(io.out, expected, "max {max}, vectored {vectored}");
        }
    }

    #[test]
    fn a_queue_handed_back_keeps_its_bytes_before_the_rest() {
        let mut queue = WriteQueue::default();
        queue.push(Bytes::from_static(b"\x82\x7e\x40\x00"));
        queue.push(Bytes::from(vec![7; 16 << 10]));
        queue.advance(3);
        let buf = queue.into_buffer(b"\x8a\x00");
        assert_eq!(buf.len(), 1 + (16 << 10) + 2);
        assert_eq!(&buf[..2], b"\x00\x07");
        assert_eq!(&buf[buf.len() - 2..], b"\x8a\x00");
    }
}
