//! [`WsConnection`]: the opening handshake and the connection behind one object, as python
//! wsproto's `WSConnection`.

use bytes::{Bytes, BytesMut};

use crate::config::Config;
use crate::connection::Connection;
use crate::error::{LocalProtocolError, ProtocolError};
use crate::event::Event;
use crate::handshake::Handshake;
use crate::role::ConnectionType;
use crate::state::ConnectionState;

/// A whole WebSocket endpoint: the HTTP/1.1 opening handshake, then the frame layer.
///
/// Bytes go in with [`receive_data`](Self::receive_data) (and
/// [`receive_eof`](Self::receive_eof)), events come out of [`events`](Self::events), and what you
/// [`send`](Self::send) comes back as bytes to write. Until the handshake completes, events go
/// through the [`Handshake`]; from then on through the [`Connection`] it created. Draining
/// yields the handshake's events first, so a 101 glued to the first frames gives
/// `AcceptConnection` and then those frames' events in one drain (and a server gets frames a
/// client pipelined behind its request once it accepts).
///
/// Extensions are objects handed to the endpoint ([`with_extension`](Self::with_extension)):
/// events only carry what was offered and agreed, as text
/// ([`Request::extensions`](crate::Request::extensions),
/// [`AcceptConnection::extensions`](crate::AcceptConnection::extensions)), and the negotiated
/// objects at work are listed by the connection:
/// `ws.connection().unwrap().extensions()`.
///
/// # Example: the seed's echo server, over an in-memory pipe
///
/// ```
/// use wsproto::{AcceptConnection, ConnectionType, Event, Request, TextMessage, WsConnection};
///
/// let mut client = WsConnection::new(ConnectionType::Client);
/// let mut server = WsConnection::new(ConnectionType::Server);
///
/// let request = client.send_bytes(Request::new("example.com", "/chat")).unwrap();
/// server.receive_data(&request).unwrap();
/// let Some(Event::Request(req)) = server.next_event() else { panic!() };
/// assert_eq!(req.target, "/chat");
/// let response = server.send_bytes(AcceptConnection::new()).unwrap();
///
/// client.receive_data(&response).unwrap();
/// assert!(matches!(client.next_event(), Some(Event::AcceptConnection(_))));
///
/// let hello = client.send_bytes(TextMessage::new("hi")).unwrap();
/// server.receive_data(&hello).unwrap();
/// let Some(Event::TextMessage(msg)) = server.next_event() else { panic!() };
/// assert_eq!(msg.data, "hi");
/// ```
#[doc(alias = "WSConnection")]
#[derive(Debug)]
pub struct WsConnection {
    handshake: Handshake,
    connection: Option<Connection>,
}

impl WsConnection {
    /// An endpoint for `role` with the default [`Config`].
    pub fn new(role: ConnectionType) -> Self {
        Self::with_config(role, Config::default())
    }

    /// An endpoint for `role` with `config` (limits, key source), used by both phases.
    pub fn with_config(role: ConnectionType, config: Config) -> Self {
        WsConnection { handshake: Handshake::with_config(role, config), connection: None }
    }

    /// Adds an extension: a client offers it, a server negotiates it against the client's
    /// offers when accepting (see [`Handshake::with_extension`]).
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use wsproto::{ConnectionType, WsConnection};
    /// use wsproto::extensions::PerMessageDeflate;
    /// let server = WsConnection::new(ConnectionType::Server).with_extension(PerMessageDeflate::new());
    /// # let _ = server;
    /// # }
    /// ```
    pub fn with_extension(mut self, extension: impl crate::extensions::Extension) -> Self {
        self.handshake = self.handshake.with_extension(extension);
        self
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn with_boxed_extension(mut self, extension: Box<dyn crate::extensions::Extension>) -> Self {
        self.handshake = self.handshake.with_boxed_extension(extension);
        self
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        self.handshake.role()
    }

    /// The handshake's state until the connection exists, then the connection's.
    pub fn state(&self) -> ConnectionState {
        match &self.connection {
            Some(conn) => conn.state(),
            None => self.handshake.state(),
        }
    }

    /// The handshake (kept after it completed, e.g. to inspect a failure).
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// The connection, once the handshake has succeeded.
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// Mutable access to the connection, once the handshake has succeeded.
    pub fn connection_mut(&mut self) -> Option<&mut Connection> {
        self.connection.as_mut()
    }

    /// The connection, once the handshake has succeeded, e.g. to move it into a codec (its
    /// [`take_buffered`](Connection::take_buffered) gives the bytes not parsed yet).
    /// Handshake events not drained yet are dropped.
    pub fn into_connection(self) -> Option<Connection> {
        self.connection
    }

    /// Feeds bytes read from the transport.
    ///
    /// During the handshake a peer violation is [`ProtocolError::Remote`], whose
    /// [`event_hint`](crate::RemoteProtocolError::event_hint) a server should send back. After
    /// it, the bytes go to the connection (where peer violations are `CloseConnection` events,
    /// and feeding a closed connection is [`ProtocolError::Local`]).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        match &mut self.connection {
            Some(conn) => conn.receive_data(data).map_err(Into::into),
            None => {
                let result = self.handshake.receive_data(data);
                self.pick_up();
                result
            }
        }
    }

    /// Reports EOF on the transport (see [`Handshake::receive_eof`] and
    /// [`Connection::receive_eof`]).
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        match &mut self.connection {
            Some(conn) => {
                conn.receive_eof();
                Ok(())
            }
            None => {
                let result = self.handshake.receive_eof();
                self.pick_up();
                result
            }
        }
    }

    /// The next event: queued handshake events first, then the connection's.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.handshake.next_event() {
            return Some(event);
        }
        self.connection.as_mut()?.next_event()
    }

    /// An iterator over the events available now.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Serialises `event` into `dst`: handshake events during the handshake (see
    /// [`Handshake::send`]), frames afterwards (see [`Connection::send`]). Misuse is a
    /// [`LocalProtocolError`] and writes nothing.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match &mut self.connection {
            Some(conn) => conn.send(event, dst),
            None => {
                let result = self.handshake.send(event, dst);
                self.pick_up();
                result
            }
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Server: feeds a request parsed by another HTTP layer; see
    /// [`Handshake::initiate_upgrade_connection`].
    pub fn initiate_upgrade_connection<I, N, V>(
        &mut self,
        headers: I,
        target: &str,
    ) -> Result<(), ProtocolError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.handshake.initiate_upgrade_connection(headers, target)
    }

    #[cfg(feature = "http")]
    pub(crate) fn handshake_mut(&mut self) -> &mut Handshake {
        &mut self.handshake
    }

    /// Takes the connection from the handshake once it exists.
    pub(crate) fn pick_up(&mut self) {
        if self.connection.is_none() {
            self.connection = self.handshake.take_connection();
        }
    }
}
