//! [`ConnectionType`]: which side of a connection we are.

use std::fmt;

/// Which side of the connection we are. Clients mask what they send; servers must not.
///
/// Python wsproto's `ConnectionType`. Extensions receive it too, so it lives on its own.
// Exhaustive by decision: client or server.
#[allow(clippy::exhaustive_enums)]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ConnectionType {
    /// The side that sent the upgrade request.
    Client,
    /// The side that accepted it.
    Server,
}

impl ConnectionType {
    /// `true` for [`ConnectionType::Client`].
    pub const fn is_client(self) -> bool {
        matches!(self, ConnectionType::Client)
    }

    /// The other side.
    pub const fn peer(self) -> ConnectionType {
        match self {
            ConnectionType::Client => ConnectionType::Server,
            ConnectionType::Server => ConnectionType::Client,
        }
    }
}

impl fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionType::Client => "client",
            ConnectionType::Server => "server",
        })
    }
}
