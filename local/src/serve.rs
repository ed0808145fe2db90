//! The local server's connection handling. `axum::serve` keeps every connection for as long as
//! the client likes, so a thousand idle or deliberately slow sockets could exhaust the process's
//! file descriptors and lock every other developer out. Here each connection gets a deadline for
//! its request headers, a request body has a deadline for the whole of it (a sender dripping one
//! byte at a time never resets it), a socket that sends nothing for the idle timeout is closed,
//! and at most `max_connections` are open at once (the rest wait in the listen backlog).

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its headers.
    pub headers: Duration,
    /// From the end of the headers to the last byte of the body: past it, 408 and the
    /// connection closes.
    pub body: Duration,
    /// No byte read for this long closes the connection (idle keep-alive, stalled body).
    pub idle: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            headers: Duration::from_secs(10),
            body: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// Reads the whole body (at most the API's limit) before the handler runs, within `deadline`.
async fn body_deadline(
    deadline: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use loyalty::http::Problem;
    let (parts, body) = req.into_parts();
    let limit = loyalty::http::extract::BODY_LIMIT;
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit + 1)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(_)) => Problem::payload_too_large(limit).into_response(),
        Err(_) => {
            let mut res = Problem::new(
                http::StatusCode::REQUEST_TIMEOUT,
                "request",
                "Request timeout",
                format!(
                    "the request body did not arrive within {} seconds",
                    deadline.as_secs()
                ),
            )
            .into_response();
            res.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            res
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.headers)
        .keep_alive(true);
    let app = app.layer(axum::middleware::from_fn(move |req, next| {
        body_deadline(timeouts.body, req, next)
    }));
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(timeouts.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => return,
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a transient error: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = socket.set_nodelay(true);
        let mut stream = TimeoutStream::new(socket);
        stream.set_read_timeout(Some(timeouts.idle));
        stream.set_write_timeout(Some(timeouts.idle));
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let _slot = permit;
            let io = TokioIo::new(Box::pin(stream));
            if let Err(e) = builder.serve_connection_with_upgrades(io, service).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}
