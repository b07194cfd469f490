//! The HTTP server loop: what `axum::serve` does, plus the limits a server facing the internet needs.
//!
//! Git hosts call trigger URLs directly, so pipehook itself bounds what a client can hold:
//! - a cap on open connections ([`ServerLimits::max_connections`]); at the cap, new connections wait in the
//!   listen backlog until one closes;
//! - a header timeout that also ends idle keep-alive connections (HTTP/1: hyper times the read of the next
//!   request head from when the connection turns idle; HTTP/2: keep-alive pings);
//! - a time limit on reading request bodies and a budget of body bytes held in memory at once, applied where
//!   bodies are read ([`BodyBudget`], used by the trigger URLs and the AWS endpoint).

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// The limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Open connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request head, and how long a connection may sit idle between
    /// requests.
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // half_close: a client may shut down its write side once its request is sent and still wait for the answer
    // (hyper's default takes that EOF for an abandoned request and closes without answering). Only the rest of a
    // request already under way is waited for: an EOF while waiting for a request head (nothing sent, or half a
    // head) still closes the connection at once, and the header timeout still bounds the head.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    loop {
        let permit: OwnedSemaphorePermit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): wait instead of
                    // spinning; established connections keep being served meanwhile.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = limits.header_read_timeout;
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            // A Router is always ready, so `call` needs no `poll_ready` first.
            async move { router.call(req.map(axum::body::Body::new)).await }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let _slot = permit;
            // hyper reads the first bytes to tell HTTP/1 from HTTP/2 without a timeout of its own; a client
            // that sends nothing must not hold a connection slot past the header timeout. Nor may it hold up a
            // shutdown: the graceful shutdown waits for every watcher, and this one is held from the accept on.
            let known = tokio::select! {
                known = tokio::time::timeout(header_timeout, protocol_known(&stream)) => known.unwrap_or(false),
                _ = stopping.cancelled() => false,
            };
            if !known {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    Ok(())
}

/// The HTTP/2 connection preface; a connection whose first bytes differ from it is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (without consuming anything) until the first bytes tell the protocol: enough of them to differ from
/// the HTTP/2 preface, or the whole preface. False when the client closed first.
async fn protocol_known(stream: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 24];
    let mut seen = 0;
    loop {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] => return true,
            Ok(n) if n == seen => {
                // Nothing new since the last look: wait for more before peeking again.
                if stream.readable().await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(n) => seen = n,
        }
    }
}

/// The memory request bodies (and their parsed JSON, [`PARSE_FACTOR`]) may take at once, across all requests
/// (trigger URLs and the AWS endpoint): a body is read only while the budget has room for it, so many large
/// bodies at once wait (up to the body timeout) instead of exhausting memory.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    /// How long reading one body (including waiting for budget) may take.
    pub read_timeout: Duration,
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over `cap` bytes (declared or sent).
    TooLarge(usize),
    /// Not read within the body timeout (a slow client, or no budget free).
    Timeout,
    /// The client broke off or sent a malformed body.
    Broken(String),
}

/// Bytes of memory a parsed JSON document takes per byte of its text: `serde_json::Value` spends several times
/// the text on nodes and maps (a 23 MiB array of small objects was seen at +370 MB, about 16×; typical webhook
/// payloads, mostly strings, far less). Every body byte reserves `1 + PARSE_FACTOR` bytes of the budget, once,
/// when it is read, so a request never holds part of the budget while waiting for more (no deadlock between
/// requests) and what its parse will take is already counted.
pub const PARSE_FACTOR: usize = 8;

/// The body length a request declares (`Content-Length`), if it is a number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A body's share of the budget, given back when dropped (when the request is done with the body).
#[derive(Debug)]
pub struct BodyPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(total: usize, read_timeout: Duration) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        Self { bytes: Arc::new(Semaphore::new(total)), total, read_timeout }
    }

    /// Adds what `n` body bytes cost (with their parse; at most the whole budget) to what `held` holds, waiting
    /// for room.
    async fn reserve(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), BodyError> {
        let cost = n.saturating_mul(1 + PARSE_FACTOR);
        let have = held.as_ref().map_or(0, |h| h.num_permits());
        // Never more than the whole budget for one request, so a single large body can always proceed alone.
        let n = cost.min(self.total.saturating_sub(have)) as u32;
        if n == 0 {
            return Ok(());
        }
        let p = self.bytes.clone().acquire_many_owned(n).await.map_err(|_| BodyError::Broken("closing".into()))?;
        match held {
            Some(h) => h.merge(p),
            None => *held = Some(p),
        }
        Ok(())
    }

    /// Reads `body` (at most `cap` bytes) within the timeout, holding its size in the budget.
    pub async fn read(
        &self,
        headers: &http::HeaderMap,
        body: axum::body::Body,
        cap: usize,
    ) -> Result<(axum::body::Bytes, BodyPermit), BodyError> {
        use http_body_util::BodyExt;
        let declared = declared_length(headers);
        if declared.is_some_and(|n| n > cap) {
            return Err(BodyError::TooLarge(cap));
        }
        let read = async {
            // The declared size is reserved up front; an undeclared (chunked) body reserves as it arrives.
            let mut held: Option<OwnedSemaphorePermit> = None;
            if let Some(n) = declared {
                self.reserve(n, &mut held).await?;
            }
            let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(cap));
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
                let Ok(data) = frame.into_data() else { continue };
                if buf.len() + data.len() > cap {
                    return Err(BodyError::TooLarge(cap));
                }
                let reserved = declared.unwrap_or(0);
                if buf.len() + data.len() > reserved {
                    let extra = buf.len() + data.len() - reserved.max(buf.len());
                    self.reserve(extra, &mut held).await?;
                }
                buf.extend_from_slice(&data);
            }
            Ok((axum::body::Bytes::from(buf), BodyPermit(held)))
        };
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(BodyError::Timeout),
        }
    }
}
