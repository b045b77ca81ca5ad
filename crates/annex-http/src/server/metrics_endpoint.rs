//! A listener of its own serving the process's metrics at `/metrics`
//! (Prometheus' text format), apart from the API: nothing of the API is
//! served there, and nothing of the metrics on the API's listeners.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::body::{full, ResponseBody};

/// The answer to one request to the metrics listener: `GET /metrics`
/// gets the metrics, anything else 404 (405 for another method).
pub async fn answer<B>(req: Request<B>) -> Response<ResponseBody> {
    let mut resp = if req.uri().path() != "/metrics" {
        let mut r = Response::new(full("not found"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = Response::new(full("method not allowed"));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return r;
    } else {
        // Refreshers may read the git-annex branch: off the async threads.
        let text = tokio::task::spawn_blocking(|| annex_metrics::global().encode())
            .await
            .unwrap_or_default();
        Response::new(full(text))
    };
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(annex_metrics::CONTENT_TYPE),
    );
    resp
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(answer(req).await)
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}
