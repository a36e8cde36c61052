//! The echo loop over a session, shared by the interop examples and tests.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use wsproto::session::Session;
use wsproto::{Error, Event};

/// Echoes every text and binary message until the connection ends; the session answers pings
/// and completes the close handshake by itself.
pub async fn echo<T>(ws: &mut Session<T>) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(event) = ws.next().await {
        match event? {
            Event::TextMessage(m) => ws.send(m.into()).await?,
            Event::BytesMessage(m) => ws.send(m.into()).await?,
            _ => {}
        }
    }
    Ok(())
}
