//! One certificate from the ACME directory by HTTP-01: the account (made
//! once and kept in the store), an order for the host, the challenge
//! answered by the proxy's HTTP listener, a fresh key and its CSR, and the
//! chain.

use super::http::AcmeHttp;
use super::Challenges;
use crate::cluster::Cluster;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The directory refused or failed.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// An authorization ended in a state other than valid.
    #[error("ACME: the authorization for {host} is {status:?}")]
    Authorization {
        /// The host.
        host: String,
        /// Its state.
        status: AuthorizationStatus,
    },
    /// The directory offered no HTTP-01 challenge.
    #[error("ACME: the directory offers no HTTP-01 challenge for {0}")]
    NoHttpChallenge(String),
    /// The order did not become ready (a challenge failed).
    #[error("ACME: the order for {host} is {status:?} (did the HTTP-01 challenge reach this proxy on port 80?)")]
    NotReady {
        /// The host.
        host: String,
        /// Its state.
        status: OrderStatus,
    },
    /// The key or CSR could not be made.
    #[error("making the key and CSR: {0}")]
    Csr(#[from] rcgen::Error),
    /// The account could not be stored or read.
    #[error("the ACME account in the store: {0}")]
    Store(String),
}

/// How long polling an order may go on.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The ACME directory and the account on it.
pub struct Issuer {
    http: AcmeHttp,
    directory: String,
    email: Option<String>,
    account: Option<Account>,
}

impl Issuer {
    /// An issuer for `directory`, its account made (with `email` as the
    /// contact) or restored when first needed.
    pub fn new(http: AcmeHttp, directory: String, email: Option<String>) -> Issuer {
        Issuer {
            http,
            directory,
            email,
            account: None,
        }
    }

    /// A certificate chain and its key (both PEM) for `host`.
    pub async fn issue(
        &mut self,
        cluster: &Cluster,
        challenges: &Challenges,
        host: &str,
    ) -> Result<(String, String), IssueError> {
        let account = self.account(cluster).await?;
        let mut order = account
            .new_order(&NewOrder::new(&[Identifier::Dns(host.to_owned())]))
            .await?;
        let mut tokens = Vec::new();
        let answered = answer_challenges(&mut order, challenges, &mut tokens, host).await;
        let result = match answered {
            Ok(()) => finish(&mut order, host).await,
            Err(error) => Err(error),
        };
        for token in tokens {
            challenges.remove(&token);
        }
        result
    }

    async fn account(&mut self, cluster: &Cluster) -> Result<&Account, IssueError> {
        if self.account.is_none() {
            let directory = self.directory.clone();
            let stored = cluster
                .with(move |state| state.store().acme_account(&directory))
                .await
                .map_err(|e| IssueError::Store(e.to_string()))?
                .map_err(|e| IssueError::Store(e.to_string()))?;
            let builder = Account::builder_with_http(Box::new(self.http.clone()));
            let account = match stored {
                Some(json) => {
                    let credentials: AccountCredentials = serde_json::from_str(&json)
                        .map_err(|e| IssueError::Store(e.to_string()))?;
                    builder.from_credentials(credentials).await?
                }
                None => {
                    let contact = self.email.as_ref().map(|e| format!("mailto:{e}"));
                    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                    let (account, credentials) = builder
                        .create(
                            &NewAccount {
                                contact: &contacts,
                                terms_of_service_agreed: true,
                                only_return_existing: false,
                            },
                            self.directory.clone(),
                            None,
                        )
                        .await?;
                    let json = serde_json::to_string(&credentials)
                        .map_err(|e| IssueError::Store(e.to_string()))?;
                    let directory = self.directory.clone();
                    cluster
                        .with(move |state| state.store().put_acme_account(&directory, &json))
                        .await
                        .map_err(|e| IssueError::Store(e.to_string()))?
                        .map_err(|e| IssueError::Store(e.to_string()))?;
                    tracing::info!(directory = %self.directory, "ACME account created");
                    account
                }
            };
            self.account = Some(account);
        }
        self.account
            .as_ref()
            .ok_or_else(|| IssueError::Store("no account".to_owned()))
    }
}

/// Puts each pending authorization's HTTP-01 answer where the proxy serves
/// it and tells the directory it is ready; `tokens` collects what to take
/// down afterwards.
async fn answer_challenges(
    order: &mut instant_acme::Order,
    challenges: &Challenges,
    tokens: &mut Vec<String>,
    host: &str,
) -> Result<(), IssueError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(IssueError::Authorization {
                    host: host.to_owned(),
                    status,
                })
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| IssueError::NoHttpChallenge(host.to_owned()))?;
        let token = challenge.token.clone();
        challenges.insert(&token, challenge.key_authorization().as_str());
        tokens.push(token);
        challenge.set_ready().await?;
    }
    Ok(())
}

/// Waits for the order, sends the CSR of a fresh key and fetches the chain.
async fn finish(
    order: &mut instant_acme::Order,
    host: &str,
) -> Result<(String, String), IssueError> {
    let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(IssueError::NotReady {
            host: host.to_owned(),
            status,
        });
    }
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(vec![host.to_owned()])?.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&retries).await?;
    Ok((
        chain,
        crate::proxy::certs::to_pem("PRIVATE KEY", &key.serialize_der()),
    ))
}
