//! Counting requests into the process's metrics ([`annex_metrics`]):
//! requests by endpoint and status, their durations, content bytes sent
//! and received, and transfers in flight, by repository.

use std::future::Future;
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
    let rest = path.strip_prefix("/git-annex").unwrap_or(path);
    let mut segments = rest.trim_matches('/').split('/');
    let uuid = segments.next().unwrap_or("");
    let mut last = "";
    let mut before_last = "";
    for s in segments {
        before_last = last;
        last = s;
    }
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
    // Transfers are counted by repository; only a repository the request
    // reached gets a label, so that clients naming random UUIDs add no
    // series.
    let transfer = matches!(endpoint, "key" | "put").then(|| uuid.to_owned());
    let req = match (&transfer, endpoint) {
        (Some(repository), "put") => {
            let received = metrics
                .transfer_bytes
                .get_or_create_owned(&TransferLabels {
                    direction: "received",
                    repository: repository.clone(),
                })
                .clone();
            req.map(|body| {
                body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        received.inc_by(data.len() as u64);
                    }
                    frame
                })
                .boxed_unsync()
            })
        }
        _ => req,
    };
    let in_flight = transfer.as_ref().map(|repository| {
        let gauge = metrics
            .transfers_in_flight
            .get_or_create_owned(&RepositoryLabels {
                repository: repository.clone(),
            });
        gauge.inc();
        InFlight(gauge)
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
    let Some(in_flight) = in_flight else {
        return resp;
    };
    if endpoint == "key" && status == StatusCode::OK {
        // The content the response carries, counted as it starts.
        let len = resp
            .headers()
            .get(DATA_LENGTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(len), Some(repository)) = (len, transfer) {
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
    use super::labels_of;

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
    }
}
