//! Serving the router on a socket: plain HTTP, or HTTPS with rustls (HTTP/1.1 and HTTP/2 by
//! ALPN), and a graceful stop (SPEC §11): on SIGTERM or SIGINT no new connection is accepted,
//! requests in flight get up to ten seconds to finish, idle keep-alive connections are closed.
//! Clients that stall (in their headers, their body, or idle) are disconnected, and one address
//! may hold only so many connections at once.

mod per_address;
pub mod tls;
mod watchdog;

pub use per_address::ConnectionCap;
pub use watchdog::Timeouts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use watchdog::{Activity, Watched, WatchedBody};

/// How long requests in flight may take once a stop is asked for.
pub const DRAIN: Duration = Duration::from_secs(10);
/// How long a connection that has sent nothing yet may still do so once a stop is asked for.
/// hyper closes such a connection at once, and one accepted a moment before the stop may hold
/// a request it has not read: a proxy would see it closed unanswered, and not retry a POST.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// How connections are served: over TLS or not, how long clients may take, how many
/// connections one address may hold.
#[derive(Clone)]
pub struct Serving {
    pub tls: Option<tls::Acceptor>,
    pub timeouts: Timeouts,
    pub cap: ConnectionCap,
}

/// Serves `router` on `listener` until `stop` resolves, then drains. Returns whether every
/// connection finished within `DRAIN`.
pub async fn serve(listener: TcpListener, router: Router, serving: Serving, stop: impl Future<Output = ()>) -> bool {
    let (stopping, stopped) = watch::channel(false);
    // Every connection holds a sender; the receiver learns when the last one has ended.
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let protocols = Protocols::new();
    let start = |stream: tokio::net::TcpStream, peer: SocketAddr| {
        // Over its address's share: closed before a byte is read, so it costs nothing more.
        let Some(slot) = serving.cap.admit(peer.ip()) else { return };
        let connection = Connection {
            stream,
            peer,
            router: router.clone(),
            protocols: protocols.clone(),
            timeouts: serving.timeouts,
            _slot: slot,
        };
        tokio::spawn(connection.serve(serving.tls.clone(), stopped.clone(), alive.clone()));
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => start(stream, peer),
                Err(error) => {
                    // Out of file descriptors, say: accepting again at once would spin.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    // Connections the kernel completed before the stop but nobody accepted yet: a proxy has
    // sent a request on them, which closing the socket would answer with a reset.
    if let Ok(backlog) = listener.into_std() {
        while let Ok((stream, peer)) = backlog.accept() {
            if let Ok(stream) = stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                start(stream, peer);
            }
        }
    }
    tracing::info!("stopping: no new connections; finishing requests in flight");
    let _ = stopping.send(true);
    drop(alive);
    tokio::time::timeout(DRAIN, all_ended.recv()).await.is_ok()
}

/// HTTP/1.1, and HTTP/2 where TLS negotiated it. The protocol is chosen, never sniffed: a
/// connection still sniffing when a stop begins would be closed with its request unread.
#[derive(Clone)]
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Protocols {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // The watchdog times headers, bodies and idleness; hyper's header timer would also cut
        // an idle keep-alive connection at the header timeout.
        http1.timer(TokioTimer::new()).header_read_timeout(None);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        Protocols { http1, http2 }
    }
}

/// One accepted connection, to serve.
struct Connection {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    protocols: Protocols,
    timeouts: Timeouts,
    _slot: per_address::Slot,
}

impl Connection {
    async fn serve(self, tls: Option<tls::Acceptor>, stopped: watch::Receiver<bool>, _alive: mpsc::Sender<()>) {
        let Connection { stream, peer, router, protocols, timeouts, _slot } = self;
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            let activity = Arc::new(Activity::new(true));
            let service = with_peer(router, peer, false, activity.clone());
            let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
            return run(protocols.http1.serve_connection(io, service), stopped, activity, timeouts).await;
        };
        // A handshake that stalls must not hold a task for ever.
        let handshake = tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await;
        let Ok(Ok(stream)) = handshake else { return };
        let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let activity = Arc::new(Activity::new(!http2));
        let service = with_peer(router, peer, true, activity.clone());
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
        if http2 {
            run(protocols.http2.serve_connection(io, service), stopped, activity, timeouts).await;
        } else {
            run(protocols.http1.serve_connection(io, service), stopped, activity, timeouts).await;
        }
    }
}

/// Runs a connection to its end, or until it has stalled past its timeouts (then it is dropped,
/// which closes it). Once a stop is asked for, lets it finish what it was asked (keep-alive ends
/// with the answer), after giving a connection that has asked nothing yet a moment to do so.
async fn run<C: GracefulConnection>(
    connection: C,
    mut stopped: watch::Receiver<bool>,
    activity: Arc<Activity>,
    timeouts: Timeouts,
) {
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(&timeouts);
        let stalled = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut connection => return,
            _ = stopped.wait_for(|stopping| *stopping) => break,
            () = stalled => {
                // Activity may have moved the deadline while this one slept.
                if activity.deadline(&timeouts).is_some_and(|now_due| now_due <= tokio::time::Instant::now()) {
                    tracing::debug!("closing a connection that stalled");
                    return;
                }
            }
        }
    }
    if !activity.asked() {
        tokio::select! {
            _ = &mut connection => return,
            () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// The router as one connection's service, with the TCP peer where `ConnectInfo` finds it and
/// whether it came over TLS; each request is noted in the connection's `activity` until it is
/// answered, and its body until it has all arrived.
fn with_peer(
    router: Router,
    peer: SocketAddr,
    tls: bool,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let in_flight = activity.begin(hyper::body::Body::is_end_stream(request.body()));
        let seq = in_flight.seq();
        let mut request = request.map(|body| axum::body::Body::new(WatchedBody::new(body, activity.clone(), seq)));
        request.extensions_mut().insert(ConnectInfo(peer));
        if tls {
            request.extensions_mut().insert(crate::http::client::OverTls);
        }
        let mut router = router.clone();
        async move {
            let answer = tower::Service::call(&mut router, request).await;
            drop(in_flight);
            answer
        }
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
