//! The proxy's certificates: checked when they are set, held by host, and
//! chosen by the name a TLS client asks for (SNI).
//!
//! A certificate is stored under a host as the operator (or ACME) set it:
//! `example.com`, or a wildcard `*.example.com`. A client asking for
//! `shop.example.com` gets the exact host's certificate if there is one,
//! else the wildcard's. A client that names no host, or one with no
//! certificate, is refused in the handshake.

use super::x509;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Why a certificate and key were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// No `CERTIFICATE` block in the PEM.
    #[error("no PEM certificate in the --cert file")]
    NoCertificate,
    /// A block that does not parse.
    #[error("the --cert file is not PEM certificates: {0}")]
    BadCertificate(String),
    /// No usable key in the PEM.
    #[error("the --key file has no PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    BadKey(String),
    /// A key type rustls cannot sign with.
    #[error("the key's type is not supported (use ECDSA P-256/P-384, Ed25519 or RSA)")]
    UnsupportedKey,
    /// The key is not the certificate's.
    #[error("the key does not belong to the certificate")]
    KeyMismatch,
    /// The leaf is not an X.509 certificate this reader understands.
    #[error("the certificate could not be read")]
    Unreadable,
    /// The leaf does not name the host.
    #[error("the certificate does not cover {host} (it names {names})")]
    WrongHost {
        /// The host it was set for.
        host: String,
        /// What it covers.
        names: String,
    },
    /// The leaf has expired.
    #[error("the certificate expired")]
    Expired,
}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The DNS names it covers.
    pub names: Vec<String>,
    /// When it expires, unix seconds.
    pub not_after: u64,
    /// The chain and signing key rustls serves.
    pub key: Arc<CertifiedKey>,
}

/// Checks `cert_pem` (the leaf first, then its chain) and `key_pem` for
/// `host` at `now` (unix seconds): parsable, the key the leaf's, the leaf
/// covering the host and not expired.
pub fn load(host: &str, cert_pem: &str, key_pem: &str, now: u64) -> Result<LoadedCert, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let leaf = chain.first().ok_or(CertError::NoCertificate)?;
    let facts = x509::facts(leaf).ok_or(CertError::Unreadable)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| CertError::BadKey(e.to_string()))?;
    let signer = any_supported_type(&key).map_err(|_| CertError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| CertError::KeyMismatch)?;
    if !facts.dns_names.iter().any(|name| name_covers(name, host)) {
        return Err(CertError::WrongHost {
            host: host.to_owned(),
            names: if facts.dns_names.is_empty() {
                "no DNS name".to_owned()
            } else {
                facts.dns_names.join(", ")
            },
        });
    }
    if facts.not_after <= now {
        return Err(CertError::Expired);
    }
    Ok(LoadedCert {
        names: facts.dns_names,
        not_after: facts.not_after,
        key: Arc::new(certified),
    })
}

/// Whether a certificate's DNS name covers `host` (itself a name or a
/// wildcard): equal, or a wildcard for `host`'s parent.
fn name_covers(name: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if name == host {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, parent))) => label != "*" && parent == suffix,
        _ => false,
    }
}

/// `der` as a PEM block labelled `label` (`CERTIFICATE`, `PRIVATE KEY`).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The certificates by host, as set.
#[derive(Debug, Clone, Default)]
pub struct CertTable {
    by_host: HashMap<String, Arc<CertifiedKey>>,
}

impl CertTable {
    /// The table over `(host, key)` pairs.
    pub fn new(certs: impl IntoIterator<Item = (String, Arc<CertifiedKey>)>) -> CertTable {
        CertTable {
            by_host: certs
                .into_iter()
                .map(|(host, key)| (host.to_ascii_lowercase(), key))
                .collect(),
        }
    }

    /// The certificate for a client asking for `name`: its own, else its
    /// parent's wildcard.
    pub fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = super::routes::normalize_host(name)?;
        self.by_host.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.by_host.get(&format!("*.{parent}"))
        })
    }

    /// Whether a certificate serves `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// rustls' view of the table: follows it as certificates are set.
#[derive(Debug)]
pub struct SniResolver {
    table: watch::Receiver<Arc<CertTable>>,
}

impl SniResolver {
    /// A resolver over the latest `table`.
    pub fn new(table: watch::Receiver<Arc<CertTable>>) -> SniResolver {
        SniResolver { table }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name()?;
        self.table.borrow().find(name).cloned()
    }
}

#[cfg(test)]
#[path = "certs_tests.rs"]
pub(crate) mod tests;
