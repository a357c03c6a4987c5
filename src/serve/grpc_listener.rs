//! The gRPC listener's connections, bounded as the REST ones are (`http.rs`): at most
//! `--max-connections` open (the next is closed at once: a gRPC client sees UNAVAILABLE and
//! retries), and a connection that moves no byte either way for `--header-timeout-s` is closed.
//!
//! Why: tonic's own `TcpIncoming` accepts without limit, so idle connections could use up the
//! process's file handles as they did over REST before issue #26 (20,116 idle connections),
//! and a peer that opens TCP and never sends the HTTP/2 preface held its handle forever.
//! Live HTTP/2 peers are not idle: the server pings every half deadline
//! ([`keepalive_interval`]) and their acknowledgements count as traffic, so a channel kept
//! open by tritonclient between requests, or waiting on a long inference, stays.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::http::ConnLimits;

/// How often the server pings an HTTP/2 peer: half the idle deadline, so a live peer's
/// acknowledgement always arrives before it.
pub fn keepalive_interval(limits: &ConnLimits) -> Duration {
    (limits.header_timeout / 2).max(Duration::from_millis(500))
}

/// One accepted connection: holds its slot of the cap until dropped, and reads as an error once
/// no byte has moved for `idle`.
pub struct Capped {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Capped {
    fn new(tcp: TcpStream, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        Capped {
            tcp,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "gRPC connection idle past --header-timeout-s",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

/// Accepts on `listener` until `stop` turns true, handing tonic the connections within the
/// cap. The stream ends when accepting stops.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Capped>> {
    let (tx, rx) = mpsc::channel(16);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        let mut refused = 0u64;
        while let Some(tcp) = super::http::accept(&listener, &mut stop, "gRPC").await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                refused += 1;
                // One line per power of two: an attack must not flood the log.
                if refused.is_power_of_two() {
                    tracing::warn!(
                        "gRPC: {refused} connection(s) refused so far: {} open (--max-connections)",
                        limits.max_connections
                    );
                }
                continue; // dropping it closes it
            };
            if tx
                .send(Ok(Capped::new(tcp, slot, limits.header_timeout)))
                .await
                .is_err()
            {
                break; // tonic stopped serving
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
