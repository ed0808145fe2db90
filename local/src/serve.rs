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

/// A connection's stream that turns hyper's own error answers into problem+json. hyper answers a
/// request it cannot parse (a header flood: 431, `Content-Length: -1`: 400) itself, with an
/// empty body, before any service sees it, and then closes; every other error of the API is
/// problem+json, so these are too. Such an answer is the last thing hyper writes on the
/// connection: a 4xx head with `content-length: 0` and no content type, which no answer of the
/// API's own has.
struct ProblemOnRejection<S> {
    inner: S,
    /// Bytes of a rewritten answer still to write, and how many are written.
    pending: Option<(Vec<u8>, usize)>,
}

fn bare_rejection(buf: &[u8]) -> Option<u16> {
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    ((400..500).contains(&status)
        && head.ends_with("\r\n\r\n")
        && lower.contains("\r\ncontent-length: 0\r\n")
        && !lower.contains("\r\ncontent-type:"))
    .then_some(status)
}

fn problem_answer(status: u16) -> Vec<u8> {
    let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let reason = code.canonical_reason().unwrap_or("Bad Request");
    let id = uuid::Uuid::now_v7();
    let body = serde_json::json!({
        "type": "/problems/request", "title": reason, "status": status,
        "detail": format!("the server could not read this request ({reason})"),
        "instance": format!("/requests/{id}"),
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ProblemOnRejection<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> ProblemOnRejection<S> {
    fn poll_pending(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ProblemOnRejection<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(status) = bare_rejection(buf) {
            self.pending = Some((problem_answer(status), 0));
            // The original answer counts as written; the rewritten one goes out in its place.
            let _ = self.poll_pending(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
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
        // These answer before the API's edge sees the request: finished here like every
        // problem (a request id in `x-request-id` and `instance`).
        Ok(Err(_)) => {
            let id = uuid::Uuid::now_v7().to_string();
            loyalty::http::finish(Problem::payload_too_large(limit).into_response(), &id).await
        }
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
            let id = uuid::Uuid::now_v7().to_string();
            loyalty::http::finish(res, &id).await
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
            let io = TokioIo::new(ProblemOnRejection {
                inner: Box::pin(stream),
                pending: None,
            });
            if let Err(e) = builder.serve_connection_with_upgrades(io, service).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}
