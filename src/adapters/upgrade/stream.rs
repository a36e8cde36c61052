use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The stream under a WebSocket opened by [`connect`](crate::upgrade::connect): plain TCP for `ws://`, TLS over TCP
/// for `wss://` (feature `rustls`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`: tokio-rustls over TCP.
    #[cfg(feature = "rustls-no-provider")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_read(cx, buf),
            #[cfg(feature = "rustls-no-provider")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            #[cfg(feature = "rustls-no-provider")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_flush(cx),
            #[cfg(feature = "rustls-no-provider")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            #[cfg(feature = "rustls-no-provider")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
