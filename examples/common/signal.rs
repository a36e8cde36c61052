//! The signals that stop a server: Ctrl-C (SIGINT) everywhere, and SIGTERM on unix.

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere) and returns its name.
pub async fn stop() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// The next connection `listener` accepts, or the name of the signal `stop` ended with.
///
/// An accept error (out of file descriptors, a connection reset before it was accepted)
/// leaves the listener fine: it is reported, and after a short pause (so a full descriptor
/// table can drain) accepting goes on.
pub async fn accept_or_stop(
    listener: &tokio::net::TcpListener,
    mut stop: std::pin::Pin<&mut impl std::future::Future<Output = &'static str>>,
) -> Result<(tokio::net::TcpStream, std::net::SocketAddr), &'static str> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Ok(accepted),
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            signal = stop.as_mut() => return Err(signal),
        }
    }
}
