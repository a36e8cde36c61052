//! UTF-8: a zero-copy validated string type and a streaming validator.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// An immutable, cheaply cloneable UTF-8 string backed by [`Bytes`].
///
/// Received text is split out of the receive buffer and validated once; this type carries that
/// guarantee without copying. It dereferences to `str`.
///
/// ```
/// use wsproto::Utf8Bytes;
/// let s = Utf8Bytes::from("héllo");
/// assert_eq!(&*s, "héllo");
/// assert_eq!(s.len(), 6);
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(b"\xff")).is_err());
/// ```
#[derive(Clone, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Utf8Bytes(Bytes::new())
    }

    /// Wraps a `&'static str` without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes the caller has already validated.
    pub(crate) fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates the bytes (or takes a `str`), and `Bytes` is
        // immutable, so the bytes are valid UTF-8 for the lifetime of `self`.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Converts into the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<str> for Utf8Bytes {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Utf8Bytes> for String {
    fn from(s: Utf8Bytes) -> Self {
        s.as_str().to_owned()
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Self {
        s.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// Outcome of feeding bytes to the [`Validator`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Utf8Status {
    /// Every byte so far is valid or a valid prefix of a code point; `complete` bytes of the
    /// input (counting from the start of the input) end on a character boundary.
    Valid { complete: usize },
    /// The input contains a byte sequence that can never become valid UTF-8.
    Invalid,
}

/// Streaming UTF-8 validator that fails at the first impossible byte and carries an incomplete
/// code point (at most 3 bytes) across chunks and fragments.
#[derive(Clone, Debug, Default)]
pub(crate) struct Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Validator {
    /// Whether an incomplete code point is pending.
    pub(crate) fn has_partial(&self) -> bool {
        self.partial_len != 0
    }

    /// The pending bytes of an incomplete code point.
    pub(crate) fn partial(&self) -> &[u8] {
        &self.partial[..self.partial_len as usize]
    }

    /// Forgets any pending bytes (start of a new message).
    pub(crate) fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Validates the next chunk.
    ///
    /// On success, `complete` counts the bytes of `input` that, together with the previously
    /// pending partial code point, form complete characters; the remaining tail is kept as the
    /// new pending partial code point. Every byte of `input` is examined exactly once (the few
    /// bytes completing a pending code point are looked at twice).
    pub(crate) fn feed(&mut self, input: &[u8]) -> Utf8Status {
        let mut start = 0;
        if self.partial_len != 0 {
            let have = self.partial_len as usize;
            let need = utf8_char_width(self.partial[0]) - have;
            let take = need.min(input.len());
            let mut buf = [0u8; 4];
            buf[..have].copy_from_slice(&self.partial[..have]);
            buf[have..have + take].copy_from_slice(&input[..take]);
            match std::str::from_utf8(&buf[..have + take]) {
                Ok(_) => {
                    self.partial_len = 0;
                    start = take;
                }
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; all of `input` was consumed into it.
                    self.partial[..have + take].copy_from_slice(&buf[..have + take]);
                    self.partial_len = (have + take) as u8;
                    return Utf8Status::Valid { complete: 0 };
                }
                Err(_) => return Utf8Status::Invalid,
            }
        }
        let rest = &input[start..];
        match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Utf8Status::Valid { complete: input.len() },
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let tail = &rest[valid..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Utf8Status::Valid { complete: start + valid }
            }
            Err(_) => Utf8Status::Invalid,
        }
    }
}

/// Width of the UTF-8 sequence introduced by `first` (1 for invalid lead bytes).
fn utf8_char_width(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> Result<Vec<u8>, usize> {
        let mut v = Validator::default();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let before: Vec<u8> = v.partial().to_vec();
            match v.feed(chunk) {
                Utf8Status::Valid { complete } => {
                    if complete > 0 {
                        out.extend_from_slice(&before);
                        out.extend_from_slice(&chunk[..complete]);
                    }
                }
                Utf8Status::Invalid => return Err(i),
            }
        }
        if v.has_partial() {
            return Err(chunks.len());
        }
        Ok(out)
    }

    #[test]
    fn every_split_of_valid_text() {
        let text = "aé€😀z\u{10FFFF}\u{FEFF}".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                let got = feed_all(&[&text[..a], &text[a..b], &text[b..]]).unwrap();
                assert_eq!(got, text);
            }
        }
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        for bad in [&b"\xff"[..], b"\xc0", b"\xf5", b"\xf4\x90", b"\xed\xa0", b"\xe0\x80", b"\x80"] {
            let mut v = Validator::default();
            assert_eq!(v.feed(bad), Utf8Status::Invalid, "{bad:?}");
            // Split across two chunks, still rejected by the second chunk.
            if bad.len() == 2 {
                let mut v = Validator::default();
                assert_eq!(v.feed(&bad[..1]), Utf8Status::Valid { complete: 0 });
                assert_eq!(v.feed(&bad[1..]), Utf8Status::Invalid, "{bad:?}");
            }
        }
    }

    #[test]
    fn incomplete_at_end_is_pending() {
        let mut v = Validator::default();
        assert_eq!(v.feed(b"ab\xe2\x82"), Utf8Status::Valid { complete: 2 });
        assert!(v.has_partial());
        assert_eq!(v.feed(b"\xacc"), Utf8Status::Valid { complete: 2 });
        assert!(!v.has_partial());
    }
}
