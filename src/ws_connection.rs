//! [`WsConnection`]: the opening handshake and the connection behind one object, as python
//! wsproto's `WSConnection`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::config::Config;
use crate::connection::misuse::LocalProtocolError;
use crate::connection::state::ConnectionState;
use crate::connection::Connection;
use crate::event::Event;
use crate::handshake::error::ProtocolError;
use crate::handshake::Handshake;
use crate::role::ConnectionType;

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
    phase: Phase,
    /// Handshake events not drained when the connection took over: they come out first.
    pending: VecDeque<Event>,
}

/// Which layer the bytes and events go through. The connection, where the connection spends
/// its life, is inline; the transient handshake is boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Phase {
    Handshake(Box<Handshake>),
    Connection(Connection),
    /// Only while switching from one to the other.
    Switching,
}

impl WsConnection {
    /// An endpoint for `role` with the default [`Config`].
    pub fn new(role: ConnectionType) -> Self {
        Self::with_config(role, Config::default())
    }

    /// An endpoint for `role` with `config` (limits, delivery, key source), used by both
    /// phases.
    pub fn with_config(role: ConnectionType, config: Config) -> Self {
        WsConnection {
            phase: Phase::Handshake(Box::new(Handshake::with_config(role, config))),
            pending: VecDeque::new(),
        }
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
    pub fn with_extension(self, extension: impl crate::extensions::Extension) -> Self {
        self.with_boxed_extension(Box::new(extension))
    }

    /// [`with_extension`](Self::with_extension) for an extension already boxed; ignored once
    /// the handshake is over.
    pub(crate) fn with_boxed_extension(mut self, extension: Box<dyn crate::extensions::Extension>) -> Self {
        if let Phase::Handshake(handshake) = self.phase {
            self.phase = Phase::Handshake(Box::new(handshake.with_boxed_extension(extension)));
        }
        self
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        match &self.phase {
            Phase::Handshake(handshake) => handshake.role(),
            Phase::Connection(conn) => conn.role(),
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// The handshake's state until the connection exists, then the connection's.
    pub fn state(&self) -> ConnectionState {
        match &self.phase {
            Phase::Handshake(handshake) => handshake.state(),
            Phase::Connection(conn) => conn.state(),
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// The handshake, until it succeeded (for example to inspect a failure).
    pub fn handshake(&self) -> Option<&Handshake> {
        match &self.phase {
            Phase::Handshake(handshake) => Some(handshake),
            _ => None,
        }
    }

    /// The connection, once the handshake has succeeded.
    pub fn connection(&self) -> Option<&Connection> {
        match &self.phase {
            Phase::Connection(conn) => Some(conn),
            _ => None,
        }
    }

    /// Mutable access to the connection, once the handshake has succeeded.
    pub fn connection_mut(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Connection(conn) => Some(conn),
            _ => None,
        }
    }

    /// The connection, once the handshake has succeeded, e.g. to move it into a codec (its
    /// [`take_buffered`](Connection::take_buffered) gives the bytes not parsed yet).
    /// Handshake events not drained yet are dropped.
    pub fn into_connection(self) -> Option<Connection> {
        match self.phase {
            Phase::Connection(conn) => Some(conn),
            _ => None,
        }
    }

    /// Feeds bytes read from the transport.
    ///
    /// During the handshake a peer violation is [`ProtocolError::Remote`], whose
    /// [`event_hint`](crate::RemoteProtocolError::event_hint) a server should send back. After
    /// it, the bytes go to the connection (where peer violations are `CloseConnection` events,
    /// and feeding a closed connection is [`ProtocolError::Local`]).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        match &mut self.phase {
            Phase::Connection(conn) => conn.receive_data(data).map_err(Into::into),
            Phase::Handshake(handshake) => {
                let result = handshake.receive_data(data);
                self.advance();
                result
            }
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// Reports EOF on the transport (see [`Handshake::receive_eof`] and
    /// [`Connection::receive_eof`]).
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        match &mut self.phase {
            Phase::Connection(conn) => {
                conn.receive_eof();
                Ok(())
            }
            Phase::Handshake(handshake) => {
                let result = handshake.receive_eof();
                self.advance();
                result
            }
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// The next event: the handshake's first, then the connection's.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake.next_event(),
            Phase::Connection(conn) => conn.next_event(),
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// An iterator over the events available now.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Serialises `event` into `dst`: handshake events during the handshake (see
    /// [`Handshake::send`]), frames afterwards (see [`Connection::send`]). Misuse is a
    /// [`LocalProtocolError`] and writes nothing.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match &mut self.phase {
            Phase::Connection(conn) => conn.send(event, dst),
            Phase::Handshake(handshake) => {
                let result = handshake.send(event, dst);
                self.advance();
                result
            }
            Phase::Switching => unreachable!("never observed outside `advance`"),
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Server: feeds a request parsed by another HTTP layer; see
    /// [`ServerHandshake::initiate_upgrade_connection`](crate::handshake::ServerHandshake::initiate_upgrade_connection).
    pub fn initiate_upgrade_connection(
        &mut self,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        target: &str,
    ) -> Result<(), ProtocolError> {
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake
                .server_mut("receive an upgrade request")?
                .initiate_upgrade_connection(headers, target),
            _ => Err(LocalProtocolError::RequestAlreadyReceived.into()),
        }
    }

    /// Server: feeds an HTTP/2 extended CONNECT (RFC 8441) parsed by an HTTP/2 stack; see
    /// [`ServerHandshake::initiate_extended_connect`](crate::handshake::ServerHandshake::initiate_extended_connect).
    pub fn initiate_extended_connect(
        &mut self,
        protocol: &str,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        target: &str,
    ) -> Result<(), ProtocolError> {
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake
                .server_mut("receive an upgrade request")?
                .initiate_extended_connect(protocol, headers, target),
            _ => Err(LocalProtocolError::RequestAlreadyReceived.into()),
        }
    }

    /// Server: accepts an extended CONNECT, returning the 200's headers for the HTTP/2 stack
    /// (see [`ServerHandshake::accept_extended_connect`](crate::handshake::ServerHandshake::accept_extended_connect)).
    pub fn accept_extended_connect(
        &mut self,
        accept: crate::event::AcceptConnection,
    ) -> Result<crate::event::Headers, LocalProtocolError> {
        let state = self.state();
        let Phase::Handshake(handshake) = &mut self.phase else {
            return Err(LocalProtocolError::EventNotAllowed { event: "AcceptConnection", state });
        };
        let headers = handshake.server_mut("send AcceptConnection")?.accept_extended_connect(accept)?;
        self.advance();
        Ok(headers)
    }

    /// The handshake, while it runs (for the `http` conversions).
    #[cfg(feature = "http")]
    pub(crate) fn handshake_mut(&mut self) -> Option<&mut Handshake> {
        match &mut self.phase {
            Phase::Handshake(handshake) => Some(handshake),
            _ => None,
        }
    }

    /// Hands over to the connection once the handshake is OPEN: its undrained events go first,
    /// and the bytes it read past the head are the connection's first input. The one place
    /// where the phase changes.
    pub(crate) fn advance(&mut self) {
        let Phase::Handshake(handshake) = &mut self.phase else { return };
        if handshake.state() != ConnectionState::Open {
            return;
        }
        self.pending.extend(handshake.events());
        let Phase::Handshake(handshake) = std::mem::replace(&mut self.phase, Phase::Switching) else {
            unreachable!("checked above")
        };
        self.phase = match handshake.into_connection() {
            Ok((mut conn, trailing)) => {
                conn.set_buffered(trailing);
                Phase::Connection(conn)
            }
            Err(handshake) => Phase::Handshake(Box::new(handshake)),
        };
    }
}
