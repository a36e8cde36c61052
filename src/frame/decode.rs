//! Frame decoding: headers, payload progress and in-place unmasking.
//!
//! [`FrameDecoder`] works on the caller's read buffer. It knows where the frame being received
//! is (its header, how much payload is left, how much of what is buffered is already unmasked)
//! and hands out payload bytes: unmasked in place, each byte once, split off the buffer without
//! copying. What the payload means (messages, text, extensions, limits) is the message layer's
//! business (`message.rs`).

use bytes::{Buf, Bytes, BytesMut};

use super::FrameHeader;
use crate::error::PeerViolation;
use crate::role::ConnectionType;
use crate::wire::mask::apply_mask;

/// Least free space reserved while a frame is in progress.
const MIN_READ_SPACE: usize = 16 << 10;

/// Most a decoder delivering chunks reserves ahead for the rest of a frame.
const STREAM_RESERVE: usize = 64 << 10;

/// Most a whole-frame decoder reserves at once (a peer announcing a huge frame does not get
/// that much memory committed before sending it; the buffer still grows by doubling).
const WHOLE_FRAME_RESERVE: usize = 1 << 20;

/// Where the frame being received is.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    frame: Option<FrameProgress>,
}

#[derive(Clone, Copy, Debug)]
struct FrameProgress {
    header: FrameHeader,
    /// Payload bytes not yet consumed from the buffer.
    remaining: u64,
    /// Payload bytes at the start of the buffer already unmasked.
    processed: usize,
    /// Payload bytes already consumed (the masking key phase).
    consumed: u64,
}

/// A piece of a data frame's payload, unmasked.
pub(crate) struct Chunk {
    /// The bytes.
    pub(crate) data: Bytes,
    /// The frame's header.
    pub(crate) header: FrameHeader,
    /// This chunk ends the frame.
    pub(crate) frame_complete: bool,
}

impl FrameDecoder {
    /// Whether no frame is partly received: the next byte starts a header.
    pub(crate) fn at_boundary(&self) -> bool {
        self.frame.is_none()
    }

    /// The header of the frame in progress.
    pub(crate) fn current(&self) -> Option<FrameHeader> {
        self.frame.map(|f| f.header)
    }

    /// Parses the header at the start of `src` (left in place; its length is returned with
    /// it) and checks the masking direction: clients mask, servers do not.
    #[inline(always)]
    pub(crate) fn next_header(
        src: &[u8],
        role: ConnectionType,
    ) -> Result<Option<(FrameHeader, usize)>, PeerViolation> {
        let Some((header, header_len)) = FrameHeader::parse(src)? else { return Ok(None) };
        match (role, header.mask.is_some()) {
            (ConnectionType::Client, true) => Err(PeerViolation::MaskedFrame),
            (ConnectionType::Server, false) => Err(PeerViolation::UnmaskedFrame),
            _ => Ok(Some((header, header_len))),
        }
    }

    /// Whether the payload of a frame whose `header_len`-byte header starts `src` is all
    /// buffered.
    #[inline(always)]
    pub(crate) fn is_buffered(src: &[u8], header: &FrameHeader, header_len: usize) -> bool {
        (src.len() - header_len) as u64 >= header.payload_len
    }

    /// The fast path for a frame wholly buffered: unmasks its payload in place and returns it
    /// for checking before [`take_whole`](Self::take_whole).
    #[inline(always)]
    pub(crate) fn unmask_whole<'a>(
        src: &'a mut BytesMut,
        header: &FrameHeader,
        header_len: usize,
    ) -> &'a mut [u8] {
        let payload = &mut src[header_len..header_len + header.payload_len as usize];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        payload
    }

    /// Takes a wholly buffered frame off `src` and returns its (unmasked) payload. One split
    /// takes header and payload; the header is then skipped on the frozen bytes, which is
    /// cheaper than advancing the buffer past it first.
    #[inline(always)]
    pub(crate) fn take_whole(src: &mut BytesMut, header: &FrameHeader, header_len: usize) -> Bytes {
        let mut frame = src.split_to(header_len + header.payload_len as usize).freeze();
        frame.advance(header_len);
        frame
    }

    /// Starts receiving a frame whose payload is not all buffered (or must be delivered in
    /// pieces): drops its header from `src`.
    pub(crate) fn begin(&mut self, src: &mut BytesMut, header: FrameHeader, header_len: usize) {
        src.advance(header_len);
        self.frame = Some(FrameProgress { header, remaining: header.payload_len, processed: 0, consumed: 0 });
    }

    /// A control frame in progress, once complete: its header and unmasked payload. Control
    /// frames are delivered only whole (at most 125 bytes).
    pub(crate) fn take_control(&mut self, src: &mut BytesMut) -> Option<(FrameHeader, Bytes)> {
        let frame = self.frame?;
        let len = frame.header.payload_len as usize;
        if src.len() < len {
            src.reserve(len - src.len());
            return None;
        }
        self.frame = None;
        let mut payload = src.split_to(len);
        if let Some(key) = frame.header.mask {
            apply_mask(&mut payload, key, 0);
        }
        Some((frame.header, payload.freeze()))
    }

    /// Unmasks, in place, the payload bytes of the data frame in progress that arrived since the
    /// last call, and returns them (each byte once).
    pub(crate) fn unmask_fresh<'a>(&mut self, src: &'a mut BytesMut) -> &'a mut [u8] {
        let Some(frame) = &mut self.frame else { return &mut [] };
        let available = src.len().min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
        if available <= frame.processed {
            return &mut [];
        }
        let start = std::mem::replace(&mut frame.processed, available);
        let fresh = &mut src[start..available];
        if let Some(key) = frame.header.mask {
            apply_mask(fresh, key, (frame.consumed as usize).wrapping_add(start));
        }
        fresh
    }

    /// The next piece of the data frame in progress, of what [`unmask_fresh`](Self::unmask_fresh)
    /// unmasked: all of it once the frame is complete, or, with `min_chunk`, as soon as at least
    /// that much is buffered. Otherwise `None`, after reserving room for the rest (up to
    /// `max_frame` at once for whole frames, the next chunk's worth otherwise).
    pub(crate) fn take_chunk(
        &mut self,
        src: &mut BytesMut,
        min_chunk: Option<usize>,
        max_frame: usize,
    ) -> Option<Chunk> {
        let frame = self.frame.as_mut()?;
        let available = frame.processed;
        let frame_complete = available as u64 == frame.remaining;
        if !frame_complete && min_chunk.is_none_or(|min| available < min) {
            let cap = match min_chunk {
                Some(min) => STREAM_RESERVE.max(min),
                None => max_frame.min(WHOLE_FRAME_RESERVE),
            };
            let missing = (frame.remaining - available as u64).min(cap as u64) as usize;
            if src.capacity() - src.len() < missing {
                // Growing anyway: leave room for what follows the frame too (a read that stops
                // exactly at the frame's end costs a system call per message on a busy
                // connection). When the room is already there, nothing is reallocated.
                src.reserve(missing.max(MIN_READ_SPACE));
            }
            return None;
        }
        let data = src.split_to(available).freeze();
        frame.remaining -= available as u64;
        frame.consumed += available as u64;
        frame.processed = 0;
        let header = frame.header;
        if frame_complete {
            self.frame = None;
        }
        Some(Chunk { data, header, frame_complete })
    }
}
