//! The client's side of the opening handshake: the request it sends, and the response it
//! validates (a 101) or reads (a rejection and its body).

use bytes::{BufMut, Bytes, BytesMut};

use super::body::BodyReader;
use super::negotiate::{self, client_extensions_handshake};
use super::write::{self, check_header, check_value, header};
use super::{
    accept, comma_items, generate_accept_token, head, Handshake, Phase, WEBSOCKET_UPGRADE, WEBSOCKET_VERSION,
};
use crate::error::{LocalProtocolError, ProtocolError, RemoteProtocolError};
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
use crate::headers::{is_token, list_contains_token};

/// Response headers that do not go into [`AcceptConnection::extra_headers`] on the client.
const RESPONSE_OWN_HEADERS: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"];

/// What a client offered, to check the response against.
#[derive(Debug)]
pub(super) struct ClientOffer {
    nonce: String,
    subprotocols: Vec<String>,
    extensions: Vec<Box<dyn Extension>>,
}

/// Client-side validation of a 101 response, in python wsproto's order.
fn validate_response(
    headers: Headers,
    offer: ClientOffer,
) -> Result<(AcceptConnection, Vec<Box<dyn Extension>>), RemoteProtocolError> {
    let connection = head::merged(&headers, "connection")?;
    if !connection.is_some_and(|c| list_contains_token(&c, "upgrade")) {
        return Err(RemoteProtocolError::MissingHeader("Connection: Upgrade"));
    }
    let upgrade = head::merged(&headers, "upgrade")?;
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(WEBSOCKET_UPGRADE)) {
        return Err(RemoteProtocolError::MissingHeader("Upgrade: websocket"));
    }
    let accept = head::merged(&headers, "sec-websocket-accept")?;
    if accept.as_deref() != Some(generate_accept_token(&offer.nonce).as_str()) {
        return Err(RemoteProtocolError::BadAccept);
    }
    let subprotocol = head::merged(&headers, "sec-websocket-protocol")?;
    if let Some(protocol) = &subprotocol {
        if !offer.subprotocols.contains(protocol) {
            return Err(RemoteProtocolError::UnexpectedSubprotocol(protocol.clone()));
        }
    }
    let items = comma_items(&headers, "sec-websocket-extensions")?;
    let extensions = client_extensions_handshake(&items, offer.extensions)?;
    let extra_headers = headers
        .into_iter()
        .filter(|(name, _)| !RESPONSE_OWN_HEADERS.iter().any(|own| name == own.as_bytes()))
        .collect();
    Ok((AcceptConnection { subprotocol, extensions: items, extra_headers }, extensions))
}

impl Handshake {
    pub(super) fn handle_response(&mut self, status: u16, headers: Headers) -> Result<(), ProtocolError> {
        if status == 101 {
            let Phase::AwaitingResponse(offer) = std::mem::replace(&mut self.phase, Phase::Closed) else {
                return Ok(());
            };
            let (accept, extensions) = match validate_response(headers, offer) {
                Ok(ok) => ok,
                Err(e) => return Err(self.fail(e)),
            };
            // The bytes behind the 101 stay in `head` for `into_connection`.
            self.phase = Phase::Open(extensions);
            self.events.push_back(Event::AcceptConnection(Box::new(accept)));
            return Ok(());
        }
        if (100..200).contains(&status) {
            self.phase = Phase::Closed;
            self.events.push_back(Event::RejectConnection(RejectConnection {
                status_code: status,
                headers,
                has_body: false,
            }));
            return Ok(());
        }
        let reader = match BodyReader::for_response(status, &headers) {
            Ok(reader) => reader,
            Err(e) => return Err(self.fail(e)),
        };
        self.events.push_back(Event::RejectConnection(RejectConnection {
            status_code: status,
            headers,
            has_body: true,
        }));
        self.phase = Phase::ReadingRejection(reader);
        let rest = self.head.take();
        self.feed_body(&rest)
    }

    pub(super) fn feed_body(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.limits.max_handshake_size;
        let Phase::ReadingRejection(reader) = &mut self.phase else { return Ok(()) };
        match reader.feed(data, limit, &mut self.events) {
            Ok(true) => {
                self.finish_rejection();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    pub(super) fn finish_rejection(&mut self) {
        self.events.push_back(Event::RejectData(RejectData { data: Bytes::new(), body_finished: true }));
        self.phase = Phase::Closed;
    }

    pub(super) fn send_request(
        &mut self,
        request: Request,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        if !self.role.is_client() {
            return Err(LocalProtocolError::WrongRole { action: "send a Request", role: self.role });
        }
        if !matches!(self.phase, Phase::Idle) {
            return Err(LocalProtocolError::RequestAlreadySent);
        }
        let host = write::host_header(&request.host)?;
        if request.target.is_empty()
            || request.target.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(LocalProtocolError::InvalidTarget(request.target));
        }
        if let Some(bad) = request.subprotocols.iter().find(|p| !is_token(p)) {
            return Err(LocalProtocolError::InvalidSubprotocol(bad.clone()));
        }
        if !request.extensions.is_empty() {
            return Err(LocalProtocolError::ExtensionsInEvent);
        }
        for (name, value) in &request.extra_headers {
            check_header(name, value)?;
        }
        let mut items = Vec::new();
        let mut offers = Vec::new();
        for ext in &mut self.extensions {
            let params = ext.offer();
            if let Some(params) = &params {
                items.push(negotiate::response_item(ext.name(), params));
            }
            offers.push(params.is_some());
        }
        let extensions_value = items.join(", ");
        check_value("Sec-WebSocket-Extensions", extensions_value.as_bytes())?;
        // Extensions that declined to offer take no part in the connection.
        let mut offers = offers.into_iter();
        let offered: Vec<_> = std::mem::take(&mut self.extensions)
            .into_iter()
            .filter(|_| offers.next() == Some(true))
            .collect();

        let nonce = accept::nonce_from(&self.config.key_source);
        dst.put_slice(b"GET ");
        dst.put_slice(request.target.as_bytes());
        dst.put_slice(b" HTTP/1.1\r\n");
        header(dst, b"Host", host.as_bytes());
        header(dst, b"Upgrade", WEBSOCKET_UPGRADE.as_bytes());
        header(dst, b"Connection", b"Upgrade");
        header(dst, b"Sec-WebSocket-Key", nonce.as_bytes());
        header(dst, b"Sec-WebSocket-Version", WEBSOCKET_VERSION.as_bytes());
        if !request.subprotocols.is_empty() {
            header(dst, b"Sec-WebSocket-Protocol", request.subprotocols.join(", ").as_bytes());
        }
        if !items.is_empty() {
            header(dst, b"Sec-WebSocket-Extensions", extensions_value.as_bytes());
        }
        for (name, value) in &request.extra_headers {
            header(dst, name, value);
        }
        dst.put_slice(b"\r\n");
        self.phase = Phase::AwaitingResponse(ClientOffer {
            nonce,
            subprotocols: request.subprotocols,
            extensions: offered,
        });
        Ok(())
    }
}
