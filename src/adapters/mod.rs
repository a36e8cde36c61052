//! The tokio adapters (feature `tokio`): the only code that names tokio. The codec turns the
//! sans-IO [`Connection`](crate::Connection) into a tokio-util `Decoder`/`Encoder`, the session
//! drives the sans-IO [`Lifecycle`](crate::Lifecycle) over it, and the upgrade helpers perform
//! the handshake over a transport and hand back a session.

pub mod codec;
pub(crate) mod error;
pub mod session;
pub mod upgrade;
