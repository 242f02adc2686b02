//! TLS to the control plane, trusting exactly one certificate: the one
//! whose SHA-256 the join token carries. No certificate authority, no
//! names: a self-hosted control plane on a bare IP is the normal case, and
//! the pin is stronger than either.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use std::sync::Arc;

/// Accepts the server certificate whose SHA-256 is the pin.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if digest.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(
                "the control plane's certificate is not the one the join token pins (another control plane, or an interception)".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How often an idle connection to the control plane is kept alive.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the connection may go unanswered before the agent reconnects,
/// at most: QUIC takes the shorter of this and the control plane's
/// (`warren serve --node-timeout`, 2 s by default), whose pings keep the
/// connection busy.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Replica streams (`warren logs`, `warren exec`) the control plane may
/// have open on the connection at once.
const REPLICA_STREAMS: u32 = 16;

/// A QUIC client configuration that trusts only the certificate pinned by
/// `sha256`, speaking warren's ALPN over TLS 1.3.
pub fn client_config(sha256: [u8; 32]) -> Result<quinn::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![warren_proto::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|error| error.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // A control plane that vanished silently (power, network) is noticed
    // within the idle timeout; the keepalive keeps a quiet link alive.
    transport
        .max_concurrent_bidi_streams(REPLICA_STREAMS.into())
        .keep_alive_interval(Some(KEEPALIVE))
        .max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}
