//! A real ACME server for the lab: Debian's `pebble` on a public lab host,
//! with a tiny DNS server beside it that resolves every name to one
//! address (pebble resolves the names it validates through `-dnsserver`;
//! `/etc/hosts` is shared by every namespace and stays untouched).
//!
//! Two CAs are involved: the self-signed certificate pebble's own HTTPS
//! directory presents (made here, [`Pebble::directory_ca`]), and the root
//! that issues the certificates it hands out (regenerated at each start,
//! fetched from its management port, [`Pebble::issuing_root`]).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::{Proc, Spawn};
use crate::topology::Host;

/// pebble's ACME directory port.
pub const DIRECTORY_PORT: u16 = 14000;

/// pebble's management port (the issuing root is there).
pub const MANAGEMENT_PORT: u16 = 15000;

/// A running pebble and its DNS server.
pub struct Pebble {
    /// The directory URL to give `warren serve --acme-directory`.
    pub directory: String,
    /// The CA file to give `--acme-ca-file` (pebble's HTTPS certificate).
    pub directory_ca: PathBuf,
    host_ip: Ipv4Addr,
    ns: Netns,
    _dns: DnsServer,
    _pebble: Proc,
}

impl Pebble {
    /// Starts pebble on `host`, validating HTTP-01 on port 80 of
    /// `answer` (every name resolves there), issuing certificates valid
    /// for `validity`.
    pub fn start(lab: &Lab, host: &Host, answer: Ipv4Addr, validity: Duration) -> Result<Pebble> {
        let dir = lab.subdir("pebble")?;
        let dns = DnsServer::start(&host.ns, SocketAddr::from((host.ip, 53)), answer)?;
        let (cert_pem, key_pem) = self_signed_for_ip(host.ip)?;
        let cert = dir.join("directory-cert.pem");
        let key = dir.join("directory-key.pem");
        std::fs::write(&cert, cert_pem)?;
        std::fs::write(&key, key_pem)?;
        let config = dir.join("pebble-config.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "pebble": {
                    "listenAddress": format!("{}:{DIRECTORY_PORT}", host.ip),
                    "managementListenAddress": format!("{}:{MANAGEMENT_PORT}", host.ip),
                    "certificate": cert,
                    "privateKey": key,
                    "httpPort": 80,
                    "tlsPort": 5001,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": false,
                    "certificateValidityPeriod": validity.as_secs(),
                }
            })
            .to_string(),
        )?;
        let pebble = lab.spawn(
            &host.ns,
            Spawn::new("pebble")
                .arg("-config")
                .arg(&config)
                .args(["-dnsserver", &format!("{}:53", host.ip)])
                // Without it each validation sleeps up to 15 s.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .name("pebble"),
        )?;
        pebble.wait_for_log("ACME directory available", Duration::from_secs(20))?;
        Ok(Pebble {
            directory: format!("https://{}:{DIRECTORY_PORT}/dir", host.ip),
            directory_ca: cert,
            host_ip: host.ip,
            ns: host.ns.clone(),
            _dns: dns,
            _pebble: pebble,
        })
    }

    /// The root of the certificates pebble issues (PEM), written to
    /// `path`, for clients that check what the proxy serves.
    pub fn issuing_root(&self, path: &Path) -> Result<()> {
        let url = format!("https://{}:{MANAGEMENT_PORT}/roots/0", self.host_ip);
        let out = self.ns.run_in(|| {
            Command::new("curl")
                .args(["-sSf", "--max-time", "10", "--cacert"])
                .arg(&self.directory_ca)
                .arg("-o")
                .arg(path)
                .arg(&url)
                .output()
        })??;
        if !out.status.success() {
            bail!(
                "fetching pebble's root from {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// A self-signed certificate (and key) for `ip`, PEM: pebble's HTTPS.
fn self_signed_for_ip(ip: Ipv4Addr) -> Result<(String, String)> {
    let params = rcgen::CertificateParams::new(vec![ip.to_string()])?;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((
        pem("CERTIFICATE", cert.der()),
        pem("PRIVATE KEY", &key.serialize_der()),
    ))
}

/// A self-signed certificate and its key, PEM (`CERTIFICATE`, `PRIVATE
/// KEY`), for the DNS `names`: for lab servers whose clients do not verify
/// (or trust this one certificate).
pub fn self_signed_pem(names: &[&str]) -> Result<(String, String)> {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((
        pem("CERTIFICATE", cert.der()),
        pem("PRIVATE KEY", &key.serialize_der()),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A DNS server that answers every A query with one address (and every
/// other query with no records), on a namespace's UDP port.
pub struct DnsServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Serves on `listen` inside `ns`, answering `answer`.
    pub fn start(ns: &Netns, listen: SocketAddr, answer: Ipv4Addr) -> Result<DnsServer> {
        let socket = ns
            .run_in(|| UdpSocket::bind(listen))?
            .with_context(|| format!("DNS on {listen} in {ns}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = dns_reply(&buf[..len], answer) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(DnsServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to one DNS query: `answer` for an A question, no records
/// for anything else; `None` for what is not a query.
fn dns_reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += len;
    }
    let question = query.get(12..at + 4)?;
    let is_a = query.get(at..at + 2)? == [0, 1];
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&query[..2]);
    reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if is_a {
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&answer.octets());
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_a_query_gets_the_address_and_others_no_records() {
        // id 0x1234, RD, one question: web.test A IN.
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x03web\x04test\x00\x00\x01\x00\x01");
        let reply = dns_reply(&query, Ipv4Addr::new(203, 0, 113, 10)).unwrap();
        assert_eq!(&reply[..2], &[0x12, 0x34]);
        assert_eq!(reply[7], 1, "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[203, 0, 113, 10]);
        let aaaa_at = query.len() - 3;
        query[aaaa_at] = 28;
        let reply = dns_reply(&query, Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(reply[7], 0, "no AAAA records");
        assert_eq!(dns_reply(&query[..10], Ipv4Addr::LOCALHOST), None);
    }
}
