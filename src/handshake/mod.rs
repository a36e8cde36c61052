//! The HTTP/1.1 opening handshake (RFC 6455 §4), and RFC 8441's over HTTP/2: python
//! wsproto's `H11Handshake`, as one type per role.
//!
//! A [`ClientHandshake`] turns a [`Request`](crate::Request) into request bytes and the
//! server's answer into events; a [`ServerHandshake`] turns request bytes into a `Request`
//! event and the application's [`AcceptConnection`](crate::AcceptConnection) /
//! [`RejectConnection`](crate::RejectConnection) / [`RejectData`](crate::RejectData) into
//! response bytes. What only one role can do is only on its type, so the compiler checks the
//! role; [`Handshake`] holds either, for code that picks the role at run time. Once the
//! handshake succeeds it ends by value: `into_connection` gives the [`Connection`] for the
//! frame layer and the bytes that followed the head. Most applications use
//! [`WsConnection`](crate::WsConnection), the one router between the two.
//!
//! Heads are parsed with `httparse`, with at most [`MAX_HEADERS`] headers and at most
//! [`Limits::max_handshake_size`](crate::Limits::max_handshake_size) bytes (both answered by
//! a 431 hint). Every violation by the peer is a [`RemoteProtocolError`] whose
//! [`event_hint`](RemoteProtocolError::event_hint) is the rejection to send back; every misuse
//! of the API is a [`LocalProtocolError`] that changes nothing.
//!
//! The extension negotiation helpers, [`server_extensions_handshake`] and
//! [`client_extensions_handshake`], are public for servers that speak HTTP through another
//! stack.

mod accept;
mod body;
mod client;
pub(crate) mod error;
pub(crate) mod head;
mod negotiate;
mod server;
pub(crate) mod write;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

pub use self::accept::{generate_accept_token, generate_nonce, ACCEPT_GUID};
pub use self::client::{ClientHandshake, ExtendedConnect, UpgradeRequest};
pub use self::head::MAX_HEADERS;
pub use self::negotiate::{client_extensions_handshake, server_extensions_handshake};
pub use self::server::ServerHandshake;

use self::error::{ProtocolError, RemoteProtocolError};
use self::head::{HeadKind, HeadReader};
use crate::config::Config;
use crate::connection::misuse::LocalProtocolError;
use crate::connection::state::ConnectionState;
use crate::connection::Connection;
use crate::event::{Event, Headers};
use crate::extensions::Extension;
use crate::role::ConnectionType;
use crate::wire::headers::split_comma_list;

/// The only WebSocket version spoken: `Sec-WebSocket-Version: 13`.
pub const WEBSOCKET_VERSION: &str = "13";
/// The `Upgrade` token of the protocol.
pub const WEBSOCKET_UPGRADE: &str = "websocket";
/// The version header, as named in [`RemoteProtocolError::MissingHeader`].
pub(crate) const VERSION_HEADER: &str = "Sec-WebSocket-Version";

/// The opening handshake of one connection, either role: the [`ClientHandshake`] or the
/// [`ServerHandshake`], for code that picks the role at run time (as
/// [`WsConnection`](crate::WsConnection) does). Each method goes to the handshake of the
/// role; what only one role does is on its type.
// Exhaustive by decision: one variant per role.
#[allow(clippy::exhaustive_enums)]
#[derive(Debug)]
pub enum Handshake {
    /// A client's handshake.
    Client(ClientHandshake),
    /// A server's handshake.
    Server(ServerHandshake),
}

impl Handshake {
    /// A handshake for `role` with the default [`Config`].
    pub fn new(role: ConnectionType) -> Self {
        Self::with_config(role, Config::default())
    }

    /// A handshake for `role`; `config` also goes to the [`Connection`] it creates.
    pub fn with_config(role: ConnectionType, config: Config) -> Self {
        match role {
            ConnectionType::Client => Handshake::Client(ClientHandshake::with_config(config)),
            ConnectionType::Server => Handshake::Server(ServerHandshake::with_config(config)),
        }
    }

    /// Adds an extension: a client offers it, a server lets it accept one of the client's
    /// offers (see [`ClientHandshake::with_extension`], [`ServerHandshake::with_extension`]).
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use wsproto::ConnectionType;
    /// use wsproto::handshake::Handshake;
    /// use wsproto::extensions::PerMessageDeflate;
    /// let client = Handshake::new(ConnectionType::Client).with_extension(PerMessageDeflate::new());
    /// # let _ = client;
    /// # }
    /// ```
    pub fn with_extension(self, extension: impl Extension) -> Self {
        self.with_boxed_extension(Box::new(extension))
    }

    /// [`with_extension`](Self::with_extension) for an extension already boxed.
    pub(crate) fn with_boxed_extension(self, extension: Box<dyn Extension>) -> Self {
        match self {
            Handshake::Client(h) => Handshake::Client(h.with_boxed_extension(extension)),
            Handshake::Server(h) => Handshake::Server(h.with_boxed_extension(extension)),
        }
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        match self {
            Handshake::Client(_) => ConnectionType::Client,
            Handshake::Server(_) => ConnectionType::Server,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        match self {
            Handshake::Client(h) => h.config(),
            Handshake::Server(h) => h.config(),
        }
    }

    /// CONNECTING, REJECTING, CLOSED, or OPEN once the connection exists.
    pub fn state(&self) -> ConnectionState {
        match self {
            Handshake::Client(h) => h.state(),
            Handshake::Server(h) => h.state(),
        }
    }

    /// The error that killed the handshake, if the peer violated it.
    pub fn failure(&self) -> Option<&RemoteProtocolError> {
        match self {
            Handshake::Client(h) => h.failure(),
            Handshake::Server(h) => h.failure(),
        }
    }

    /// Once OPEN, the [`Connection`] and the bytes received past the head; before that,
    /// the handshake is given back.
    ///
    /// ```
    /// use wsproto::handshake::Handshake;
    /// use wsproto::{AcceptConnection, ConnectionType, Event, Request, TextMessage};
    ///
    /// let mut client = Handshake::new(ConnectionType::Client);
    /// let mut server = Handshake::new(ConnectionType::Server);
    /// let request = client.send_bytes(Request::new("example.com", "/")).unwrap();
    /// server.receive_data(&request).unwrap();
    /// assert!(matches!(server.next_event(), Some(Event::Request(_))));
    /// client.receive_data(&server.send_bytes(AcceptConnection::new()).unwrap()).unwrap();
    /// assert!(matches!(client.next_event(), Some(Event::AcceptConnection(_))));
    ///
    /// let (mut conn, trailing) = client.into_connection().unwrap();
    /// assert!(trailing.is_empty());
    /// let frame = conn.send_bytes(TextMessage::new("hi")).unwrap();
    /// # let _ = frame;
    /// ```
    // The handshake is given back by value when it is not done yet: a move on a cold path.
    #[allow(clippy::result_large_err)]
    pub fn into_connection(self) -> Result<(Connection, BytesMut), Handshake> {
        match self {
            Handshake::Client(h) => h.into_connection().map_err(Handshake::Client),
            Handshake::Server(h) => h.into_connection().map_err(Handshake::Server),
        }
    }

    /// The next handshake event, or `None`.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        match self {
            Handshake::Client(h) => h.next_event(),
            Handshake::Server(h) => h.next_event(),
        }
    }

    /// An iterator over the queued handshake events.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Feeds bytes read from the transport (see [`ClientHandshake::receive_data`],
    /// [`ServerHandshake::receive_data`]).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        match self {
            Handshake::Client(h) => h.receive_data(data),
            Handshake::Server(h) => h.receive_data(data),
        }
    }

    /// Reports EOF on the transport (see [`ClientHandshake::receive_eof`],
    /// [`ServerHandshake::receive_eof`]).
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        match self {
            Handshake::Client(h) => h.receive_eof(),
            Handshake::Server(h) => h.receive_eof(),
        }
    }

    /// Serialises `event` into `dst` (see [`ClientHandshake::send`],
    /// [`ServerHandshake::send`]): an event of the other role is
    /// [`LocalProtocolError::WrongRole`].
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match self {
            Handshake::Client(h) => h.send(event, dst),
            Handshake::Server(h) => h.send(event, dst),
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// The client's handshake, or [`LocalProtocolError::WrongRole`] saying what a server
    /// cannot do.
    #[cfg(feature = "http")]
    pub(crate) fn client_mut(
        &mut self,
        action: &'static str,
    ) -> Result<&mut ClientHandshake, LocalProtocolError> {
        match self {
            Handshake::Client(h) => Ok(h),
            Handshake::Server(_) => {
                Err(LocalProtocolError::WrongRole { action, role: ConnectionType::Server })
            }
        }
    }

    /// The server's handshake, or [`LocalProtocolError::WrongRole`] saying what a client
    /// cannot do.
    pub(crate) fn server_mut(
        &mut self,
        action: &'static str,
    ) -> Result<&mut ServerHandshake, LocalProtocolError> {
        match self {
            Handshake::Server(h) => Ok(h),
            Handshake::Client(_) => {
                Err(LocalProtocolError::WrongRole { action, role: ConnectionType::Client })
            }
        }
    }
}

/// What the handshakes of both roles keep.
struct Common {
    config: Config,
    /// Client: the extensions to offer. Server: the extensions to negotiate. Moved into the
    /// offer (client) or the connection (server) when used.
    extensions: Vec<Box<dyn Extension>>,
    head: HeadReader,
    events: VecDeque<Event>,
    failed: Option<RemoteProtocolError>,
    eof: bool,
}

impl Common {
    fn new(config: Config) -> Self {
        Common {
            config,
            extensions: Vec::new(),
            head: HeadReader::default(),
            events: VecDeque::new(),
            failed: None,
            eof: false,
        }
    }

    /// Remembers the peer's violation and reports it.
    fn fail(&mut self, e: RemoteProtocolError) -> ProtocolError {
        self.failed = Some(e.clone());
        e.into()
    }

    /// The head received so far, once complete (within the configured size limit).
    fn parse_head(&mut self, kind: HeadKind) -> Result<Option<head::Head>, RemoteProtocolError> {
        self.head.parse(kind, self.config.limits.max_handshake_size)
    }

    /// The connection the handshake opened, and the bytes read past the head.
    fn open(mut self, role: ConnectionType, extensions: Vec<Box<dyn Extension>>) -> (Connection, BytesMut) {
        let trailing = self.head.take();
        let mut conn = Connection::with_extensions(role, self.config, extensions, &[]);
        if self.eof {
            conn.receive_eof();
        }
        (conn, trailing)
    }
}

/// The comma-separated items of every `name` header, in order.
fn comma_items(headers: &Headers, name: &str) -> Result<Vec<String>, RemoteProtocolError> {
    let merged = head::merged(headers, name)?;
    Ok(merged.map(|v| split_comma_list(&v).into_iter().map(str::to_owned).collect()).unwrap_or_default())
}
