//! The ACME client's HTTP: the control plane's [`Outbound`] requests, to
//! the directory (trusting `--acme-ca-file`, or the system's roots).

use crate::outbound::{Outbound, RootsError};
use bytes::Bytes;
use http::Request;
use instant_acme::{BodyWrapper, BytesResponse, Error as AcmeError, HttpClient};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

/// How long connecting and the TLS handshake may take, and then the answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for the ACME directory.
#[derive(Clone, Debug)]
pub struct AcmeHttp {
    outbound: Outbound,
}

impl AcmeHttp {
    /// A client trusting the PEM certificates in `ca_file` (the system's
    /// bundle when `None`).
    pub fn new(ca_file: Option<&Path>) -> Result<AcmeHttp, RootsError> {
        Ok(AcmeHttp {
            outbound: Outbound::new(ca_file)?,
        })
    }

    async fn send(&self, request: Request<BodyWrapper<Bytes>>) -> Result<BytesResponse, AcmeError> {
        let response = self.outbound.send(request).await.map_err(other)?;
        Ok(BytesResponse::from(response))
    }
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
