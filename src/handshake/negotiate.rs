//! Extension negotiation (RFC 6455 §9.1): the server picks from the client's offers, the client
//! checks and applies the server's answer.

use super::error::RemoteProtocolError;
use crate::extensions::Extension;
use crate::wire::headers::ExtensionItem;

/// Server side: lets each supported extension accept one of the client's offers and returns the
/// `Sec-WebSocket-Extensions` response value, or `None` when nothing was accepted.
///
/// `offers` are the comma-separated items of the request's `Sec-WebSocket-Extensions` headers
/// (as in a received [`Request::extensions`](crate::Request::extensions)). Offers are visited
/// in order; an extension whose name matches (case-insensitively) is asked to
/// [`accept`](Extension::accept) each of its offers until it accepts one, and later offers for
/// it are ignored (the RFC's "first acceptable offer", where python wsproto let the last one
/// win). Malformed items are skipped. The response lists the accepted extensions in the order
/// of the offers they accepted, each as `name` or `name; params`.
///
/// Also usable by servers that negotiate over another HTTP stack (HTTP/2, a framework).
pub fn server_extensions_handshake<S: AsRef<str>>(
    offers: &[S],
    supported: &mut [Box<dyn Extension>],
) -> Option<String> {
    let mut accepted = vec![false; supported.len()];
    let mut items: Vec<String> = Vec::new();
    for offer in offers {
        let offer = offer.as_ref();
        let Some(item) = ExtensionItem::parse(offer) else { continue };
        for (ext, done) in supported.iter_mut().zip(accepted.iter_mut()) {
            if *done || !ext.name().eq_ignore_ascii_case(&item.name) {
                continue;
            }
            if let Some(params) = ext.accept(offer) {
                *done = true;
                items.push(response_item(ext.name(), &params));
                break;
            }
        }
    }
    (!items.is_empty()).then(|| items.join(", "))
}

/// Client side: applies the server's `Sec-WebSocket-Extensions` response items to the
/// extensions that were offered and returns the negotiated ones, in the order the server listed
/// them (the order they apply in).
///
/// Each item must name an offered extension (case-insensitively) not already named by an
/// earlier item, and that extension's [`finalize`](Extension::finalize) must accept it;
/// otherwise the handshake fails with a [`RemoteProtocolError`]. Offered extensions the server
/// did not mention are dropped: the connection proceeds without them.
pub fn client_extensions_handshake<I, S>(
    response_items: I,
    offered: Vec<Box<dyn Extension>>,
) -> Result<Vec<Box<dyn Extension>>, RemoteProtocolError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut offered: Vec<Option<Box<dyn Extension>>> = offered.into_iter().map(Some).collect();
    let mut negotiated: Vec<Box<dyn Extension>> = Vec::new();
    for raw in response_items {
        let raw = raw.as_ref();
        let item = ExtensionItem::parse(raw)
            .ok_or_else(|| fail(format!("malformed extension in response: {raw:?}")))?;
        let slot = offered
            .iter_mut()
            .find(|slot| slot.as_ref().is_some_and(|ext| ext.name().eq_ignore_ascii_case(&item.name)));
        let Some(mut ext) = slot.and_then(Option::take) else {
            let already = negotiated.iter().any(|e| e.name().eq_ignore_ascii_case(&item.name));
            return Err(if already {
                fail(format!("extension {} accepted twice", item.name))
            } else {
                fail(format!("unrecognized extension {}", item.name))
            });
        };
        ext.finalize(raw)
            .map_err(|error| RemoteProtocolError::Extension { name: ext.name().to_owned(), error })?;
        negotiated.push(ext);
    }
    Ok(negotiated)
}

/// `name` or `name; params`.
pub(crate) fn response_item(name: &str, params: &str) -> String {
    if params.is_empty() {
        name.to_owned()
    } else {
        format!("{name}; {params}")
    }
}

fn fail(detail: String) -> RemoteProtocolError {
    RemoteProtocolError::UnexpectedExtension(detail)
}
