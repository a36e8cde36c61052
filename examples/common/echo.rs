//! The echo loop shared by the echo and Autobahn examples.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use wsproto::codec::Error;
use wsproto::codec::WsCodec;
use wsproto::{CloseConnection, Event};

/// Echoes every text and binary event as it comes (whole messages with the upgrade helper's
/// default delivery; with `Delivery::Chunks` the fragment structure follows the input, so even
/// a huge message needs little memory), answers pings, and completes the close handshake.
/// Returns the close event that ended the connection.
pub async fn echo<T>(ws: &mut Framed<T, WsCodec>) -> Result<Option<CloseConnection>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(event) = ws.next().await {
        let reply: Event = match event? {
            Event::TextMessage(m) => m.into(),
            Event::BytesMessage(m) => m.into(),
            Event::Ping(ping) => ping.response().into(),
            Event::CloseConnection(close) => {
                if let Some(reply) = close.reply() {
                    ws.send(reply.into()).await?;
                }
                return Ok(Some(*close));
            }
            _ => continue,
        };
        ws.feed(reply).await?;
        // One flush (one write) per batch of events already buffered.
        if ws.read_buffer().is_empty() {
            ws.flush().await?;
        }
    }
    ws.flush().await?;
    Ok(None)
}
