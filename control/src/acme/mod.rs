//! Certificates by ACME (RFC 8555) with HTTP-01 challenges, for the hosts
//! of services deployed with `--tls auto` (the default) once `warren
//! serve` has an ACME directory (`--acme-directory`, `--acme-email`,
//! `--acme-ca-file`).
//!
//! - [`plan`]: when a host needs a certificate (first, renewal, retry),
//!   decided without I/O.
//! - `issue`: one certificate from the directory (instant-acme, on ring).
//! - `http`: the client's HTTP, the control plane's own
//!   [`crate::outbound`] requests.
//! - [`manager`]: the task that follows the services and renews.
//!
//! The proxy's HTTP listener answers the challenges from [`Challenges`].
//! Wildcard hosts cannot be proven by HTTP-01: set their certificates by
//! hand (`warren cert set`).

mod http;
mod issue;
pub mod manager;
pub mod plan;

pub use crate::outbound::RootsError;
pub use http::AcmeHttp;
pub use issue::IssueError;
pub use manager::{AcmeHandle, RenewError};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// How the control plane reaches its ACME directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeOptions {
    /// The directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// CA certificates (PEM) to trust for the directory's HTTPS instead of
    /// the system's.
    pub ca_file: Option<PathBuf>,
}

/// The HTTP-01 answers being asked for now: token → key authorization.
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    answers: Arc<Mutex<HashMap<String, String>>>,
}

impl Challenges {
    /// The answer for `token`, while its challenge is open.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    /// Opens the challenge `token`, answered with `key_authorization`.
    pub(crate) fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Closes the challenge `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
