//! The HTTP/1.1 opening handshake (RFC 6455 §4), both roles: python wsproto's `H11Handshake`.
//!
//! [`Handshake`] turns a client's [`Request`](crate::Request) into request bytes and the server's answer into
//! events, and on the server turns request bytes into a `Request` event and the application's
//! [`AcceptConnection`](crate::AcceptConnection) / [`RejectConnection`](crate::RejectConnection) / [`RejectData`](crate::RejectData) into response bytes. Once the
//! handshake succeeds it ends by value: [`Handshake::into_connection`] gives the
//! [`Connection`] for the frame layer and the bytes that followed the head. Most applications
//! use [`WsConnection`](crate::WsConnection), the one router between the two.
//!
//! The client's side is in `client.rs`, the server's in `server.rs`; this file holds what both
//! share: the phases, input, output and the hand-over.
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
mod head;
mod negotiate;
mod server;
mod write;

use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};

pub use self::accept::{generate_accept_token, generate_nonce, ACCEPT_GUID};
pub use self::client::{ExtendedConnect, UpgradeRequest};
pub use self::head::MAX_HEADERS;
pub use self::negotiate::{client_extensions_handshake, server_extensions_handshake};

use self::body::{BodyReader, BodyWriter};
use self::client::ClientOffer;
use self::error::{ProtocolError, RemoteProtocolError};
use self::head::{bad_http, HeadKind, HeadReader};
use self::server::ReceivedRequest;
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

/// The opening handshake of one connection (python wsproto's `H11Handshake`).
///
/// Same call protocol as [`Connection`]: [`receive_data`](Self::receive_data) /
/// [`receive_eof`](Self::receive_eof) in, [`next_event`](Self::next_event) out,
/// [`send`](Self::send) for what we say. States:
///
/// * client: CONNECTING → (send `Request`, receive 101) → OPEN; a final non-101 response →
///   REJECTING (`RejectConnection` with `has_body: true`, then `RejectData` chunks ending with
///   an empty one with `body_finished: true`) → CLOSED; a 1xx other than 101 →
///   `RejectConnection` with `has_body: false` → CLOSED.
/// * server: CONNECTING → (receive request: `Request` event; send `AcceptConnection`) → OPEN;
///   or send `RejectConnection` → CLOSED, or → REJECTING while `RejectData` flows → CLOSED.
///
/// When the state becomes OPEN the handshake is over: drain its events, then
/// [`into_connection`](Self::into_connection) gives the [`Connection`] (with the negotiated
/// extensions) and the bytes that followed the head (frames a peer pipelined behind its request
/// or its 101), so nothing is lost on either side. The handshake does not drive the
/// connection: once OPEN, further input is [`LocalProtocolError::HandshakeComplete`].
///
/// After a [`RemoteProtocolError`] the handshake is dead: further input returns the same error.
/// A server should then send the error's [`event_hint`](RemoteProtocolError::event_hint)
/// (CONNECTING still allows `RejectConnection`). After a rejection, received bytes are ignored.
pub struct Handshake {
    role: ConnectionType,
    config: Config,
    /// Client: the extensions to offer. Server: the extensions to negotiate. Moved into the
    /// offer (client) or the connection (server) when used.
    extensions: Vec<Box<dyn Extension>>,
    phase: Phase,
    head: HeadReader,
    events: VecDeque<Event>,
    failed: Option<RemoteProtocolError>,
    eof: bool,
}

#[derive(Debug)]
enum Phase {
    /// Client: the request is not sent yet. Server: waiting for the request.
    Idle,
    /// Client: request sent, waiting for the response head.
    AwaitingResponse(ClientOffer),
    /// Server: request received (early bytes wait in `head`), our answer pending.
    RequestReceived(ReceivedRequest),
    /// Client: reading a rejection body.
    ReadingRejection(BodyReader),
    /// Server: sending a rejection body.
    SendingRejection(BodyWriter),
    /// Handshake complete, with the negotiated extensions for the connection.
    Open(Vec<Box<dyn Extension>>),
    /// Rejected (or failed, client side).
    Closed,
}

impl Handshake {
    /// A handshake for `role` with the default [`Config`].
    pub fn new(role: ConnectionType) -> Self {
        Self::with_config(role, Config::default())
    }

    /// A handshake for `role`; `config` also goes to the [`Connection`] it creates (its key
    /// source provides the client's `Sec-WebSocket-Key`).
    pub fn with_config(role: ConnectionType, config: Config) -> Self {
        Handshake {
            role,
            config,
            extensions: Vec::new(),
            phase: Phase::Idle,
            head: HeadReader::default(),
            events: VecDeque::new(),
            failed: None,
            eof: false,
        }
    }

    /// Adds an extension: a client offers it in its `Request` (in the order added), a server
    /// lets it accept one of the client's offers when it sends `AcceptConnection`. The
    /// negotiated extensions end up in the [`Connection`] ([`Connection::extensions`]).
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use wsproto::{ConnectionType};
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
    pub(crate) fn with_boxed_extension(mut self, extension: Box<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// CONNECTING, REJECTING, CLOSED, or OPEN once the connection exists.
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            Phase::Idle | Phase::AwaitingResponse(_) | Phase::RequestReceived(_) => {
                ConnectionState::Connecting
            }
            Phase::ReadingRejection(_) | Phase::SendingRejection(_) => ConnectionState::Rejecting,
            Phase::Open(_) => ConnectionState::Open,
            Phase::Closed => ConnectionState::Closed,
        }
    }

    /// The error that killed the handshake, if the peer violated it.
    pub fn failure(&self) -> Option<&RemoteProtocolError> {
        self.failed.as_ref()
    }

    /// Once OPEN, the end of the handshake by value: the [`Connection`] for the frame layer
    /// and the bytes received past the head, to decode first (e.g. as the initial read buffer
    /// of a codec). Before that, the handshake is given back. Events not drained are dropped.
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
    pub fn into_connection(mut self) -> Result<(Connection, BytesMut), Handshake> {
        if !matches!(self.phase, Phase::Open(_)) {
            return Err(self);
        }
        let Phase::Open(extensions) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            unreachable!("checked above")
        };
        let mut conn = Connection::with_extensions(self.role, self.config, extensions, &[]);
        if self.eof {
            conn.receive_eof();
        }
        Ok((conn, self.head.take()))
    }

    /// The next handshake event (`Request`, `AcceptConnection`, `RejectConnection`,
    /// `RejectData`), or `None`.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// An iterator over the queued handshake events.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Feeds bytes read from the transport.
    ///
    /// A peer violation is a [`ProtocolError::Remote`] carrying the rejection to answer with
    /// (400 by default, 426 for a bad `Sec-WebSocket-Version`, 431 for a head over the limit or
    /// with too many headers). A client must send its `Request` first. Once OPEN, bytes belong
    /// to the connection ([`into_connection`](Self::into_connection)).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if let Some(e) = &self.failed {
            if !matches!(self.phase, Phase::SendingRejection(_) | Phase::Closed) {
                return Err(e.clone().into());
            }
        }
        match &mut self.phase {
            Phase::Open(_) => Err(LocalProtocolError::HandshakeComplete.into()),
            Phase::SendingRejection(_) | Phase::Closed => Ok(()),
            Phase::Idle if self.role.is_client() => Err(LocalProtocolError::RequestNotSent.into()),
            Phase::Idle | Phase::AwaitingResponse(_) => {
                self.head.push(data);
                self.parse_head()
            }
            Phase::RequestReceived(_) => {
                self.head.push(data);
                let cap = self.early_data_cap();
                if self.head.len() > cap {
                    return Err(self.fail(RemoteProtocolError::TooMuchEarlyData { limit: cap }));
                }
                Ok(())
            }
            Phase::ReadingRejection(_) => self.feed_body(data),
        }
    }

    /// Reports EOF on the transport.
    ///
    /// Before any byte of a request (server) this is a no-op. EOF in the middle of a head, or
    /// while a client waits for the response, is a [`RemoteProtocolError`]. It ends a
    /// rejection body read until EOF (final `RejectData`, CLOSED) and fails a truncated one.
    /// A server that already got the request remembers it, and so does a handshake that is
    /// OPEN: the connection it hands over reports the 1006 closure.
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.eof = true;
        match &self.phase {
            Phase::Open(_) => Ok(()),
            Phase::Idle if self.role.is_client() || self.head.is_empty() => Ok(()),
            Phase::Idle => Err(self.fail(bad_http("connection closed in the middle of the request"))),
            Phase::AwaitingResponse(_) => {
                Err(self.fail(bad_http("connection closed before the handshake response")))
            }
            Phase::RequestReceived(_) | Phase::SendingRejection(_) | Phase::Closed => Ok(()),
            Phase::ReadingRejection(reader) => match reader.eof() {
                Ok(()) => {
                    self.finish_rejection();
                    Ok(())
                }
                Err(e) => Err(self.fail(e)),
            },
        }
    }

    /// Serialises `event` into `dst`.
    ///
    /// * client: `Request` (once, first).
    /// * server: `AcceptConnection` after a `Request` was received (its `subprotocol` must be
    ///   one the client offered; its `extensions` are the server's supported extensions, each
    ///   given the chance to accept the client's offers); `RejectConnection` while CONNECTING
    ///   (a `content-length: 0` header is added when `has_body` is false; with a body and no
    ///   `Content-Length` or `Transfer-Encoding` header, `transfer-encoding: chunked` is added
    ///   and the `RejectData` chunks are encoded accordingly); `RejectData` while REJECTING.
    ///
    /// Anything else, or a header value with CR/LF, is a [`LocalProtocolError`] and writes
    /// nothing. Once OPEN, other events go to the connection if it was not taken.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match event.into() {
            Event::Request(request) => self.send_request(*request, dst),
            Event::AcceptConnection(accept) => {
                let prepared = self.prepare_accept(*accept)?;
                if prepared.status != 101 {
                    self.cancel_accept(prepared);
                    return Err(LocalProtocolError::AnswerThroughHttp2);
                }
                server::write_accept(&prepared.headers, dst);
                self.commit_accept(prepared);
                Ok(())
            }
            Event::RejectConnection(reject) => self.send_reject(reject, dst),
            Event::RejectData(data) => self.send_reject_data(data, dst),
            _ if matches!(self.phase, Phase::Open(_)) => Err(LocalProtocolError::HandshakeComplete),
            other => Err(LocalProtocolError::EventNotAllowed { event: other.name(), state: self.state() }),
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    fn fail(&mut self, e: RemoteProtocolError) -> ProtocolError {
        if self.role.is_client() {
            self.phase = Phase::Closed;
        }
        self.failed = Some(e.clone());
        e.into()
    }

    fn parse_head(&mut self) -> Result<(), ProtocolError> {
        let limit = self.config.limits.max_handshake_size;
        let kind = if self.role.is_client() { HeadKind::Response } else { HeadKind::Request };
        let head = match self.head.parse(kind, limit) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.fail(e)),
        };
        if self.role.is_client() {
            self.handle_response(head.status, head.headers)
        } else {
            self.handle_request(head)
        }
    }
}

/// The comma-separated items of every `name` header, in order.
fn comma_items(headers: &Headers, name: &str) -> Result<Vec<String>, RemoteProtocolError> {
    let merged = head::merged(headers, name)?;
    Ok(merged.map(|v| split_comma_list(&v).into_iter().map(str::to_owned).collect()).unwrap_or_default())
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("phase", &self.phase)
            .field("queued_events", &self.events.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
