//! The `Sec-WebSocket-Key` nonce and the `Sec-WebSocket-Accept` token (RFC 6455 §4.1, §4.2.2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::wire::mask::KeySource;

/// The GUID RFC 6455 appends to the client's key before hashing.
pub const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A fresh `Sec-WebSocket-Key`: base64 of 16 bytes from the OS-seeded CSPRNG (24 characters).
///
/// ```
/// let nonce = wsproto::handshake::generate_nonce();
/// assert_eq!(nonce.len(), 24);
/// ```
pub fn generate_nonce() -> String {
    nonce_from(&KeySource::os_seeded())
}

/// A `Sec-WebSocket-Key` drawn from `keys` (the connection's configured source).
pub(crate) fn nonce_from(keys: &KeySource) -> String {
    let mut raw = [0u8; 16];
    keys.fill(&mut raw);
    STANDARD.encode(raw)
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
///
/// ```
/// use wsproto::handshake::generate_accept_token;
/// assert_eq!(generate_accept_token("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn generate_accept_token(key: impl AsRef<[u8]>) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_ref());
    sha.update(ACCEPT_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: the base64 encoding of exactly 16 bytes.
pub(crate) fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|raw| raw.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZXg="));
        assert!(!is_valid_key("not a key"));
        assert!(is_valid_key(&nonce_from(&KeySource::fixed([1, 2, 3, 4]))));
        assert!(is_valid_key(&generate_nonce()));
    }
}
