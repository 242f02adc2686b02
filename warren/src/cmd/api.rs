//! The admin API client shared by the client commands (`warren token`, and
//! later `nodes`, `mesh`, `deploy`): where the API is, the credential, and
//! one request with its error turned into one clear line.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;

/// Where the admin API is and how to authenticate to it.
#[derive(Args, Clone)]
pub struct ApiArgs {
    /// The control plane's admin API.
    #[arg(
        long,
        value_name = "URL",
        env = "WARREN_API",
        default_value = "http://127.0.0.1:7080",
        global = true
    )]
    api: String,
    /// The control plane's data directory, where its admin credential is.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = super::serve::DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
}

/// A connection's worth of what a request needs.
pub struct Client {
    base: String,
    credential: String,
    agent: ureq::Agent,
    /// For answers read as they come (`warren logs --follow`): no overall
    /// timeout, only one for connecting.
    streaming: ureq::Agent,
}

impl Client {
    /// Reads the credential; fails with a line saying where it looked.
    pub fn new(args: &ApiArgs) -> Result<Client> {
        let credential = warren_control::identity::read_admin_token(&args.data_dir)
            .context("reading the admin credential")?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        let streaming = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Ok(Client {
            base: args.api.trim_end_matches('/').to_owned(),
            credential,
            agent,
            streaming,
        })
    }

    /// Sends `method path` (with a JSON `body` if given) and decodes the
    /// answer; an error answer becomes the API's own message.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let mut response = self.send(&self.agent, method, path, body)?;
        let text = response
            .body_mut()
            .read_to_string()
            .context("reading the admin API's answer")?;
        serde_json::from_str(&text)
            .context("the admin API's answer is not what this warren expects")
    }

    /// Sends `method path` like [`Client::call`] and returns the answer's
    /// body to read as it arrives, however long that takes.
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<impl std::io::BufRead> {
        let response = self.send(&self.streaming, method, path, body)?;
        Ok(std::io::BufReader::new(response.into_body().into_reader()))
    }

    /// Sends a request with `agent`; an error answer becomes the API's own
    /// message ([`ApiRefused`]).
    fn send(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.credential);
        let unreachable = |error: ureq::Error| {
            anyhow!("cannot reach the admin API at {} ({error}); is `warren serve` running? (--api or WARREN_API)", self.base)
        };
        let mut response = match (method, body) {
            ("POST", Some(body)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            ("PUT", Some(body)) => agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(body),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        }
        .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let text = response
                .body_mut()
                .read_to_string()
                .context("reading the admin API's answer")?;
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            return Err(ApiRefused {
                status: status.as_u16(),
                message,
            }
            .into());
        }
        Ok(response)
    }
}

/// The admin API answered with an error: its status and its one line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiRefused {
    /// The HTTP status.
    pub status: u16,
    /// The API's message.
    pub message: String,
}
