//! The REST listener, with every connection bounded: a cap on open connections (the excess is
//! answered 503 and closed), a deadline for each request's headers (idle keep-alive
//! connections included: hyper restarts it whenever it waits for a head) and for its body
//! (408), and a grace period after SIGTERM past which connections still open are dropped.
//!
//! Why by hand rather than `axum::serve`: that has no connection cap and no deadlines, and its
//! graceful shutdown waits for every connection. Measured before (issue #26): 20,116 idle
//! connections used up the process's 20,000 file handles (ready and infer timed out until they
//! closed); slowloris (one header line per 2 s), a stalled `Content-Length: 1e12` body and an
//! endless chunked body were all kept over 90 s; one half-sent request kept a SIGTERMed server
//! running until its client gave up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long connections and requests may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most; the next is answered 503 and closed.
    pub max_connections: usize,
    /// A request's headers (and an idle keep-alive connection's next request) must arrive
    /// within this, or the connection is closed.
    pub header_timeout: Duration,
    /// A request's body must arrive within this (else 408).
    pub body_timeout: Duration,
    /// After SIGTERM: how long admitted requests may still take before the server exits.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `stop` turns true, then gives open connections `grace` to
/// finish (no new requests on them) and returns, whatever is still open.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // One clone per open connection: the strong count tells how many are left.
    let live = Arc::new(());
    while let Some(tcp) = accept(&listener, &mut stop, "HTTP").await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(tcp, limits.max_connections));
            continue;
        };
        let (app, mut stop, live) = (app.clone(), stop.clone(), live.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _live = live;
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = b.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => {}
            }
            // Finish the request in progress, take no new one.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    let deadline = Instant::now() + limits.grace;
    while Arc::strong_count(&live) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = Arc::strong_count(&live) - 1;
    if left > 0 {
        tracing::warn!(
            "{left} connection(s) still open after the {:.0} s grace period (--shutdown-grace-s): dropped",
            limits.grace.as_secs_f64()
        );
    }
}

/// The next connection on `listener`, with Nagle's algorithm off, or None once `stop` turns
/// true. Shared by the REST and gRPC listeners.
pub(super) async fn accept(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
    what: &str,
) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => {
                    // Small answers must leave at once: with Nagle's algorithm a response
                    // written in two parts waits for the client's delayed ACK (40 ms on Linux).
                    let _ = tcp.set_nodelay(true);
                    return Some(tcp);
                }
                Err(e) => {
                    // Out of file handles (or a transient error): wait a little instead of
                    // spinning on accept; connections that end free handles.
                    tracing::warn!("cannot accept a {what} connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // The guard wait_for returns is not Send (the gRPC loop runs in a spawned task):
            // dropped inside.
            _ = async { drop(stop.wait_for(|s| *s).await) } => return None,
        }
    }
}

/// Answers 503 on a connection beyond the cap and closes it (bounded: 1 s).
async fn refuse(mut tcp: tokio::net::TcpStream, max: usize) {
    let body = format!(
        "{{\"error\":\"too many open connections (the server's --max-connections is {max}); retry shortly, or reuse a connection\"}}"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// Middleware: the request body must arrive whole within the deadline (408 otherwise) and
/// within the size bound (413), before any handler sees it.
pub async fn body_in_time(
    State((deadline, max_bytes)): State<(Duration, usize)>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, max_bytes)).await {
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {:.0} s (the server's --body-timeout-s)",
                deadline.as_secs_f64()
            ),
        ),
        Ok(Err(e)) => {
            // axum's `to_bytes` reports its bound as http-body-util's LengthLimitError.
            let too_large = format!("{e:#}").contains("length limit");
            if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over {max_bytes} bytes (the server's --max-body-bytes)"
                    ),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                )
            }
        }
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
    }
}
