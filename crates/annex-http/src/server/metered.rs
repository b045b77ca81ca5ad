//! Counting requests into the process's metrics ([`annex_metrics`]):
//! requests by endpoint and status, their durations, content bytes sent
//! and received, and transfers in flight, by repository.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use annex_metrics::{EndpointLabels, RepositoryLabels, RequestLabels, TransferLabels};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::body::{RequestBody, ResponseBody};
use crate::wire::{Endpoint, DATA_LENGTH_HEADER};

/// The endpoint a path names (`key` for a GET of content), and the
/// repository UUID in it, without checking either: the request is
/// checked by the handler; this only labels it. `other` for a path of
/// no endpoint.
fn labels_of(path: &str) -> (&'static str, &str) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // `/git-annex/UUID/...`, or a repository's path before it
    // (`/owner/repo/git-annex/UUID/...`, see `wire::Address`).
    let start = segments
        .iter()
        .enumerate()
        .rev()
        .find(|(i, s)| **s == "git-annex" && i + 1 < segments.len())
        .map_or(0, |(i, _)| i + 1);
    let uuid = segments.get(start).copied().unwrap_or("");
    let rest = segments.get(start + 1..).unwrap_or(&[]);
    let last = rest.last().copied().unwrap_or("");
    let before_last = match rest.len() {
        n if n >= 2 => rest[n - 2],
        _ => "",
    };
    if before_last == "key" {
        return ("key", uuid);
    }
    let endpoint = match Endpoint::parse(last) {
        Some(e) if e != Endpoint::Key => e.as_str(),
        _ => "other",
    };
    (endpoint, uuid)
}

/// Answers `req` with `answer`, counting it.
pub(crate) async fn observe<F, Fut>(req: Request<RequestBody>, answer: F) -> Response<ResponseBody>
where
    F: FnOnce(Request<RequestBody>) -> Fut,
    Fut: Future<Output = Response<ResponseBody>>,
{
    let metrics = annex_metrics::global();
    let start = Instant::now();
    let (endpoint, uuid) = labels_of(req.uri().path());
    // Transfers are counted by repository. Only a repository already
    // known to the metrics (registered when the server starts, or after
    // a transfer it answered) gets a series before its answer, so that
    // clients naming random UUIDs add no series.
    let transfer = matches!(endpoint, "key" | "put").then(|| uuid.to_owned());
    let received = Arc::new(AtomicU64::new(0));
    let req = match endpoint {
        "put" => {
            let received = received.clone();
            req.map(|body| {
                body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        received.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    frame
                })
                .boxed_unsync()
            })
        }
        _ => req,
    };
    let in_flight = transfer.as_ref().and_then(|repository| {
        let labels = RepositoryLabels {
            repository: repository.clone(),
        };
        let gauge = metrics.transfers_in_flight.get(&labels)?.clone();
        gauge.inc();
        Some(InFlight(gauge))
    });
    let resp = answer(req).await;
    let status = resp.status();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint,
            status: status.as_u16(),
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&EndpointLabels { endpoint })
        .observe(start.elapsed().as_secs_f64());
    let Some(repository) = transfer else {
        return resp;
    };
    if !status.is_success() {
        return resp;
    }
    let in_flight = in_flight.unwrap_or_else(|| {
        // Known from now on.
        let gauge = metrics
            .transfers_in_flight
            .get_or_create_owned(&RepositoryLabels {
                repository: repository.clone(),
            });
        gauge.inc();
        InFlight(gauge)
    });
    if endpoint == "put" {
        metrics
            .transfer_bytes
            .get_or_create(&TransferLabels {
                direction: "received",
                repository,
            })
            .inc_by(received.load(Ordering::Relaxed));
        return resp;
    }
    if endpoint == "key" && status == StatusCode::OK {
        // The content the response carries, counted as it starts.
        let len = resp
            .headers()
            .get(DATA_LENGTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = len {
            metrics
                .transfer_bytes
                .get_or_create(&TransferLabels {
                    direction: "sent",
                    repository,
                })
                .inc_by(len);
        }
        // In flight until the body is sent or dropped.
        return resp.map(|body| {
            body.map_frame(move |frame| {
                let _held = &in_flight;
                frame
            })
            .boxed()
        });
    }
    resp
}

/// A transfer in flight, counted until dropped.
struct InFlight(annex_metrics::prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::{labels_of, observe};
    use crate::server::body::{full, RequestBody};
    use annex_metrics::{RepositoryLabels, TransferLabels};
    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;

    fn request(method: &str, path: &str) -> Request<RequestBody> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(
                http_body_util::Full::new(bytes::Bytes::from_static(b"abc"))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    async fn answer(
        req: Request<RequestBody>,
        status: StatusCode,
    ) -> Response<crate::server::ResponseBody> {
        // Reads the body as a handler would.
        let _ = req.into_body().collect().await;
        let mut resp = Response::new(full("x"));
        *resp.status_mut() = status;
        resp
    }

    #[tokio::test]
    async fn refused_transfers_to_unknown_uuids_add_no_series() {
        let m = annex_metrics::global();
        for i in 0..20 {
            let uuid = format!("unknown-{i}");
            observe(
                request("GET", &format!("/git-annex/{uuid}/v4/key/SHA256E-s1--x")),
                |r| answer(r, StatusCode::NOT_FOUND),
            )
            .await;
            observe(
                request("POST", &format!("/git-annex/{uuid}/v4/put?key=K")),
                |r| answer(r, StatusCode::NOT_FOUND),
            )
            .await;
            let labels = RepositoryLabels {
                repository: uuid.clone(),
            };
            assert!(m.transfers_in_flight.get(&labels).is_none(), "{uuid}");
            for direction in ["sent", "received"] {
                let t = TransferLabels {
                    direction,
                    repository: uuid.clone(),
                };
                assert!(m.transfer_bytes.get(&t).is_none(), "{uuid} {direction}");
            }
        }
    }

    #[tokio::test]
    async fn a_successful_upload_counts_what_it_received() {
        let m = annex_metrics::global();
        let uuid = "known-after-success";
        observe(
            request(
                "POST",
                &format!("/owner/repo/git-annex/{uuid}/v4/put?key=K"),
            ),
            |r| answer(r, StatusCode::OK),
        )
        .await;
        let t = TransferLabels {
            direction: "received",
            repository: uuid.to_owned(),
        };
        assert_eq!(m.transfer_bytes.get(&t).map(|c| c.get()), Some(3));
        let labels = RepositoryLabels {
            repository: uuid.to_owned(),
        };
        assert_eq!(m.transfers_in_flight.get(&labels).map(|g| g.get()), Some(0));
    }

    #[test]
    fn paths_are_labelled_by_endpoint_and_repository() {
        assert_eq!(
            labels_of("/git-annex/U1/v4/checkpresent"),
            ("checkpresent", "U1")
        );
        assert_eq!(labels_of("/U1/v4/checkpresent"), ("checkpresent", "U1"));
        assert_eq!(
            labels_of("/git-annex/U1/v4/key/SHA256E-s1--x"),
            ("key", "U1")
        );
        assert_eq!(labels_of("/git-annex/U1/key/SHA256E-s1--x"), ("key", "U1"));
        assert_eq!(labels_of("/git-annex/U1/v3/put"), ("put", "U1"));
        assert_eq!(labels_of("/git-annex/U1/v4/nothing"), ("other", "U1"));
        assert_eq!(labels_of("/"), ("other", ""));
        assert_eq!(
            labels_of("/owner/repo/git-annex/U1/v4/key/SHA256E-s1--x"),
            ("key", "U1")
        );
        assert_eq!(
            labels_of("/owner/repo/git-annex/git-annex/U1/v4/put"),
            ("put", "U1")
        );
    }
}
