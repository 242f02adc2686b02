//! The proxy's certificates in the store: each host's PEM chain and key,
//! where it came from and when it expires; and the ACME account of each
//! directory.

use super::{to_sql_int, Store, StoreError};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// `warren cert set`: wins over ACME for its host.
    Manual,
    /// Issued by the ACME directory.
    Acme,
}

impl CertSource {
    /// `manual` or `acme`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Manual => "manual",
            CertSource::Acme => "acme",
        }
    }
}

/// A stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// The host it is served for (`example.com`, `*.example.com`).
    pub host: String,
    /// The chain, leaf first, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// Where it came from.
    pub source: CertSource,
    /// When the leaf expires, unix seconds.
    pub not_after: u64,
    /// When it was stored, unix seconds.
    pub updated: u64,
}

impl Store {
    /// Every stored certificate, by host.
    pub fn certificates(&self) -> Result<Vec<CertRecord>, StoreError> {
        let mut query = self.conn.prepare(
            "SELECT host, cert_pem, key_pem, source, not_after, updated FROM certificates ORDER BY host",
        )?;
        let rows = query.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        let mut certs = Vec::new();
        for row in rows {
            let (host, cert_pem, key_pem, source, not_after, updated) = row?;
            let source = match source.as_str() {
                "manual" => CertSource::Manual,
                "acme" => CertSource::Acme,
                _ => return Err(StoreError::Corrupt("certificate")),
            };
            certs.push(CertRecord {
                host,
                cert_pem,
                key_pem,
                source,
                not_after: u64::try_from(not_after)
                    .map_err(|_| StoreError::Corrupt("certificate"))?,
                updated: u64::try_from(updated).map_err(|_| StoreError::Corrupt("certificate"))?,
            });
        }
        Ok(certs)
    }

    /// Stores `cert`, replacing the host's previous one.
    pub fn put_certificate(&self, cert: &CertRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO certificates (host, cert_pem, key_pem, source, not_after, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (host) DO UPDATE SET cert_pem = excluded.cert_pem,
                 key_pem = excluded.key_pem, source = excluded.source,
                 not_after = excluded.not_after, updated = excluded.updated",
            params![
                cert.host,
                cert.cert_pem,
                cert.key_pem,
                cert.source.as_str(),
                to_sql_int(cert.not_after),
                to_sql_int(cert.updated),
            ],
        )?;
        Ok(())
    }
}

impl Store {
    /// The stored ACME account credentials (JSON) for `directory`.
    pub fn acme_account(&self, directory: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT credentials FROM acme_accounts WHERE directory = ?1",
                params![directory],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Stores the ACME account credentials (JSON) for `directory`.
    pub fn put_acme_account(&self, directory: &str, credentials: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO acme_accounts (directory, credentials) VALUES (?1, ?2)
             ON CONFLICT (directory) DO UPDATE SET credentials = excluded.credentials",
            params![directory, credentials],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_stored_replaced_and_read_back() {
        let path = super::super::temp_db("certs");
        let store = Store::open(&path).unwrap();
        let mut cert = CertRecord {
            host: "example.com".to_owned(),
            cert_pem: "CERT".to_owned(),
            key_pem: "KEY".to_owned(),
            source: CertSource::Acme,
            not_after: 2_000_000_000,
            updated: 1_800_000_000,
        };
        store.put_certificate(&cert).unwrap();
        cert.source = CertSource::Manual;
        cert.cert_pem = "CERT2".to_owned();
        store.put_certificate(&cert).unwrap();
        store
            .put_acme_account("https://acme.test/dir", "{}")
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.certificates().unwrap(), vec![cert]);
        assert_eq!(
            store
                .acme_account("https://acme.test/dir")
                .unwrap()
                .as_deref(),
            Some("{}")
        );
        assert_eq!(store.acme_account("https://other.test/dir").unwrap(), None);
    }
}
