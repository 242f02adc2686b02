//! Topology builders: two hosts on one link ([`two_hosts`]), and a "public"
//! segment ([`Internet`], 203.0.113.0/24 on a bridge inside its own
//! namespace) with hosts attached directly or behind NAT routers.
//!
//! Address plan (all inside lab namespaces):
//! - public segment `203.0.113.0/24`: hosts, routers' and carriers' WAN
//!   sides from `.10` up;
//! - home LAN `k` (one per router): `192.168.k.0/24`, router `.1`, host `.10`;
//! - carrier `c`'s side: `100.64.c.0/24` (inside 100.64.0.0/10, clear of the
//!   mesh's 100.96.0.0/16), carrier `.1`, home routers from `.10`.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::Lab;
use crate::netns::Netns;

/// The public lab segment.
pub const PUBLIC_NET: &str = "203.0.113.0/24";
/// Prefix length of the public segment.
const PUBLIC_PREFIX: u8 = 24;

/// How long builders wait for new links to come up (see
/// [`Netns::wait_oper_up`]; normally at most a second).
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until the listed links are up, so a builder returns a topology
/// that carries its first packet.
fn wait_up(links: &[(&Netns, &[&str])]) -> Result<()> {
    for (ns, ifaces) in links {
        ns.wait_oper_up(ifaces, LINK_UP_TIMEOUT)?;
    }
    Ok(())
}

/// A host: a namespace with one interface and one address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The name given when building the topology.
    pub name: String,
    /// The host's namespace.
    pub ns: Netns,
    /// The host's interface (`eth0`).
    pub iface: String,
    /// The host's own address (private if behind NAT).
    pub ip: Ipv4Addr,
    /// The router in front of it, if any.
    pub router: Option<Router>,
    reflexive: Ipv4Addr,
}

impl Host {
    /// The address others on the public segment see this host's packets
    /// come from: its own for a public host, its router's public address
    /// behind cone or symmetric NAT, the carrier's behind carrier-grade NAT.
    pub fn reflexive_ip(&self) -> Ipv4Addr {
        self.reflexive
    }

    /// The namespace where filtering of packets *to* this host from the
    /// public side happens: its router's, or its own if it has none.
    pub fn edge_ns(&self) -> &Netns {
        self.router.as_ref().map(|r| &r.ns).unwrap_or(&self.ns)
    }
}

/// A home router: LAN towards its host, WAN towards the public segment (or a
/// carrier), with NAT.
#[derive(Clone, Debug)]
pub struct Router {
    /// The router's namespace.
    pub ns: Netns,
    /// The NAT behaviour it was built with.
    pub nat: Nat,
    /// WAN interface name (`wan`).
    pub wan_if: String,
    /// WAN address: public, or on the carrier's segment.
    pub wan_ip: Ipv4Addr,
    /// LAN interface name (`lan`).
    pub lan_if: String,
    /// LAN address (the host's gateway).
    pub lan_ip: Ipv4Addr,
}

/// How a host reaches the public segment.
#[derive(Clone, Debug)]
pub enum Nat {
    /// Directly attached, with a public address.
    None,
    /// `MASQUERADE`: port-preserving, one mapping for every destination,
    /// filtering by address and port ("cone").
    Cone,
    /// `MASQUERADE --random-fully`: a new port per destination.
    Symmetric,
    /// A cone home router behind the given carrier NAT (double NAT). Several
    /// homes may share one carrier (it does not hairpin).
    CarrierGrade(Carrier),
}

/// A carrier NAT: a namespace with a WAN on the public segment and a bridge
/// (`100.64.c.0/24`) for the home routers behind it.
#[derive(Clone, Debug)]
pub struct Carrier {
    /// The carrier's namespace.
    pub ns: Netns,
    /// Its public address: the reflexive address of every home behind it.
    pub wan_ip: Ipv4Addr,
    /// Its address on the carrier segment (the home routers' gateway).
    pub lan_ip: Ipv4Addr,
    index: u8,
    next_home: Arc<Mutex<u8>>,
}

/// A router being built, and what its hosts need from it.
struct Gateway {
    router: Router,
    reflexive: Ipv4Addr,
    /// The namespace of the bridge its WAN hangs off.
    upstream: Netns,
    /// The WAN's port on that bridge.
    port: String,
    /// `k` of its `192.168.k.0/24` LAN.
    lan: u8,
}

impl Gateway {
    /// A host at `ip` on this router's LAN (its `eth0` already linked to
    /// the router): address, up, default route through the router.
    fn host(&self, name: &str, ns: Netns, ip: Ipv4Addr) -> Result<Host> {
        ns.add_addr("eth0", &format!("{ip}/24"))?;
        ns.link_up("eth0")?;
        ns.default_route(self.router.lan_ip)?;
        Ok(Host {
            name: name.to_owned(),
            ns,
            iface: "eth0".to_owned(),
            ip,
            router: Some(self.router.clone()),
            reflexive: self.reflexive,
        })
    }
}

/// Per-host options for [`Internet::add_host_with`].
#[derive(Clone, Debug, Default)]
pub struct HostOpts {
    /// MTU of the host's own link to its router (both ends), e.g. 1280; the
    /// link is routed, so a larger DF packet from the public side is dropped
    /// with an ICMP "fragmentation needed". Needs a router (not `Nat::None`).
    pub mtu: Option<u32>,
}

/// Two hosts on one veth link.
#[derive(Clone, Debug)]
pub struct TwoHosts {
    /// `10.0.0.1/24`.
    pub a: Host,
    /// `10.0.0.2/24`.
    pub b: Host,
}

/// Builds two hosts, `a` (10.0.0.1/24) and `b` (10.0.0.2/24), joined by a
/// veth pair (`eth0` on both sides).
pub fn two_hosts(lab: &Lab) -> Result<TwoHosts> {
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    a.veth_to("eth0", &b, "eth0")?;
    let mk = |ns: Netns, name: &str, ip: Ipv4Addr| -> Result<Host> {
        ns.add_addr("eth0", &format!("{ip}/24"))?;
        ns.link_up("eth0")?;
        Ok(Host {
            name: name.to_owned(),
            ns,
            iface: "eth0".to_owned(),
            ip,
            router: None,
            reflexive: ip,
        })
    };
    let hosts = TwoHosts {
        a: mk(a, "a", Ipv4Addr::new(10, 0, 0, 1))?,
        b: mk(b, "b", Ipv4Addr::new(10, 0, 0, 2))?,
    };
    wait_up(&[(&hosts.a.ns, &["eth0"]), (&hosts.b.ns, &["eth0"])])?;
    Ok(hosts)
}

#[derive(Debug)]
struct Alloc {
    next_public: u8,
    next_port: u32,
    next_lan: u8,
    next_carrier: u8,
}

/// The public segment: a bridge (`br0`) inside its own namespace, with
/// hosts, routers and carriers attached by veth pairs.
#[derive(Debug)]
pub struct Internet {
    /// The namespace holding the bridge.
    pub ns: Netns,
    alloc: Mutex<Alloc>,
}

impl Internet {
    /// Creates the public segment's namespace and bridge.
    pub fn new(lab: &Lab) -> Result<Internet> {
        let ns = lab.netns("pub")?;
        ns.add_bridge("br0")?;
        Ok(Internet {
            ns,
            alloc: Mutex::new(Alloc {
                next_public: 10,
                next_port: 0,
                next_lan: 1,
                next_carrier: 0,
            }),
        })
    }

    fn alloc(&self) -> std::sync::MutexGuard<'_, Alloc> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out the next public address and bridge port name.
    fn next_public(&self) -> Result<(Ipv4Addr, String)> {
        let mut a = self.alloc();
        if a.next_public >= 250 {
            bail!("public segment is full");
        }
        let ip = Ipv4Addr::new(203, 0, 113, a.next_public);
        a.next_public += 1;
        let port = format!("p{}", a.next_port);
        a.next_port += 1;
        Ok((ip, port))
    }

    /// Connects `iface` of `ns` to the bridge and gives it a public
    /// address; returns it and the bridge port's name.
    fn attach(&self, ns: &Netns, iface: &str) -> Result<(Ipv4Addr, String)> {
        let (ip, port) = self.next_public()?;
        self.ns.veth_to(&port, ns, iface)?;
        self.ns.attach_to_bridge(&port, "br0")?;
        ns.add_addr(iface, &format!("{ip}/{PUBLIC_PREFIX}"))?;
        ns.link_up(iface)?;
        Ok((ip, port))
    }

    /// A host directly on the public segment (`eth0`, a 203.0.113.x address).
    pub fn add_public_host(&self, lab: &Lab, name: &str) -> Result<Host> {
        self.add_host(lab, name, Nat::None)
    }

    /// A host reaching the public segment as `nat` says.
    pub fn add_host(&self, lab: &Lab, name: &str, nat: Nat) -> Result<Host> {
        self.add_host_with(lab, name, nat, HostOpts::default())
    }

    /// A host reaching the public segment as `nat` says, with options.
    pub fn add_host_with(&self, lab: &Lab, name: &str, nat: Nat, opts: HostOpts) -> Result<Host> {
        let ns = lab.netns(name)?;
        if matches!(nat, Nat::None) {
            if opts.mtu.is_some() {
                bail!("host {name}: an MTU needs a routed link, i.e. a router (not Nat::None)");
            }
            let (ip, port) = self.attach(&ns, "eth0")?;
            wait_up(&[(&self.ns, &[&port]), (&ns, &["eth0"])])?;
            return Ok(Host {
                name: name.to_owned(),
                ns,
                iface: "eth0".to_owned(),
                ip,
                router: None,
                reflexive: ip,
            });
        }
        let gw = self.router(lab, name, nat)?;
        let ip = Ipv4Addr::new(192, 168, gw.lan, 10);
        gw.router.ns.veth_to("lan", &ns, "eth0")?;
        if let Some(mtu) = opts.mtu {
            gw.router.ns.set_mtu("lan", mtu)?;
            ns.set_mtu("eth0", mtu)?;
        }
        gw.router
            .ns
            .add_addr("lan", &format!("{}/24", gw.router.lan_ip))?;
        gw.router.ns.link_up("lan")?;
        let host = gw.host(name, ns, ip)?;
        wait_up(&[
            (&gw.upstream, &[&gw.port]),
            (&gw.router.ns, &["wan", "lan"]),
            (&host.ns, &["eth0"]),
        ])?;
        Ok(host)
    }

    /// `count` hosts on one LAN (a bridge `lan` in the router's namespace,
    /// `192.168.k.10`, `.11`, …) behind one router doing `nat`: a home
    /// with several machines, or a VPC behind a NAT gateway. The router
    /// does not hairpin: hosts reach each other only by their LAN addresses.
    pub fn add_lan(&self, lab: &Lab, name: &str, nat: Nat, count: u8) -> Result<Vec<Host>> {
        if matches!(nat, Nat::None) {
            bail!("LAN {name}: a LAN needs a router (not Nat::None)");
        }
        let gw = self.router(lab, name, nat)?;
        gw.router.ns.add_bridge("lan")?;
        gw.router
            .ns
            .add_addr("lan", &format!("{}/24", gw.router.lan_ip))?;
        let mut hosts = Vec::new();
        for i in 0..count {
            let host_name = format!("{name}{i}");
            let ns = lab.netns(&host_name)?;
            let port = format!("l{i}");
            gw.router.ns.veth_to(&port, &ns, "eth0")?;
            gw.router.ns.attach_to_bridge(&port, "lan")?;
            let ip = Ipv4Addr::new(192, 168, gw.lan, 10 + i);
            hosts.push(gw.host(&host_name, ns, ip)?);
        }
        wait_up(&[
            (&gw.upstream, &[&gw.port]),
            (&gw.router.ns, &["wan", "lan"]),
        ])?;
        for host in &hosts {
            wait_up(&[(&host.ns, &["eth0"])])?;
        }
        Ok(hosts)
    }

    /// Gives `host` a second interface `iface` on the LAN behind `router`
    /// (built by [`Internet::add_lan`]) at `192.168.k.last`: a public host
    /// with a private interface too, as a VPS in a VPC. Its default route
    /// stays where it was.
    pub fn join_lan(
        &self,
        host: &Host,
        router: &Router,
        iface: &str,
        last: u8,
    ) -> Result<Ipv4Addr> {
        let [a, b, c, _] = router.lan_ip.octets();
        let ip = Ipv4Addr::new(a, b, c, last);
        let port = format!("j{last}");
        router.ns.veth_to(&port, &host.ns, iface)?;
        router.ns.attach_to_bridge(&port, "lan")?;
        host.ns.add_addr(iface, &format!("{ip}/24"))?;
        host.ns.link_up(iface)?;
        wait_up(&[(&router.ns, &[&port]), (&host.ns, &[iface])])?;
        Ok(ip)
    }

    /// A NAT router `{name}gw` on the public segment (or behind a carrier)
    /// with a fresh LAN number; its LAN side is left to the caller.
    fn router(&self, lab: &Lab, name: &str, nat: Nat) -> Result<Gateway> {
        let rns = lab.netns(&format!("{name}gw"))?;
        let (wan_ip, reflexive, upstream, port) = match &nat {
            Nat::CarrierGrade(carrier) => {
                let (ip, port) = carrier.attach_home(&rns, "wan")?;
                rns.default_route(carrier.lan_ip)?;
                (ip, carrier.wan_ip, &carrier.ns, port)
            }
            _ => {
                let (ip, port) = self.attach(&rns, "wan")?;
                (ip, ip, &self.ns, port)
            }
        };
        let upstream = upstream.clone();
        let lan = {
            let mut a = self.alloc();
            let k = a.next_lan;
            a.next_lan = a.next_lan.checked_add(1).context("too many home LANs")?;
            k
        };
        nat_rules(&rns, "wan", matches!(nat, Nat::Symmetric))?;
        Ok(Gateway {
            router: Router {
                ns: rns,
                nat,
                wan_if: "wan".to_owned(),
                wan_ip,
                lan_if: "lan".to_owned(),
                lan_ip: Ipv4Addr::new(192, 168, lan, 1),
            },
            reflexive,
            upstream,
            port,
            lan,
        })
    }

    /// A carrier NAT on the public segment, for [`Nat::CarrierGrade`] homes.
    pub fn add_carrier(&self, lab: &Lab, name: &str) -> Result<Carrier> {
        let index = {
            let mut a = self.alloc();
            let c = a.next_carrier;
            a.next_carrier = a.next_carrier.checked_add(1).context("too many carriers")?;
            c
        };
        let ns = lab.netns(name)?;
        let (wan_ip, port) = self.attach(&ns, "wan")?;
        wait_up(&[(&self.ns, &[&port]), (&ns, &["wan"])])?;
        ns.add_bridge("br0")?;
        let lan_ip = Ipv4Addr::new(100, 64, index, 1);
        ns.add_addr("br0", &format!("{lan_ip}/24"))?;
        nat_rules(&ns, "wan", false)?;
        Ok(Carrier {
            ns,
            wan_ip,
            lan_ip,
            index,
            next_home: Arc::new(Mutex::new(10)),
        })
    }
}

impl Carrier {
    /// Connects a home router's `iface` to the carrier's bridge and gives it
    /// the next 100.64.c.x address; returns it and the bridge port's name.
    fn attach_home(&self, router: &Netns, iface: &str) -> Result<(Ipv4Addr, String)> {
        let host = {
            let mut n = self.next_home.lock().unwrap_or_else(|e| e.into_inner());
            let h = *n;
            *n = n.checked_add(1).context("carrier segment is full")?;
            h
        };
        let port = format!("h{host}");
        self.ns.veth_to(&port, router, iface)?;
        self.ns.attach_to_bridge(&port, "br0")?;
        let ip = Ipv4Addr::new(100, 64, self.index, host);
        router.add_addr(iface, &format!("{ip}/24"))?;
        router.link_up(iface)?;
        Ok((ip, port))
    }
}

/// Turns `ns` into a NAT router towards `wan` (docs/lab.md "A host behind NAT"):
/// forwarding on, MASQUERADE (`--random-fully` if `symmetric`), and nothing
/// unsolicited from the WAN accepted, neither forwarded nor for the router
/// itself (without the INPUT drop an early hole-punch packet creates a
/// conntrack entry on the router and the punch fails for good).
fn nat_rules(ns: &Netns, wan: &str, symmetric: bool) -> Result<()> {
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    let mut masq = vec![
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        wan,
        "-j",
        "MASQUERADE",
    ];
    if symmetric {
        masq.push("--random-fully");
    }
    ns.iptables(&masq)?;
    ns.iptables([
        "-A",
        "INPUT",
        "-i",
        wan,
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "DROP",
    ])?;
    ns.iptables([
        "-A",
        "FORWARD",
        "-i",
        wan,
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "ESTABLISHED,RELATED,DNAT",
        "-j",
        "DROP",
    ])?;
    Ok(())
}
