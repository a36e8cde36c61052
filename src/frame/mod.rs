//! The frame layer (RFC 6455 §5.2): opcodes, headers, parse and serialise.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! This module knows nothing about connections, messages or handshakes.

use bytes::BufMut;

pub(crate) mod decode;

use crate::error::PeerViolation;
pub use crate::wire::mask::apply_mask;
#[doc(hidden)]
pub use crate::wire::mask::apply_mask_scalar;

/// A frame opcode (RFC 6455 §5.2).
// Exhaustive by decision: RFC 6455's opcodes; reserved ones are refused as violations.
#[allow(clippy::exhaustive_enums)]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum Opcode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: text data.
    Text = 0x1,
    /// 0x2: binary data.
    Binary = 0x2,
    /// 0x8: connection close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xa,
}

impl Opcode {
    /// Parses the low nibble of the first header byte; reserved opcodes give `None`.
    pub const fn from_u8(value: u8) -> Option<Opcode> {
        Some(match value {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }

    /// Close, Ping or Pong.
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// Continuation, Text or Binary.
    pub const fn is_data(self) -> bool {
        !self.is_control()
    }
}

/// The three reserved header bits, owned by negotiated extensions.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct Rsv(u8);

impl Rsv {
    /// No bit set.
    pub const NONE: Rsv = Rsv(0);
    /// RSV1 (used by permessage-deflate).
    pub const RSV1: Rsv = Rsv(0x40);
    /// RSV2.
    pub const RSV2: Rsv = Rsv(0x20);
    /// RSV3.
    pub const RSV3: Rsv = Rsv(0x10);

    /// Builds from the three flags.
    pub const fn new(rsv1: bool, rsv2: bool, rsv3: bool) -> Rsv {
        Rsv((rsv1 as u8) << 6 | (rsv2 as u8) << 5 | (rsv3 as u8) << 4)
    }

    /// RSV1 set.
    pub const fn rsv1(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// RSV2 set.
    pub const fn rsv2(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// RSV3 set.
    pub const fn rsv3(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Bits set in either.
    pub const fn union(self, other: Rsv) -> Rsv {
        Rsv(self.0 | other.0)
    }
    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Rsv) -> bool {
        self.0 & other.0 == other.0
    }
    /// The bits of `self` not in `other`.
    pub const fn difference(self, other: Rsv) -> Rsv {
        Rsv(self.0 & !other.0)
    }
}

/// A parsed frame header.
// Exhaustive by decision: the fields of RFC 6455's frame header.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// Reserved bits.
    pub rsv: Rsv,
    /// Opcode.
    pub opcode: Opcode,
    /// Masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// Largest control frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Largest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed, or the header and its length in bytes.
    /// Checks are made as soon as the bytes that decide them are present, so a bad first byte
    /// is rejected even if the rest of the header has not arrived.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, PeerViolation> {
        let Some(&b0) = buf.first() else { return Ok(None) };
        let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(PeerViolation::ReservedOpcode(b0 & 0x0f))?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(PeerViolation::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else { return Ok(None) };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() && len7 > 125 {
            return Err(PeerViolation::ControlFrameTooLong);
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else { return Ok(None) };
                let len = u16::from_be_bytes([b[0], b[1]]);
                if len <= 125 {
                    return Err(PeerViolation::NonMinimalLength);
                }
                (u64::from(len), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(PeerViolation::LengthMsbSet);
                }
                if len <= 0xffff {
                    return Err(PeerViolation::NonMinimalLength);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(b) = buf.get(pos..pos + 4) else { return Ok(None) };
            pos += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        let header = FrameHeader { fin, rsv: Rsv(b0 & 0x70), opcode, mask, payload_len };
        Ok(Some((header, pos)))
    }

    /// Length of this header on the wire.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header with the minimal length encoding.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let b0 = (self.fin as u8) << 7 | self.rsv.0 | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            n @ 0..=125 => dst.put_slice(&[b0, mask_bit | n as u8]),
            n @ 126..=0xffff => {
                dst.put_slice(&[b0, mask_bit | 126]);
                dst.put_u16(n as u16);
            }
            n => {
                dst.put_slice(&[b0, mask_bit | 127]);
                dst.put_u64(n);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: FrameHeader) {
        let mut v = Vec::new();
        h.encode(&mut v);
        assert_eq!(v.len(), h.encoded_len());
        assert_eq!(FrameHeader::parse(&v).unwrap(), Some((h, v.len())));
        for cut in 0..v.len() {
            assert_eq!(FrameHeader::parse(&v[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn minimal_length_encodings() {
        for len in [0u64, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                roundtrip(FrameHeader {
                    fin: true,
                    rsv: Rsv::NONE,
                    opcode: Opcode::Binary,
                    mask,
                    payload_len: len,
                });
            }
        }
        roundtrip(FrameHeader {
            fin: false,
            rsv: Rsv::RSV1,
            opcode: Opcode::Text,
            mask: None,
            payload_len: 5,
        });
    }

    #[test]
    fn header_violations() {
        assert_eq!(FrameHeader::parse(&[0x83]), Err(PeerViolation::ReservedOpcode(3)));
        assert_eq!(FrameHeader::parse(&[0x8b]), Err(PeerViolation::ReservedOpcode(0xb)));
        assert_eq!(FrameHeader::parse(&[0x09]), Err(PeerViolation::FragmentedControlFrame));
        assert_eq!(FrameHeader::parse(&[0x89, 126]), Err(PeerViolation::ControlFrameTooLong));
        assert_eq!(FrameHeader::parse(&[0x82, 126, 0, 125]), Err(PeerViolation::NonMinimalLength));
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Err(PeerViolation::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(PeerViolation::LengthMsbSet)
        );
    }
}
