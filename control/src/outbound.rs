//! The HTTP requests the control plane makes itself (to an ACME directory,
//! to webhooks): one HTTP/1.1 request per connection, plain or over TLS
//! (trusting a given CA file, or the system's roots), on the same hyper and
//! rustls (ring) as the rest of warren.

use http::{header, HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Where Debian (and most distributions) keep the system's CA bundle.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the CA roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the CA file {path}: {reason}")]
pub struct RootsError {
    path: String,
    reason: String,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(String);

impl RequestError {
    fn of(error: impl std::fmt::Display) -> RequestError {
        RequestError(error.to_string())
    }
}

/// A client for the control plane's own requests.
#[derive(Clone)]
pub struct Outbound {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbound")
    }
}

impl Outbound {
    /// A client trusting the PEM certificates in `ca_file` (the system's
    /// bundle when `None`) for HTTPS.
    pub fn new(ca_file: Option<&Path>) -> Result<Outbound, RootsError> {
        let path = ca_file.unwrap_or(Path::new(SYSTEM_ROOTS));
        let error = |reason: String| RootsError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| error(e.to_string()))?;
            roots.add(cert).map_err(|e| error(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(error("no PEM certificates in it".to_owned()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Outbound {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `request`, whose URI is absolute (`http://` or `https://`),
    /// on a connection of its own, and returns the answer's head with its
    /// body to read. The caller bounds the time.
    pub async fn send<B>(&self, mut request: Request<B>) -> Result<Response<Incoming>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| RequestError::of("a URL without a host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(RequestError::of("a URL that is not http:// or https://")),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse::<Uri>().map_err(RequestError::of)?;
        let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
        request.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(authority).map_err(RequestError::of)?,
        );
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(RequestError::of)?;
        if https {
            let name = ServerName::try_from(host).map_err(RequestError::of)?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(RequestError::of)?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

async fn exchange<T, B>(io: T, request: Request<B>) -> Result<Response<Incoming>, RequestError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(RequestError::of)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await.map_err(RequestError::of)
}
