//! `warren cert set|ls|renew`: the ingress proxy's TLS certificates,
//! through the admin API.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{Align::Left, Table};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use warren_control::api::certs::{CertList, SetCert};
use warren_control::cluster::CertView;

/// Arguments of `warren cert`.
#[derive(Args)]
#[command(
    about = "Set, renew and list the ingress proxy's TLS certificates",
    long_about = "Set and list the certificates the ingress proxy serves on its HTTPS listener \
        (`warren serve --https-listen`, port 443 by default), chosen by the host name a client \
        asks for (SNI): the host's own certificate, else its parent's wildcard (`*.example.com`). \
        Plain HTTP requests for a host with a certificate are redirected to HTTPS.\n\n\
        `warren cert set` checks the chain and key before anything changes: PEM, the key the \
        certificate's, the certificate covering the host, not expired. It is stored in the \
        control plane's state (so it survives restarts) and served at once. A certificate set \
        by hand wins over ACME for its host.\n\n\
        With `warren serve --acme-directory URL`, hosts of services deployed with `--tls auto` \
        (the default) get certificates by ACME (HTTP-01 on port 80), renewed when a third of \
        their lifetime is left; `warren cert renew HOST` gets a new one now.",
    after_help = "Examples:\n  \
        warren cert set example.com --cert fullchain.pem --key privkey.pem\n  \
        warren cert set '*.apps.example.com' --cert wildcard.pem --key wildcard.key\n  \
        warren cert ls --json | jq '.certs[] | select(.not_after < now + 86400 * 14)'\n  \
        warren cert renew example.com          # by ACME, now\n\n\
        TLS and certificates are described in docs/ingress.md."
)]
pub struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Serve a certificate and key (PEM files) for HOSTNAME.
    Set {
        /// The host (or `*.example.com`) to serve it for.
        hostname: String,
        /// The certificate chain, leaf first (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Get a new certificate for HOSTNAME by ACME now, and serve it.
    Renew {
        /// A host of a service deployed with --tls auto.
        hostname: String,
    },
    /// List the certificates served: host, names covered, expiry, source.
    Ls {
        /// Print JSON: {"certs":[{"host","names","not_after","source","updated"}]}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `warren cert`.
pub fn run(args: CertArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.command {
        CertCommand::Set {
            hostname,
            cert,
            key,
        } => {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the {what} {}", path.display()))
            };
            let body = SetCert {
                cert_pem: read(&cert, "certificate")?,
                key_pem: read(&key, "key")?,
            };
            let path = format!("/v1/certs/{}", hostname.to_ascii_lowercase());
            let view: CertView = client.call("PUT", &path, Some(serde_json::to_value(body)?))?;
            println!(
                "certificate set for {} (covers {}; expires {})",
                view.host,
                view.names.join(", "),
                fmt::relative(view.not_after, warren_os::unix_now())
            );
        }
        CertCommand::Renew { hostname } => {
            let path = format!("/v1/certs/{}/renew", hostname.to_ascii_lowercase());
            let view: CertView = client.call("POST", &path, None)?;
            println!(
                "certificate renewed for {} by ACME (expires {})",
                view.host,
                fmt::relative(view.not_after, warren_os::unix_now())
            );
        }
        CertCommand::Ls { json } => {
            let list: CertList = client.call("GET", "/v1/certs", None)?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.certs.is_empty() {
                println!(
                    "no certificates: set one with `warren cert set HOST --cert FILE --key FILE`"
                );
            } else {
                print!("{}", table(&list.certs));
            }
        }
    }
    Ok(())
}

fn table(certs: &[CertView]) -> String {
    let now = warren_os::unix_now();
    let mut table = Table::new([
        ("HOST", Left),
        ("NAMES", Left),
        ("EXPIRES", Left),
        ("SOURCE", Left),
        ("SET", Left),
    ]);
    for cert in certs {
        let source = cert.source.as_str();
        table.row([
            &cert.host,
            &cert.names.join(","),
            &fmt::relative(cert.not_after, now),
            &source,
            &fmt::relative(cert.updated, now),
        ]);
    }
    table.to_string()
}
