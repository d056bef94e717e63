//! What a connection has been doing, and when it has taken too long: a request's headers begun
//! and not finished (the header timeout, also for a new connection that sends nothing), a body
//! begun and not finished (the body timeout), or nothing asked since the last answer (the idle
//! timeout). hyper's own header timer cannot tell an idle keep-alive connection from one that
//! stalls in its headers, so the connection's reads and requests are watched here instead.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How long clients may take, each configurable (`tenure serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a request's first byte (or a new connection) to the end of its headers.
    pub header: Duration,
    /// From an answer to the next request's first byte.
    pub idle: Duration,
    /// From the end of a request's headers to the end of its body.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60), body: Duration::from_secs(30) }
    }
}

const NONE: u64 = u64::MAX;

/// One connection's activity, in milliseconds since it was accepted.
pub struct Activity {
    origin: Instant,
    /// Whether bytes read outside a request start a request's headers (HTTP/1.1). HTTP/2 sends
    /// frames of its own between requests, so there only the idle and body timeouts apply.
    heads_by_bytes: bool,
    /// The first byte read since the last request began, if any.
    head_since: AtomicU64,
    last_answer: AtomicU64,
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// Bodies still being sent: when each request began.
    bodies: Mutex<BTreeMap<u64, u64>>,
}

impl Activity {
    pub fn new(heads_by_bytes: bool) -> Activity {
        Activity {
            origin: Instant::now(),
            heads_by_bytes,
            head_since: AtomicU64::new(NONE),
            last_answer: AtomicU64::new(0),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            bodies: Mutex::new(BTreeMap::new()),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.origin + Duration::from_millis(millis)
    }

    /// Whether a request has begun on this connection.
    pub fn asked(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    fn read(&self) {
        if self.heads_by_bytes && self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_since.compare_exchange(NONE, self.now(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A request's headers are in; until the returned guard drops, it is in flight.
    pub fn begin(self: &std::sync::Arc<Self>, body_done: bool) -> InFlight {
        let seq = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        if !body_done {
            self.bodies.lock().unwrap_or_else(|p| p.into_inner()).insert(seq, self.now());
        }
        InFlight { activity: self.clone(), seq }
    }

    fn body_done(&self, seq: u64) {
        self.bodies.lock().unwrap_or_else(|p| p.into_inner()).remove(&seq);
    }

    /// When the connection will have taken too long, if nothing happens before then.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            let bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
            return bodies.values().min().map(|begun| self.at(*begun) + timeouts.body);
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        Some(if head_since != NONE {
            self.at(head_since) + timeouts.header
        } else if !self.asked() {
            self.origin + timeouts.header
        } else {
            self.at(self.last_answer.load(Ordering::Relaxed)) + timeouts.idle
        })
    }
}

/// A request in flight; dropped when its answer is ready (or the request is abandoned).
pub struct InFlight {
    activity: std::sync::Arc<Activity>,
    seq: u64,
}

impl InFlight {
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.body_done(self.seq);
        activity.last_answer.store(activity.now(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose reads are noted in an `Activity`.
pub struct Watched<S> {
    pub inner: S,
    pub activity: std::sync::Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that tells its connection's `Activity` when it has all been read.
pub struct WatchedBody<B> {
    inner: B,
    activity: std::sync::Arc<Activity>,
    seq: u64,
    done: bool,
}

impl<B> WatchedBody<B> {
    pub fn new(inner: B, activity: std::sync::Arc<Activity>, seq: u64) -> WatchedBody<B> {
        WatchedBody { inner, activity, seq, done: false }
    }

    fn finished(&mut self) {
        if !self.done {
            self.done = true;
            self.activity.body_done(self.seq);
        }
    }
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) || self.inner.is_end_stream() {
            self.finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60), body: Duration::from_secs(30) }
    }

    #[tokio::test(start_paused = true)]
    async fn each_state_of_a_connection_has_its_own_timeout() {
        let activity = std::sync::Arc::new(Activity::new(true));
        let origin = activity.origin;
        // A new connection that sends nothing: the header timeout.
        assert_eq!(activity.deadline(&timeouts()), Some(origin + Duration::from_secs(10)));
        {
            let _request = activity.begin(false);
            tokio::time::advance(Duration::from_secs(5)).await;
            // A body being sent: 30 s from the end of the headers; no other deadline.
            assert_eq!(activity.deadline(&timeouts()), Some(origin + Duration::from_secs(30)));
            activity.body_done(1);
            assert_eq!(activity.deadline(&timeouts()), None, "a handler at work is not timed here");
        }
        // Answered: idle for up to a minute.
        assert_eq!(activity.deadline(&timeouts()), Some(origin + Duration::from_secs(65)));
        tokio::time::advance(Duration::from_secs(20)).await;
        // A byte of the next request: its headers have 10 s.
        activity.read();
        assert_eq!(activity.deadline(&timeouts()), Some(origin + Duration::from_secs(35)));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_do_not_start_a_header_timer() {
        let activity = std::sync::Arc::new(Activity::new(false));
        drop(activity.begin(true));
        activity.read();
        assert_eq!(activity.deadline(&timeouts()), Some(activity.origin + Duration::from_secs(60)));
    }
}
