//! The ACME client's HTTP: one HTTP/1.1 request per connection, over TLS
//! to the directory (trusting `--acme-ca-file`, or the system's roots),
//! on the same hyper and rustls (ring) as the rest of warren.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Uri};
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, Error as AcmeError, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Where Debian (and most distributions) keep the system's CA bundle.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long connecting and the TLS handshake may take, and then the answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why the CA roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the ACME CA file {path}: {reason}")]
pub struct RootsError {
    path: String,
    reason: String,
}

/// An HTTP client for the ACME directory.
#[derive(Clone)]
pub struct AcmeHttp {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for AcmeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcmeHttp")
    }
}

impl AcmeHttp {
    /// A client trusting the PEM certificates in `ca_file` (the system's
    /// bundle when `None`).
    pub fn new(ca_file: Option<&Path>) -> Result<AcmeHttp, RootsError> {
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
        Ok(AcmeHttp {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn send(
        &self,
        mut request: Request<BodyWrapper<Bytes>>,
    ) -> Result<BytesResponse, AcmeError> {
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| other("a URL without a host"))?
            .to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse::<Uri>().map_err(other)?;
        let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
        request.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(authority).map_err(other)?,
        );
        let tcp = TcpStream::connect((host.trim_matches(|c| c == '[' || c == ']'), port))
            .await
            .map_err(other)?;
        let response = if https {
            let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_owned())
                .map_err(other)?;
            let tls = self.tls.connect(name, tcp).await.map_err(other)?;
            exchange(TokioIo::new(tls), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        Ok(response)
    }
}

async fn exchange<T>(
    io: T,
    request: Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, AcmeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(other)?;
    Ok(BytesResponse::from(response))
}

fn other(error: impl std::fmt::Display) -> AcmeError {
    AcmeError::Other(error.to_string().into())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, AcmeError>> + Send>> {
        let client = self.clone();
        Box::pin(async move {
            tokio::time::timeout(TIMEOUT, client.send(request))
                .await
                .map_err(|_| other("the ACME directory did not answer in time"))?
        })
    }
}
