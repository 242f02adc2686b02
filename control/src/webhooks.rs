//! `warren serve --webhook URL`: every cluster event POSTed to each URL as
//! JSON (the object `warren events --json` prints), in order, one request
//! at a time per URL, each bounded by [`TIMEOUT`]. A webhook that fails is
//! logged once, and again when it delivers again; one that falls more
//! than a few hundred events behind misses the oldest, and the count is
//! logged. Events stay in the store either way (`warren events`).

use crate::events::Event;
use crate::outbound::Outbound;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
#[error("--webhook {0:?} is not an http:// or https:// URL")]
pub struct BadWebhook(String);

/// Checks that `text` is a URL a webhook can be posted to.
pub fn parse(text: &str) -> Result<Uri, BadWebhook> {
    let uri: Uri = text.parse().map_err(|_| BadWebhook(text.to_owned()))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(BadWebhook(text.to_owned())),
    }
}

/// Posts each of `events` to `url` until the cluster stops.
pub async fn deliver(url: Uri, outbound: Outbound, mut events: broadcast::Receiver<Event>) {
    let mut failing = false;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(%url, missed, "webhook fell behind: events missed (see `warren events`)");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        match tokio::time::timeout(TIMEOUT, post(&url, &outbound, &event)).await {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!(%url, "webhook delivering again");
                    failing = false;
                }
            }
            Ok(Err(error)) => {
                if !failing {
                    tracing::warn!(%url, %error, id = event.id, "webhook failed; events go on being tried");
                    failing = true;
                }
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(%url, id = event.id, timeout = ?TIMEOUT, "webhook did not answer in time");
                    failing = true;
                }
            }
        }
    }
}

/// One delivery: a 2xx answer is success.
async fn post(url: &Uri, outbound: &Outbound, event: &Event) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("warren/", env!("CARGO_PKG_VERSION"))),
    );
    let response = outbound.send(request).await.map_err(|e| e.to_string())?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::What;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_http_urls_with_a_host_are_webhooks() {
        assert!(parse("https://hooks.example.com/warren").is_ok());
        assert!(parse("http://10.0.0.5:9000/").is_ok());
        for bad in ["ftp://example.com/", "/just/a/path", "example.com", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// Answers each connection's request with `status` and hands the body on.
    async fn receiver(status: &'static str) -> (Uri, tokio::sync::mpsc::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Uri = format!("http://{}/hook", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (bodies, received) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Head, then as much body as Content-Length says.
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_owned)
                            })
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            let _ = bodies.send(body.to_owned()).await;
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, received)
    }

    fn event(id: u64, node: &str) -> Event {
        Event {
            id,
            at_ms: 1,
            what: What::NodeOffline {
                node: node.to_owned(),
            },
        }
    }

    #[tokio::test]
    async fn every_event_is_posted_in_order_as_json_even_after_a_failure() {
        let outbound = Outbound::new(None).unwrap();
        for status in ["200 OK", "500 Internal Server Error"] {
            let (url, mut received) = receiver(status).await;
            let (events, subscribed) = broadcast::channel(16);
            let task = tokio::spawn(deliver(url, outbound.clone(), subscribed));
            for (id, node) in [(1, "a"), (2, "b")] {
                events.send(event(id, node)).unwrap();
            }
            for id in [1, 2] {
                let body = received.recv().await.unwrap();
                let posted: Event = serde_json::from_str(&body).unwrap();
                assert_eq!(posted.id, id, "{status}: in order, each one");
            }
            drop(events);
            task.await.unwrap();
        }
    }
}
