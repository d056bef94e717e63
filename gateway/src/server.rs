//! Serving the router on a socket: plain HTTP, or HTTPS with rustls (HTTP/1.1 and HTTP/2 by
//! ALPN), and a graceful stop (SPEC §11): on SIGTERM or SIGINT no new connection is accepted,
//! requests in flight get up to ten seconds to finish, idle keep-alive connections are closed.

pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// How long requests in flight may take once a stop is asked for.
pub const DRAIN: Duration = Duration::from_secs(10);
/// A client that has not sent its request's headers by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop` resolves, then
/// drains. Returns whether every connection finished within `DRAIN`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tls::Acceptor>,
    stop: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: accepting again at once would spin.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = with_peer(router.clone(), peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                tokio::spawn(async move {
                    let _ = watcher.watch(connection).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A handshake that stalls must not hold a task for ever.
                    let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await;
                    let Ok(Ok(stream)) = handshake else { return };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                    let _ = watcher.watch(connection).await;
                });
            }
        }
    }
    drop(listener);
    tracing::info!("stopping: no new connections; finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(DRAIN) => false,
    }
}

/// The router as one connection's service, with the TCP peer where `ConnectInfo` finds it.
fn with_peer(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { tower::Service::call(&mut router, request).await }
    })
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
