//! The ACME task: follows the services and their certificates, orders a
//! certificate when [`Planner`] says one is due, stores it (the TLS
//! listener serves it at once) and renews it later; `warren cert renew`
//! asks it for one now.

use super::issue::Issuer;
use super::plan::Planner;
use super::{AcmeHttp, AcmeOptions, Challenges};
use crate::cluster::{CertView, Cluster};
use crate::proxy::RouteTable;
use crate::store::CertSource;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// The longest the task sleeps before it looks again.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Why `warren cert renew` got no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenewError {
    /// No ACME directory is configured.
    #[error("the control plane has no ACME directory (warren serve --acme-directory URL)")]
    NoAcme,
    /// No service with `--tls auto` has the host (or it is a wildcard).
    #[error(
        "no service deployed with --tls auto routes {0} (wildcards need a certificate set by hand)"
    )]
    NotWanted(String),
    /// The host's certificate was set by hand.
    #[error("{0} has a certificate set by hand: set a new one with `warren cert set`")]
    Manual(String),
    /// The directory did not give one.
    #[error("{0}")]
    Failed(String),
    /// The control plane is stopping.
    #[error("the control plane is stopping")]
    Stopped,
}

struct Renew {
    host: String,
    reply: oneshot::Sender<Result<CertView, RenewError>>,
}

/// The running ACME task.
#[derive(Debug, Clone)]
pub struct AcmeHandle {
    renew: mpsc::Sender<Renew>,
    task: AbortHandle,
}

impl AcmeHandle {
    /// Starts the task for `options` over `cluster`, answering challenges
    /// through `challenges` and looking again whenever `routes` change.
    pub fn start(
        options: &AcmeOptions,
        http: AcmeHttp,
        cluster: Cluster,
        challenges: Challenges,
        routes: watch::Receiver<Arc<RouteTable>>,
    ) -> AcmeHandle {
        let (renew, requests) = mpsc::channel(16);
        let issuer = Issuer::new(http, options.directory.clone(), options.email.clone());
        let task = tokio::spawn(run(issuer, cluster, challenges, routes, requests)).abort_handle();
        AcmeHandle { renew, task }
    }

    /// A new certificate for `host` now.
    pub async fn renew(&self, host: String) -> Result<CertView, RenewError> {
        let (reply, answer) = oneshot::channel();
        self.renew
            .send(Renew { host, reply })
            .await
            .map_err(|_| RenewError::Stopped)?;
        answer.await.map_err(|_| RenewError::Stopped)?
    }

    /// Stops the task (an order in progress is dropped).
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn run(
    mut issuer: Issuer,
    cluster: Cluster,
    challenges: Challenges,
    mut routes: watch::Receiver<Arc<RouteTable>>,
    mut requests: mpsc::Receiver<Renew>,
) {
    let mut planner = Planner::default();
    loop {
        let Ok(wanted) = cluster.with(|state| state.acme_wanted()).await else {
            return;
        };
        let now = warren_os::unix_now();
        let due = planner.due(&wanted, now);
        if !due.is_empty() {
            for host in due {
                let _ = obtain(&mut issuer, &mut planner, &cluster, &challenges, &host).await;
            }
            continue;
        }
        let sleep = planner
            .next_due(&wanted)
            .map_or(MAX_SLEEP, |at| Duration::from_secs(at.saturating_sub(now)))
            .clamp(Duration::from_secs(1), MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = routes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            request = requests.recv() => {
                let Some(Renew { host, reply }) = request else { return };
                let answer = match wanted.iter().find(|w| w.host == host) {
                    None => Err(RenewError::NotWanted(host)),
                    Some(w) if w.current.is_some_and(|c| c.source == CertSource::Manual) => {
                        Err(RenewError::Manual(host))
                    }
                    Some(_) => obtain(&mut issuer, &mut planner, &cluster, &challenges, &host).await,
                };
                let _ = reply.send(answer);
            }
        }
    }
}

/// Orders, stores and serves a certificate for `host`; a failure backs
/// the host off.
async fn obtain(
    issuer: &mut Issuer,
    planner: &mut Planner,
    cluster: &Cluster,
    challenges: &Challenges,
    host: &str,
) -> Result<CertView, RenewError> {
    tracing::info!(%host, "ordering a certificate by ACME");
    let result = match issuer.issue(cluster, challenges, host).await {
        Ok((chain, key)) => {
            let name = host.to_owned();
            let now = warren_os::unix_now();
            match cluster
                .with(move |state| {
                    state.set_certificate(&name, &chain, &key, CertSource::Acme, now)
                })
                .await
            {
                Ok(Ok(view)) => Ok(view),
                Ok(Err(error)) => Err(RenewError::Failed(error.to_string())),
                Err(_) => Err(RenewError::Stopped),
            }
        }
        Err(error) => Err(RenewError::Failed(error.to_string())),
    };
    match &result {
        Ok(view) => {
            planner.succeeded(host);
            tracing::info!(%host, not_after = view.not_after, "certificate issued by ACME");
        }
        Err(error) => {
            planner.failed(host, warren_os::unix_now());
            tracing::warn!(%host, %error, "ACME certificate not issued");
        }
    }
    result
}
