//! The proxy over real sockets on loopback: replicas that answer, refuse,
//! hang up or upgrade, and clients that misbehave.

use super::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_proto::Mode;

/// A replica that answers every request with what it saw: its name, the
/// method, the path and the forwarding headers; it reads bodies whole and
/// says how long they were.
pub(super) async fn echo_replica(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let (parts, body) = request.into_parts();
                        let length = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes().len())
                            .unwrap_or(0);
                        let header = |name: &str| {
                            parts
                                .headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_owned()
                        };
                        let text = format!(
                        "replica={name} method={} path={} xff={} proto={} host={} fwd={} connection={} body={length}\n",
                        parts.method,
                        parts.uri,
                        header("x-forwarded-for"),
                        header("x-forwarded-proto"),
                        header("x-forwarded-host"),
                        header("forwarded"),
                        header("x-hop"),
                    );
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A replica that reads a request head and hangs up without a word,
/// counting the requests it got.
async fn hangup_replica() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            drop(stream);
        }
    });
    (addr, seen)
}

/// A replica that agrees to any upgrade and then echoes bytes back.
async fn upgrade_replica() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                assert!(
                    head.to_ascii_lowercase().contains("upgrade: websocket"),
                    "{head}"
                );
                stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .await
                    .unwrap();
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

pub(super) fn upstream(replica: &str, addr: SocketAddr) -> Upstream {
    Upstream {
        replica: replica.to_owned(),
        node: "n".to_owned(),
        addr,
        mode: Mode::Direct,
    }
}

/// `web.test` to the one replica at `addr`.
fn one_route(addr: SocketAddr) -> Vec<Route> {
    vec![route("web", "web.test", "/", vec![upstream("web.1", addr)])]
}

pub(super) fn route(service: &str, host: &str, path: &str, upstreams: Vec<Upstream>) -> Route {
    Route {
        service: service.to_owned(),
        hosts: vec![host.to_owned()],
        path: path.to_owned(),
        strip_prefix: false,
        sticky: false,
        h2: false,
        upstreams: Arc::from(upstreams),
    }
}

struct Running {
    addr: SocketAddr,
    routes: watch::Sender<Arc<RouteTable>>,
    proxy: Arc<Proxy>,
    _listeners: Listeners,
}

/// Sockets for `workers` workers on a free loopback port, for `flag`.
pub(super) fn loopback(flag: &'static str, workers: usize) -> Vec<Bound> {
    bind(&["127.0.0.1:0".parse().unwrap()], false, flag, workers).unwrap()
}

async fn start(routes: Vec<Route>, limits: ProxyLimits) -> Running {
    let (sender, receiver) = watch::channel(Arc::new(RouteTable::new(routes)));
    let workers = limits.workers;
    let proxy = Proxy::new(receiver, limits, None, crate::acme::Challenges::default());
    let listeners = Listeners::start(&proxy, loopback("--http-listen", workers), Vec::new(), None);
    Running {
        addr: listeners.http_addrs()[0],
        routes: sender,
        proxy,
        _listeners: listeners,
    }
}

/// Sends `request` on a new connection and reads the answer to its end
/// (the request says `Connection: close`): the status and the body.
pub(super) async fn send(addr: SocketAddr, request: &str) -> (u16, String) {
    let answer = send_raw(addr, request).await;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Sends `request` on a new connection: the whole answer, head and body.
pub(super) async fn send_raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

pub(super) async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn echo(client: &mut TcpStream, text: &[u8]) {
    let mut buf = vec![0u8; text.len()];
    client.write_all(text).await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, text);
}

#[tokio::test]
async fn requests_are_routed_by_host_and_path_and_balanced() {
    let (a, b, api) = (
        echo_replica("a").await,
        echo_replica("b").await,
        echo_replica("api").await,
    );
    let proxy = start(
        vec![
            route(
                "web",
                "web.test",
                "/",
                vec![upstream("web.1", a), upstream("web.2", b)],
            ),
            Route {
                strip_prefix: true,
                ..route("api", "web.test", "/api", vec![upstream("api.1", api)])
            },
            route("tenants", "*.web.test", "/", vec![upstream("web.1", a)]),
            route("empty", "empty.test", "/", Vec::new()),
        ],
        ProxyLimits::default(),
    )
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = get(proxy.addr, "web.test", "/index.html").await;
        assert_eq!(status, 200, "{body}");
        seen.insert(body.split(' ').next().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "both replicas answer: {seen:?}");
    let (status, body) = get(proxy.addr, "WEB.test:80", "/api/users?id=7").await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("replica=api method=GET path=/users?id=7 "),
        "{body}"
    );
    assert!(
        body.contains("xff=127.0.0.1 proto=http host=WEB.test:80"),
        "{body}"
    );
    let (_, body) = get(proxy.addr, "web.test", "/apix").await;
    assert!(body.contains("path=/apix"), "{body}");
    let (_, body) = get(proxy.addr, "x.web.test", "/").await;
    assert!(body.starts_with("replica=a"), "{body}");
    let (status, body) = get(proxy.addr, "nothing.test", "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("No site is served"), "{body}");
    let (status, _) = get(proxy.addr, "empty.test", "/").await;
    assert_eq!(status, 503);
    let metrics = proxy.proxy.render_metrics();
    assert!(
        metrics.contains("warren_proxy_requests_total{service=\"web\",status=\"200\"} 21"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warren_proxy_requests_total{service=\"\",status=\"404\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_replica_that_refuses_or_hangs_up_is_invisible_to_gets_but_a_sent_post_is_not_resent() {
    let good = echo_replica("good").await;
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let (hangup, hangups) = hangup_replica().await;
    let proxy = start(
        vec![route(
            "web",
            "web.test",
            "/",
            vec![
                upstream("web.1", good),
                upstream("web.2", refused),
                upstream("web.3", hangup),
            ],
        )],
        ProxyLimits::default(),
    )
    .await;
    for _ in 0..30 {
        let (status, body) = get(proxy.addr, "web.test", "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("replica=good"), "{body}");
    }
    let metrics = proxy.proxy.render_metrics();
    assert!(metrics.contains("kind=\"connect\""), "{metrics}");
    assert!(
        metrics.contains("warren_proxy_retries_total{service=\"web\"}"),
        "{metrics}"
    );

    // A POST whose body reached the replica that hung up is not sent again.
    let only_hangup = vec![route(
        "web",
        "web.test",
        "/",
        vec![upstream("web.3", hangup), upstream("web.1", good)],
    )];
    proxy
        .routes
        .send_replace(Arc::new(RouteTable::new(only_hangup)));
    let before = hangups.load(std::sync::atomic::Ordering::SeqCst);
    let mut bad_gateways = 0;
    for _ in 0..20 {
        let (status, body) = send(
            proxy.addr,
            "POST /orders HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        match status {
            200 => assert!(body.starts_with("replica=good"), "{body}"),
            502 => bad_gateways += 1,
            other => panic!("status {other}: {body}"),
        }
    }
    let reached_hangup = hangups.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(
        bad_gateways, reached_hangup,
        "each POST the hangup replica saw failed, and only once"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_bodies_over_the_limit_refused() {
    let replica = echo_replica("a").await;
    let proxy = start(
        one_route(replica),
        ProxyLimits {
            max_body: 1000,
            ..ProxyLimits::default()
        },
    )
    .await;
    let (status, body) = send(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close, x-hop\r\nx-hop: 1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("xff=127.0.0.1 "), "{body}");
    assert!(
        body.contains("connection=-"),
        "x-hop was named by Connection: {body}"
    );
    let (status, _) = send(
        proxy.addr,
        "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);
    let chunk = "x".repeat(600);
    let (status, body) = send(
        proxy.addr,
        &format!("POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = send(
        proxy.addr,
        &format!("POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n0\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("body=600"), "{body}");
}

#[tokio::test]
async fn malformed_requests_huge_heads_and_slow_clients_do_not_stop_others() {
    let replica = echo_replica("a").await;
    let proxy = start(
        one_route(replica),
        ProxyLimits {
            header_timeout: Duration::from_millis(500),
            max_head: 8192,
            ..ProxyLimits::default()
        },
    )
    .await;
    // A slowloris client: half a head, then nothing.
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: ")
        .await
        .unwrap();
    let (status, _) = get(proxy.addr, "web.test", "/").await;
    assert_eq!(status, 200, "others are served meanwhile");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the slow client is cut off");

    let (status, _) = send(proxy.addr, "NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(status, 400);
    let big = "a".repeat(20_000);
    let (status, _) = send(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431);
    let (status, _) = send(proxy.addr, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "no Host");
    let (status, _) = get(proxy.addr, "web.test", "/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_upgraded_connection_outlives_a_route_change() {
    let replica = upgrade_replica().await;
    let proxy = start(
        vec![route("ws", "ws.test", "/", vec![upstream("ws.1", replica)])],
        ProxyLimits::default(),
    )
    .await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echo(&mut client, b"before").await;
    // The replica leaves the route (it turned unhealthy, say): the open
    // connection keeps going.
    proxy
        .routes
        .send_replace(Arc::new(RouteTable::new(Vec::new())));
    tokio::time::sleep(Duration::from_millis(100)).await;
    echo(&mut client, b"after the change").await;
    let (status, _) = get(proxy.addr, "ws.test", "/").await;
    assert_eq!(status, 404, "new requests follow the new table");
}

#[tokio::test]
async fn a_sticky_cookie_keeps_a_client_on_its_replica() {
    let (a, b) = (echo_replica("a").await, echo_replica("b").await);
    let proxy = start(
        vec![Route {
            sticky: true,
            ..route(
                "web",
                "web.test",
                "/",
                vec![upstream("web.1", a), upstream("web.2", b)],
            )
        }],
        ProxyLimits::default(),
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie in {answer}"))
        .to_owned();
    assert!(cookie.starts_with("warren_web="), "{cookie}");
    assert!(
        !cookie.contains("web.1") && !cookie.contains("web.2"),
        "names nothing internal"
    );
    let first = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    for _ in 0..10 {
        let (_, body) = send(
            proxy.addr,
            &format!("GET / HTTP/1.1\r\nHost: web.test\r\nCookie: theme=dark; {cookie}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(body.starts_with(&first), "{body} is not {first}");
    }
}

/// A replica that takes requests and never answers.
async fn silent_replica() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            held.push(stream);
        }
    });
    addr
}

#[tokio::test]
async fn a_get_waiting_on_a_replica_whose_node_goes_offline_goes_to_another_but_a_post_does_not() {
    let silent = silent_replica().await;
    let good = echo_replica("good").await;
    let proxy = start(
        vec![route(
            "web",
            "web.test",
            "/",
            vec![upstream("web.1", silent)],
        )],
        ProxyLimits::default(),
    )
    .await;
    let addr = proxy.addr;
    let get = tokio::spawn(async move { super::tests::get(addr, "web.test", "/").await });
    let post = tokio::spawn(async move {
        send(
            addr,
            "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The silent replica's node goes offline; another replica is healthy.
    proxy.routes.send_replace(Arc::new(
        RouteTable::new(vec![route(
            "web",
            "web.test",
            "/",
            vec![upstream("web.2", good)],
        )])
        .with_unreachable(vec![silent]),
    ));
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("replica=good"), "{body}");
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), post)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 502, "a sent POST is not sent again");
    let metrics = proxy.proxy.render_metrics();
    assert!(metrics.contains("kind=\"offline\"} 2"), "{metrics}");
}

#[tokio::test]
async fn a_port_that_is_taken_is_one_line_naming_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let error = bind(&[addr], true, "--https-listen", 2)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("cannot listen on {addr} (--https-listen): ")),
        "{error}"
    );
    assert!(!error.contains('\n'));
}

#[tokio::test]
async fn a_replica_connection_is_kept_and_reused_after_a_whole_response() {
    let replica = echo_replica("a").await;
    // One worker, so every request reaches the same pool.
    let one_worker = ProxyLimits {
        workers: 1,
        ..ProxyLimits::default()
    };
    let proxy = start(one_route(replica), one_worker).await;
    for _ in 0..10 {
        let (status, _) = get(proxy.addr, "web.test", "/").await;
        assert_eq!(status, 200);
    }
    // One kept connection: it carried all ten, one after the other.
    let metrics = proxy.proxy.render_metrics();
    let prefix = format!("warren_proxy_pool_idle_connections{{upstream=\"{replica}\"}} ");
    let idle: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(idle, 1, "{idle} idle:\n{metrics}");
}
