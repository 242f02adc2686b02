//! The proxy's certificates in the cluster's state: set by `warren cert
//! set` (or ACME), stored, then published to the TLS listener's SNI
//! resolver. A certificate set by hand wins over ACME for its host.

use super::ClusterState;
use crate::acme::plan::{Held, Wanted};
use crate::proxy::certs::{self, CertError, CertTable, LoadedCert};
use crate::store::{CertRecord, CertSource, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use warren_proto::TlsMode;

/// A certificate as `warren cert ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    /// The host it is served for.
    pub host: String,
    /// The DNS names it covers.
    pub names: Vec<String>,
    /// When it expires, unix seconds.
    pub not_after: u64,
    /// `manual` or `acme`.
    pub source: CertSource,
    /// When it was stored, unix seconds.
    pub updated: u64,
}

/// Why a certificate was not set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertCommandError {
    /// Not a host name.
    #[error("invalid host name {0:?}: labels of letters, digits and '-', the first may be '*'")]
    Host(String),
    /// The certificate or key was refused.
    #[error(transparent)]
    Refused(#[from] CertError),
    /// ACME does not replace a certificate set by hand.
    #[error("{0} has a certificate set by hand, which ACME does not replace")]
    ManualWins(String),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The certificates being served, by host.
#[derive(Debug, Default)]
pub(super) struct Certs {
    served: BTreeMap<String, (CertRecord, LoadedCert)>,
}

impl Certs {
    /// The stored certificates; one that no longer loads is logged and
    /// left out (an expired one is still served, until it is replaced).
    pub(super) fn load(store: &Store) -> Result<Certs, StoreError> {
        let mut served = BTreeMap::new();
        for record in store.certificates()? {
            match certs::load(&record.host, &record.cert_pem, &record.key_pem, 0) {
                Ok(loaded) => {
                    served.insert(record.host.clone(), (record, loaded));
                }
                Err(error) => {
                    tracing::warn!(host = %record.host, %error, "stored certificate not served")
                }
            }
        }
        Ok(Certs { served })
    }

    pub(super) fn table(&self) -> CertTable {
        CertTable::new(
            self.served
                .iter()
                .map(|(host, (_, loaded))| (host.clone(), Arc::clone(&loaded.key))),
        )
    }
}

impl ClusterState {
    /// Checks and stores `cert_pem`/`key_pem` for `host` at `now`, then
    /// serves it.
    pub fn set_certificate(
        &mut self,
        host: &str,
        cert_pem: &str,
        key_pem: &str,
        source: CertSource,
        now: u64,
    ) -> Result<CertView, CertCommandError> {
        let host = host.to_ascii_lowercase();
        if !warren_proto::service::is_host_pattern(&host) {
            return Err(CertCommandError::Host(host));
        }
        let loaded = certs::load(&host, cert_pem, key_pem, now)?;
        if source == CertSource::Acme
            && self
                .certs
                .served
                .get(&host)
                .is_some_and(|(record, _)| record.source == CertSource::Manual)
        {
            return Err(CertCommandError::ManualWins(host));
        }
        let record = CertRecord {
            host: host.clone(),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            source,
            not_after: loaded.not_after,
            updated: now,
        };
        self.config.store.put_certificate(&record)?;
        let view = view(&record, &loaded);
        self.certs.served.insert(host, (record, loaded));
        self.cert_table.send_replace(Arc::new(self.certs.table()));
        tracing::info!(host = %view.host, source = ?view.source, not_after = view.not_after, "certificate set");
        Ok(view)
    }

    /// Every certificate served, by host.
    pub fn certificates(&self) -> Vec<CertView> {
        self.certs
            .served
            .values()
            .map(|(record, loaded)| view(record, loaded))
            .collect()
    }

    /// The hosts that want an ACME certificate (those of services with
    /// `--tls auto`, but wildcards), with the certificate each has.
    pub fn acme_wanted(&self) -> Vec<Wanted> {
        let hosts: std::collections::BTreeSet<String> = self
            .workloads
            .services()
            .iter()
            .filter(|service| service.spec.tls == TlsMode::Auto)
            .flat_map(|service| service.spec.hosts.iter())
            .filter(|host| !host.starts_with("*."))
            .map(|host| host.to_ascii_lowercase())
            .collect();
        hosts
            .into_iter()
            .map(|host| Wanted {
                current: self.certs.served.get(&host).map(|(record, _)| Held {
                    source: record.source,
                    issued: record.updated,
                    not_after: record.not_after,
                }),
                host,
            })
            .collect()
    }

    /// The latest certificate table, and every new one from now on.
    pub fn subscribe_certs(&self) -> watch::Receiver<Arc<CertTable>> {
        self.cert_table.subscribe()
    }
}

fn view(record: &CertRecord, loaded: &LoadedCert) -> CertView {
    CertView {
        host: record.host.clone(),
        names: loaded.names.clone(),
        not_after: loaded.not_after,
        source: record.source,
        updated: record.updated,
    }
}
