//! Large payloads written without a copy into the write buffer.
//!
//! `Framed` encodes every frame into its write buffer, so a 1 MiB message is copied once more
//! on its way to the socket. A session sends a payload of [`LARGE_PAYLOAD`] bytes or more
//! differently: the frame header goes into the write buffer as usual, the payload (`Bytes`,
//! shared with the caller) into a [`WriteQueue`] that remembers where in the write buffer it
//! belongs, and both go out with vectored writes (`writev`): the write buffer up to the
//! header's end, the payload, the rest of the write buffer. Whatever is encoded afterwards
//! follows in the write buffer, so the bytes leave in the order they were sent.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Payloads from this size on are written from the caller's buffer instead of being copied.
///
/// Below it, copying into the write buffer costs less than a separate slice; 16 KiB frames
/// echoed with 16 in flight still go out in one `writev`.
pub(super) const LARGE_PAYLOAD: usize = 16 << 10;

/// Most slices given to one vectored write: seven payloads and the write buffer around them.
const MAX_SLICES: usize = 16;

/// Payloads to write between the bytes of the `Framed` write buffer.
#[derive(Debug, Default)]
pub(super) struct WriteQueue {
    /// Each payload, after the given number of write-buffer bytes (those after the previous
    /// payload).
    parts: VecDeque<(usize, Bytes)>,
    /// Write-buffer bytes that come before the last payload.
    buffered_before: usize,
    /// Payload bytes not yet written.
    len: usize,
}

impl WriteQueue {
    /// Queues `payload` to go out after the `buffered` bytes now in the write buffer.
    pub(super) fn push(&mut self, buffered: usize, payload: Bytes) {
        let before = buffered - self.buffered_before;
        self.buffered_before = buffered;
        self.len += payload.len();
        self.parts.push_back((before, payload));
    }

    /// Payload bytes not yet written.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued: the write buffer is written as `Framed` does it.
    pub(super) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Writes the payloads and `buffer` (the write buffer, consumed as it is written) with
    /// vectored writes; ready once every payload is out (the write buffer too, unless the
    /// last write stopped in it).
    pub(super) fn poll_write<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        buffer: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.parts.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            let mut at = 0;
            for (before, payload) in &self.parts {
                if count + 3 > MAX_SLICES {
                    break;
                }
                slices[count] = IoSlice::new(&buffer[at..at + before]);
                slices[count + 1] = IoSlice::new(payload);
                count += 2;
                at += before;
            }
            if count / 2 == self.parts.len() {
                // Everything: the rest of the write buffer follows the last payload.
                slices[count] = IoSlice::new(&buffer[at..]);
                count += 1;
            }
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(buffer, written);
        }
        self.buffered_before = 0;
        Poll::Ready(Ok(()))
    }

    /// Drops the first `n` bytes written, from `buffer` and the payloads in turn.
    fn advance(&mut self, buffer: &mut BytesMut, mut n: usize) {
        while n > 0 {
            let Some((before, payload)) = self.parts.front_mut() else {
                buffer.advance(n);
                return;
            };
            let k = n.min(*before);
            buffer.advance(k);
            *before -= k;
            self.buffered_before -= k;
            n -= k;
            let k = n.min(payload.len());
            payload.advance(k);
            self.len -= k;
            n -= k;
            if payload.is_empty() {
                self.parts.pop_front();
            }
        }
    }

    /// The payloads and `buffer` interleaved in one buffer (copied): for handing the
    /// transport back as a bare `Framed`, whose write buffer must hold all of it.
    pub(super) fn take_into_buffer(&mut self, buffer: &[u8]) -> BytesMut {
        let mut all = BytesMut::with_capacity(self.len + buffer.len());
        let mut at = 0;
        for (before, payload) in self.parts.drain(..) {
            all.extend_from_slice(&buffer[at..at + before]);
            all.extend_from_slice(&payload);
            at += before;
        }
        all.extend_from_slice(&buffer[at..]);
        self.len = 0;
        self.buffered_before = 0;
        all
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

    /// Twenty payloads (more than one vectored write takes) between pieces of the write
    /// buffer, some empty, and what was encoded after the last one; the bytes in order.
    fn queued() -> (WriteQueue, BytesMut, Vec<u8>) {
        let mut queue = WriteQueue::default();
        let mut buffer = BytesMut::new();
        let mut expected = Vec::new();
        for i in 0u8..20 {
            let head = vec![0xf0 | (i % 16); (i as usize % 3) * 5];
            buffer.extend_from_slice(&head);
            expected.extend_from_slice(&head);
            let payload = vec![i; 1 + i as usize * 7];
            expected.extend_from_slice(&payload);
            queue.push(buffer.len(), Bytes::from(payload));
        }
        buffer.extend_from_slice(b"after");
        expected.extend_from_slice(b"after");
        (queue, buffer, expected)
    }

    #[test]
    fn partial_vectored_writes_keep_the_payloads_between_their_buffer_bytes() {
        for (max, vectored) in
            [(1, true), (5, true), (333, true), (1 << 20, true), (7, false), (1 << 20, false)]
        {
            let (mut queue, mut buffer, expected) = queued();
            let mut io = Trickle { out: Vec::new(), max, vectored };
            let waker = futures_util::task::noop_waker();
            let poll = queue.poll_write(&mut io, &mut buffer, &mut Context::from_waker(&waker));
            assert!(matches!(poll, Poll::Ready(Ok(()))));
            assert!(queue.is_empty());
            assert_eq!(queue.len(), 0);
            // What the last write left of the write buffer is written as `Framed` would.
            io.out.extend_from_slice(&buffer);
            assert_eq!(io.out, expected, "max {max}, vectored {vectored}");
        }
    }

    #[test]
    fn a_queue_handed_back_interleaves_its_payloads_with_the_buffer() {
        let (mut queue, mut buffer, expected) = queued();
        let mut io = Trickle { out: Vec::new(), max: 10, vectored: true };
        let waker = futures_util::task::noop_waker();
        // One write of 10 bytes, by hand: part of the first piece and payload.
        let slices = [IoSlice::new(&buffer[..0]), IoSlice::new(&queue.parts[0].1)];
        let poll = Pin::new(&mut io).poll_write_vectored(&mut Context::from_waker(&waker), &slices);
        let Poll::Ready(Ok(n)) = poll else { unreachable!() };
        queue.advance(&mut buffer, n);
        let mut all = io.out.clone();
        all.extend_from_slice(&queue.take_into_buffer(&buffer));
        assert_eq!(all, expected);
        assert!(queue.is_empty());
    }
}
