//! Interoperability tests live in tests/.
