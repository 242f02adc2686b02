//! Network impairments on top of a topology: UDP blocked between two hosts,
//! random loss, and delay (NFQUEUE plus the `lab-nfq-delay` helper program,
//! since this kernel has no netem).
//!
//! Each rule is an [`IptRule`] that can be removed again, so a test can make
//! a path die and come back.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::{Proc, Spawn};
use crate::topology::Host;

/// One iptables rule in one namespace, removable with [`IptRule::remove`].
#[derive(Clone, Debug)]
pub struct IptRule {
    /// Where the rule lives.
    pub ns: Netns,
    /// Table (`filter`, `raw`, `nat`).
    pub table: String,
    /// Chain (`FORWARD`, `PREROUTING`, ...).
    pub chain: String,
    /// The rule's match and target, as given to `iptables -A CHAIN`.
    pub spec: Vec<String>,
}

impl IptRule {
    /// Appends the rule (`iptables -t TABLE -A CHAIN SPEC...`).
    pub fn add(ns: &Netns, table: &str, chain: &str, spec: &[&str]) -> Result<IptRule> {
        let rule = IptRule {
            ns: ns.clone(),
            table: table.to_owned(),
            chain: chain.to_owned(),
            spec: spec.iter().map(|s| (*s).to_owned()).collect(),
        };
        rule.apply("-A")?;
        Ok(rule)
    }

    fn apply(&self, op: &str) -> Result<()> {
        let mut args = vec!["-t", &self.table, op, &self.chain];
        args.extend(self.spec.iter().map(String::as_str));
        self.ns.iptables(&args).map(drop)
    }

    /// Deletes the rule again.
    pub fn remove(&self) -> Result<()> {
        self.apply("-D")
    }
}

/// Drops UDP between `a` and `b`, both ways, silently (as a broken path in
/// the middle would): on each side, packets from the other's reflexive
/// address are dropped on arrival, in the router's FORWARD chain (or in the
/// host's INPUT chain for a host without a router). Traffic to anyone else,
/// e.g. a relay, is untouched.
pub fn block_udp(a: &Host, b: &Host) -> Result<Vec<IptRule>> {
    let mut rules = Vec::new();
    for (me, other) in [(a, b), (b, a)] {
        let src = other.reflexive_ip().to_string();
        let rule = match &me.router {
            Some(r) => IptRule::add(
                &r.ns,
                "filter",
                "FORWARD",
                &["-i", &r.wan_if, "-p", "udp", "-s", &src, "-j", "DROP"],
            )?,
            None => IptRule::add(
                &me.ns,
                "filter",
                "INPUT",
                &["-i", &me.iface, "-p", "udp", "-s", &src, "-j", "DROP"],
            )?,
        };
        rules.push(rule);
    }
    Ok(rules)
}

/// Cuts `host` off the network: everything in or out of its interface is
/// dropped in its own namespace (as a pulled cable or a dead uplink
/// would), while its processes keep running. Removing the rules restores it.
pub fn cut_off(host: &Host) -> Result<Vec<IptRule>> {
    Ok(vec![
        IptRule::add(
            &host.ns,
            "filter",
            "INPUT",
            &["-i", &host.iface, "-j", "DROP"],
        )?,
        IptRule::add(
            &host.ns,
            "filter",
            "OUTPUT",
            &["-o", &host.iface, "-j", "DROP"],
        )?,
    ])
}

/// Drops each packet arriving on `iface` in `ns` with probability
/// `probability` (0..1), before conntrack (`raw` PREROUTING, `statistic`).
pub fn loss(ns: &Netns, iface: &str, probability: f64) -> Result<IptRule> {
    if !(0.0..=1.0).contains(&probability) {
        bail!("loss probability {probability} is not within 0..1");
    }
    let p = format!("{probability:.6}");
    IptRule::add(
        ns,
        "raw",
        "PREROUTING",
        &[
            "-i",
            iface,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ],
    )
}

/// Drops UDP packets from `src` arriving anywhere in `ns` (a narrower tool
/// than [`block_udp`], e.g. to cut one direction only).
pub fn drop_udp_from(ns: &Netns, chain: &str, src: Ipv4Addr) -> Result<IptRule> {
    IptRule::add(
        ns,
        "filter",
        chain,
        &["-p", "udp", "-s", &src.to_string(), "-j", "DROP"],
    )
}

/// Name of the helper binary that holds queued packets (see [`delay`]).
pub const DELAY_BIN: &str = "lab-nfq-delay";

static QUEUES: AtomicU16 = AtomicU16::new(1);

/// A delay on one interface: the NFQUEUE rule plus the helper process that
/// holds each packet. Dropping it stops the helper; the rule stays (with
/// `--queue-bypass`, packets then pass undelayed) until [`Delay::remove`] or
/// the lab goes.
#[derive(Debug)]
pub struct Delay {
    /// The NFQUEUE rule.
    pub rule: IptRule,
    /// The helper process.
    pub proc: Proc,
}

impl Delay {
    /// Removes the rule and stops the helper.
    pub fn remove(self) -> Result<()> {
        self.rule.remove()?;
        drop(self.proc);
        Ok(())
    }
}

/// Locates the `lab-nfq-delay` helper: `$LAB_NFQ_DELAY_BIN`, else next to
/// the running test binary's profile directory (`target/<profile>/`).
pub fn delay_bin() -> Result<PathBuf> {
    crate::cmd::locate_target_bin("LAB_NFQ_DELAY_BIN", DELAY_BIN)
        .context("build it with `cargo build -p warren-netns-tests --bins` (cargo test does this)")
}

/// Delays every packet arriving on `iface` in `ns` by `by`: a raw
/// PREROUTING NFQUEUE rule and the `lab-nfq-delay` helper bound to that
/// queue inside `ns`, which holds each packet and then accepts it. Waits
/// until the helper is bound before adding the rule.
pub fn delay(lab: &Lab, ns: &Netns, iface: &str, by: Duration) -> Result<Delay> {
    let bin = delay_bin()?;
    let queue = QUEUES.fetch_add(1, Ordering::Relaxed);
    let ms = by.as_millis().to_string();
    let proc = lab.spawn(
        ns,
        Spawn::new(bin)
            .args(["--queue", &queue.to_string(), "--delay-ms", &ms])
            .name(format!("delay-{}-{iface}", ns.name())),
    )?;
    proc.wait_for_log("bound", Duration::from_secs(5))?;
    let rule = IptRule::add(
        ns,
        "raw",
        "PREROUTING",
        &[
            "-i",
            iface,
            "-j",
            "NFQUEUE",
            "--queue-num",
            &queue.to_string(),
            "--queue-bypass",
        ],
    )?;
    Ok(Delay { rule, proc })
}
