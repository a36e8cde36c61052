//! How the codec sizes `Framed`'s read and write buffers.
//!
//! `Framed` owns both buffers and starts each at 8 KiB; the policy below adapts them to the
//! traffic, measured in `bench/` (see the CHANGELOG's performance entries):
//!
//! * **Read-ahead.** While reads keep filling the read buffer the transport has more queued:
//!   the room kept for the next read doubles, from 16 KiB up to 128 KiB, so a busy connection
//!   makes one system call per several queued messages. A read that leaves room resets it.
//! * **Release after a large payload.** A payload is split out of the read buffer without
//!   copying, so after a large one the buffer's allocation lives on in the user's `Bytes`; once
//!   the buffer is drained at a frame boundary it is replaced by a fresh 8 KiB one (in the
//!   middle of a frame streamed in chunks it is kept: the next chunk reclaims it in place).
//! * **Idle connections.** A connection waiting at a frame boundary after small reads
//!   (under 512 B) keeps a 1 KiB read buffer; the decoder reserves more as soon as a header
//!   announces a larger frame. After a burst the read-ahead stays reserved while traffic
//!   may resume; a `Session` gives it back when its timer finds the connection quiet
//!   (`WsCodec::release_idle`, at the latest after the keepalive interval).
//! * **Write buffer.** Once flushed, a write buffer that held over 1 KiB is dropped (by the
//!   session right after the flush, else at the next encode); the next frame reserves exactly
//!   what it needs.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, FramedParts};

use super::WsCodec;
use crate::event::Event;

/// Buffers that grew beyond this for a large message are released once empty.
const SHRINK_ABOVE: usize = 64 << 10;
/// Capacity a drained read buffer shrinks back to after a large payload.
const BUFFER_CAPACITY: usize = 8 << 10;
/// Read buffer kept by a connection waiting at a frame boundary (fits typical small messages).
const IDLE_READ_CAPACITY: usize = 1 << 10;
/// Read-ahead after the first read that filled the read buffer.
const MIN_READ_AHEAD: usize = 16 << 10;
/// Most free space kept for one read while reads keep filling the buffer.
const MAX_READ_AHEAD: usize = 128 << 10;
/// Largest write buffer kept once flushed.
const IDLE_WRITE_CAPACITY: usize = 1 << 10;

/// A `Framed` for a connection just upgraded, with `leftover` (bytes read past the handshake)
/// in its read buffer, starting at an idle connection's sizes: a 1 KiB read buffer (unless
/// `leftover` holds bytes to decode first) and no write buffer.
///
/// `Framed` itself starts both at 8 KiB. When many connections arrive together (a reconnect
/// storm, a load test), each touches a page of its 8 KiB read buffer before the policy below
/// shrinks it, and the allocator keeps those pages: 10.6 KiB RSS per connection with 4,096
/// clients echoing 5 B messages, against 3.4 KiB for the same connections opened one by one.
pub(crate) fn upgraded_framed<T: AsyncRead + AsyncWrite>(
    io: T,
    codec: WsCodec,
    leftover: BytesMut,
) -> Framed<T, WsCodec> {
    let mut parts = FramedParts::new::<Event>(io, codec);
    let empty = leftover.is_empty();
    // Given to `from_parts` so that `Framed` decodes it before reading (it checks only then);
    // the first decode then sizes the buffer.
    parts.read_buf = leftover;
    let mut framed = Framed::from_parts(parts);
    // The 8 KiB buffers `from_parts` reserved are freed untouched.
    if empty {
        *framed.read_buffer_mut() = BytesMut::with_capacity(IDLE_READ_CAPACITY);
    }
    *framed.write_buffer_mut() = BytesMut::new();
    framed
}

/// The codec's buffer sizing (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct BufferPolicy {
    /// Most bytes seen buffered since the read buffer last ran dry: tells a quiet connection
    /// (small reads) from a streaming one (reads that fill the buffer).
    read_peak: usize,
    /// Length of the read buffer when `decode` last returned: more means a read happened.
    seen: usize,
    /// Free space to keep in the read buffer before the next read.
    read_ahead: usize,
    /// The write buffer held over 1 KiB: release it once it has been flushed. (`capacity()`
    /// cannot tell: a flushed `BytesMut` reports 0 while keeping its allocation.)
    large_write: bool,
    /// The last decode started on bytes a read had just added (else it decoded what the
    /// previous read left: the same arrival).
    fresh: bool,
}

impl BufferPolicy {
    /// Notes what the last read brought; returns the capacity before decoding.
    #[inline]
    pub(super) fn before_decode(&mut self, src: &BytesMut) -> usize {
        self.read_peak = self.read_peak.max(src.len());
        self.fresh = src.len() > self.seen;
        if self.fresh {
            self.read_ahead = if src.len() == src.capacity() {
                (self.read_ahead * 2).clamp(MIN_READ_AHEAD, MAX_READ_AHEAD)
            } else {
                0
            };
        }
        src.capacity()
    }

    /// Sizes the read buffer after a decode: room for the next read while the transport keeps
    /// filling it, a fresh small buffer once a large payload was split off a drained buffer,
    /// and a 1 KiB one for a quiet connection `waiting` at a frame boundary.
    #[inline]
    pub(super) fn after_decode(
        &mut self,
        src: &mut BytesMut,
        waiting: bool,
        room_before: usize,
        boundary: bool,
    ) {
        if waiting && src.capacity() - src.len() < self.read_ahead {
            src.reserve(self.read_ahead);
        }
        if src.is_empty() && boundary {
            if !waiting {
                let taken = room_before.saturating_sub(src.capacity());
                if taken > SHRINK_ABOVE || src.capacity() > SHRINK_ABOVE {
                    *src = BytesMut::with_capacity(BUFFER_CAPACITY);
                }
            } else {
                // Half the idle size: a read that filled a small buffer does not count as
                // quiet, or a connection whose messages just exceed it would stay stuck with
                // two reads per message.
                if self.read_peak < IDLE_READ_CAPACITY / 2 && src.capacity() > IDLE_READ_CAPACITY {
                    *src = BytesMut::with_capacity(IDLE_READ_CAPACITY);
                }
                self.read_peak = 0;
            }
        }
        // Emptied by decoding, the buffer's room is only what lies past the consumed bytes; a
        // read capped by it fills it and costs a second read for the rest. `reserve` on an
        // empty buffer whose payloads are gone reclaims the whole allocation in place.
        if waiting && src.is_empty() && src.capacity() < IDLE_READ_CAPACITY {
            src.reserve(IDLE_READ_CAPACITY);
        }
        self.seen = src.len();
    }

    /// Drops a flushed write buffer that is larger than an idle connection needs.
    #[inline]
    pub(super) fn before_encode(&mut self, dst: &mut BytesMut) {
        if self.releases(dst) {
            // Everything was flushed: drop the buffer (the initial 8 KiB, or the memory of a
            // past large message). Keeping it for a following large frame is slower when many
            // connections echo large messages: one freed buffer the allocator hands to the
            // next writer stays warmer in cache than one kept by each connection.
            *dst = BytesMut::new();
            self.large_write = false;
        }
    }

    /// Gives back what a burst left reserved in a read buffer holding nothing (the caller
    /// knows the connection is quiet and at a frame boundary): down to the idle size, and
    /// the read-ahead starts over.
    pub(super) fn release_idle(&mut self, src: &mut BytesMut) {
        if src.is_empty() && src.capacity() > IDLE_READ_CAPACITY {
            *src = BytesMut::with_capacity(IDLE_READ_CAPACITY);
            self.read_ahead = 0;
            self.read_peak = 0;
            self.seen = 0;
        }
    }

    /// Whether the last decode had bytes from a new read (see `fresh`).
    #[inline]
    pub(super) fn fresh(&self) -> bool {
        self.fresh
    }

    /// Whether `dst`, flushed, is larger than an idle connection needs (dropped by
    /// [`before_encode`](Self::before_encode)).
    #[inline]
    pub(super) fn releases(&self, dst: &BytesMut) -> bool {
        dst.is_empty() && (self.large_write || dst.capacity() > IDLE_WRITE_CAPACITY)
    }

    /// Notes how much the write buffer holds after an encode.
    #[inline]
    pub(super) fn after_encode(&mut self, buffered: usize) {
        self.large_write |= buffered > IDLE_WRITE_CAPACITY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One read into `src` (as `Framed` does), then a decode that consumed `consumed` bytes.
    fn cycle(policy: &mut BufferPolicy, src: &mut BytesMut, read: usize, consumed: usize, boundary: bool) {
        let room = src.capacity() - src.len();
        src.extend_from_slice(&vec![0; read.min(room)]);
        let before = policy.before_decode(src);
        let _ = src.split_to(consumed.min(src.len()));
        policy.after_decode(src, consumed == 0, before, boundary);
    }

    #[test]
    fn read_ahead_grows_while_reads_fill_the_buffer_and_resets() {
        let mut policy = BufferPolicy::default();
        let mut src = BytesMut::with_capacity(8 << 10);
        // A full read, nothing decodable yet: room for 16 KiB more.
        cycle(&mut policy, &mut src, 8 << 10, 0, false);
        assert!(src.capacity() - src.len() >= MIN_READ_AHEAD);
        // Reads that keep filling it double the room, up to the cap.
        for _ in 0..8 {
            let room = src.capacity() - src.len();
            cycle(&mut policy, &mut src, room, 0, false);
        }
        assert_eq!(policy.read_ahead, MAX_READ_AHEAD);
        // A read that leaves room resets the read-ahead.
        cycle(&mut policy, &mut src, 1, 0, false);
        assert_eq!(policy.read_ahead, 0);
    }

    #[test]
    fn drained_buffer_is_replaced_after_a_large_payload_only_at_a_frame_boundary() {
        let mut policy = BufferPolicy::default();
        let mut src = BytesMut::with_capacity(1 << 20);
        cycle(&mut policy, &mut src, 1 << 20, 1 << 20, false);
        assert!(src.capacity() < SHRINK_ABOVE || src.capacity() == 0, "mid-frame: kept in place");
        let mut src = BytesMut::with_capacity(1 << 20);
        cycle(&mut policy, &mut src, 1 << 20, 1 << 20, true);
        assert_eq!(src.capacity(), BUFFER_CAPACITY, "at a boundary: a fresh small buffer");
    }

    #[test]
    fn drained_read_buffer_regains_its_room_in_place() {
        let mut policy = BufferPolicy::default();
        let mut src = BytesMut::with_capacity(IDLE_READ_CAPACITY);
        let start = src.as_ptr();
        // Three small batches decoded one after the other, each payload dropped before the
        // next read (an echo): the room for the next read never shrinks below the idle size,
        // and the allocation is the same one.
        for _ in 0..3 {
            cycle(&mut policy, &mut src, 352, 352, true);
            let room = policy.before_decode(&src);
            policy.after_decode(&mut src, true, room, true);
            assert!(src.capacity() >= IDLE_READ_CAPACITY, "room {}", src.capacity());
            assert_eq!(src.as_ptr(), start, "reclaimed in place, not reallocated");
        }
        assert_eq!(policy.read_ahead, 0, "no read filled the buffer");
    }

    #[test]
    fn quiet_connection_keeps_a_small_read_buffer() {
        let mut policy = BufferPolicy::default();
        let mut src = BytesMut::with_capacity(8 << 10);
        cycle(&mut policy, &mut src, 100, 100, true);
        // Waiting for the peer (nothing to decode) after a small read.
        let room = policy.before_decode(&src);
        policy.after_decode(&mut src, true, room, true);
        assert_eq!(src.capacity(), IDLE_READ_CAPACITY);
    }

    #[test]
    fn write_buffer_released_once_flushed() {
        let mut policy = BufferPolicy::default();
        let mut dst = BytesMut::with_capacity(8 << 10);
        policy.before_encode(&mut dst);
        assert_eq!(dst.capacity(), 0, "the initial 8 KiB is dropped");
        dst.extend_from_slice(&vec![0; 1 << 20]);
        policy.after_encode(1 << 20);
        dst.clear(); // flushed; the allocation stays
        policy.before_encode(&mut dst);
        assert_eq!(dst.capacity(), 0, "the large write buffer is released");
        dst.extend_from_slice(b"small");
        policy.after_encode(5);
        policy.before_encode(&mut dst);
        assert_eq!(dst.len(), 5, "a buffer still holding data is kept");
        // A 16 KiB frame (below the read side's 64 KiB) is not kept either once flushed.
        dst.extend_from_slice(&vec![0; 16 << 10]);
        policy.after_encode(dst.len());
        dst.clear();
        policy.before_encode(&mut dst);
        assert_eq!(dst.capacity(), 0, "a flushed 16 KiB write buffer is released");
        // Small frames stay in their small buffer.
        dst.extend_from_slice(b"small");
        policy.after_encode(dst.len());
        dst.clear();
        let kept = dst.as_ptr();
        policy.before_encode(&mut dst);
        assert_eq!(dst.as_ptr(), kept, "a small write buffer is kept");
    }
}
