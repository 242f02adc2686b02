//! The HTTPS listener over loopback: certificates by SNI, HTTP/2 and
//! HTTP/1.1 by ALPN, and plain HTTP redirected for hosts with a certificate.

use super::certs::{self, CertTable};
use super::tests::{echo_replica, get, loopback, route, upstream};
use super::*;
use http::HeaderValue;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use tokio::net::TcpStream;

struct Https {
    http: SocketAddr,
    https: SocketAddr,
    root: CertificateDer<'static>,
    /// The ACME HTTP-01 answers its HTTP listener gives.
    challenges: crate::acme::Challenges,
    _listeners: Listeners,
    _tables: (
        watch::Sender<Arc<CertTable>>,
        watch::Sender<Arc<RouteTable>>,
    ),
}

async fn start_https() -> Https {
    let replica = echo_replica("a").await;
    start_https_with(vec![route(
        "web",
        "web.test",
        "/",
        vec![upstream("web.1", replica)],
    )])
    .await
}

async fn start_https_with(routes: Vec<Route>) -> Https {
    let (cert_pem, key_pem) = certs::tests::self_signed(&["web.test"], 2099);
    let loaded = certs::load("web.test", &cert_pem, &key_pem, 0).unwrap();
    let root = loaded.key.cert[0].clone();
    let (cert_sender, cert_table) = watch::channel(Arc::new(CertTable::new([(
        "web.test".to_owned(),
        loaded.key,
    )])));
    let (routes_sender, routes) = watch::channel(Arc::new(RouteTable::new(routes)));
    let https = loopback("--https-listen", workers());
    let https_port = https[0].addr().port();
    let challenges = crate::acme::Challenges::default();
    let proxy = Proxy::new(
        routes,
        ProxyLimits::default(),
        Some(HttpsRedirect {
            certs: cert_table.clone(),
            port: https_port,
        }),
        challenges.clone(),
    );
    let listeners = Listeners::start(
        &proxy,
        loopback("--http-listen", workers()),
        https,
        Some(Arc::new(tls_config(cert_table).unwrap())),
    );
    Https {
        http: listeners.http_addrs()[0],
        https: listeners.https_addrs()[0],
        root,
        challenges,
        _listeners: listeners,
        _tables: (cert_sender, routes_sender),
    }
}

async fn tls_connect(
    https: &Https,
    name: &str,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(https.root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(https.https).await?;
    connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

#[tokio::test]
async fn https_serves_http2_and_http1_by_alpn_with_the_certificate_sni_names() {
    let https = start_https().await;

    let tls = tls_connect(&https, "web.test", b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("https://web.test/page?x=1")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("path=/page?x=1 xff=127.0.0.1 proto=https host=web.test"),
        "{body}"
    );

    let tls = tls_connect(&https, "web.test", b"http/1.1").await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header("host", "web.test")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);

    // A host without a certificate: no handshake.
    assert!(tls_connect(&https, "other.test", b"h2").await.is_err());
}

#[tokio::test]
async fn plain_http_for_a_host_with_a_certificate_is_redirected_but_acme_challenges_are_not() {
    let https = start_https().await;
    let answer = super::tests::send(
        https.http,
        "GET /a/b?c=d HTTP/1.1\r\nHost: Web.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.0, 308);
    let raw = super::tests::send_raw(
        https.http,
        "GET /a/b?c=d HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let location = format!("location: https://web.test:{}/a/b?c=d", https.https.port());
    assert!(raw.to_ascii_lowercase().contains(&location), "{raw}");
    let (status, body) = get(https.http, "web.test", "/.well-known/acme-challenge/token").await;
    assert_eq!(status, 200, "passed on: {body}");
    assert!(!body.contains("token.thumbprint"), "{body}");
    // An open challenge is answered by the proxy itself, for any host (a
    // certificate is asked for before the host has one, or a route).
    https.challenges.insert("token", "token.thumbprint");
    for host in ["web.test", "nothing.test"] {
        let (status, body) = get(https.http, host, "/.well-known/acme-challenge/token").await;
        assert_eq!((status, body.as_str()), (200, "token.thumbprint"), "{host}");
    }
    https.challenges.remove("token");
    let (_, body) = get(https.http, "web.test", "/.well-known/acme-challenge/token").await;
    assert!(!body.contains("token.thumbprint"), "closed: {body}");
    let (status, _) = get(https.http, "nothing.test", "/").await;
    assert_eq!(status, 404);
}

/// A replica that speaks h2c and answers like a gRPC server: a body, then
/// `grpc-status` in trailers; it says what it saw in `x-seen`.
async fn h2c_replica() -> SocketAddr {
    use http_body_util::StreamBody;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: http::Request<hyper::body::Incoming>| async move {
                        let seen = format!(
                            "{} {} te={}",
                            request.version() == http::Version::HTTP_2,
                            request.uri(),
                            request
                                .headers()
                                .get("te")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-"),
                        );
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                                bytes::Bytes::from_static(b"reply"),
                            )),
                            Ok(hyper::body::Frame::trailers(trailers)),
                        ];
                        let mut response =
                            http::Response::new(StreamBody::new(futures::stream::iter(frames)));
                        response
                            .headers_mut()
                            .insert("x-seen", HeaderValue::from_str(&seen).unwrap());
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn grpc_style_requests_go_to_h2c_replicas_with_trailers_both_ways() {
    let replica = h2c_replica().await;
    let https = start_https_with(vec![Route {
        h2: true,
        ..route("grpc", "web.test", "/", vec![upstream("grpc.1", replica)])
    }])
    .await;
    let tls = tls_connect(&https, "web.test", b"h2").await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("https://web.test/pkg.Service/Method")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"ask")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-seen"],
        "true http://web.test/pkg.Service/Method te=trailers"
    );
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "reply");
}
