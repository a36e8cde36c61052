//! Floor 9, integrations with other crates: the `http` types, hyper and axum. Each is a
//! public module of the crate root (`wsproto::http_compat`, `wsproto::hyper`,
//! `wsproto::axum`).

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "http")]
pub mod http_compat;
#[cfg(feature = "hyper")]
pub mod hyper;
