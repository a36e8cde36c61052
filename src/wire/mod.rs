//! Floor 1, the wire: close codes, masking, UTF-8 and the HTTP header grammar. Knows no
//! frame, no connection and no event.

pub(crate) mod close;
pub(crate) mod headers;
pub(crate) mod mask;
pub(crate) mod utf8;
