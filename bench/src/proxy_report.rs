//! The proxy section's statistics and tables: medians over the rounds,
//! ratios against nginx, the latency each proxy adds over the direct runs,
//! and the target; per [`Driver`], so that a second driver's
//! samples get tables of their own.

use crate::about::About;
use crate::proxy::{
    Concurrency, Driver, ProxyKind, ProxyResults, Sample, Target, Topology, DEVICE_THREAD, IMAGE,
    PAGE_BYTES, WARM_UP, WARREN_LOG,
};
use crate::proxy_conf;
use crate::report::{num, ratio, Table};
use crate::stats::median;
use crate::workload::{provenance, verdict};
use crate::wrk::LoadRun;

/// The figures of one target over the rounds.
struct Figures<'a> {
    runs: Vec<&'a Sample>,
}

impl<'a> Figures<'a> {
    fn of(
        r: &'a ProxyResults,
        driver: Driver,
        concurrency: Concurrency,
        topology: Topology,
        target: Target,
    ) -> Figures<'a> {
        Figures {
            runs: r
                .samples
                .iter()
                .filter(|s| {
                    s.driver == driver
                        && s.concurrency == concurrency
                        && s.topology == topology
                        && s.target == target
                })
                .collect(),
        }
    }

    fn values(&self, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
        self.runs.iter().filter_map(|s| f(s)).collect()
    }

    fn rps(&self) -> Option<f64> {
        median(&self.values(|s| Some(s.run.rps())))
    }

    fn pct(&self, f: impl Fn(&LoadRun) -> f64) -> Option<f64> {
        median(&self.values(|s| Some(f(&s.run))))
    }

    /// CPU seconds per 100k requests, median of the runs'.
    fn per_100k(&self, cpu: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(&self.values(|s| Some(cpu(s)? / s.run.requests as f64 * 1e5)))
    }

    fn errors(&self) -> u64 {
        self.runs.iter().map(|s| s.run.errors).sum()
    }

    fn log_per_request(&self) -> Option<f64> {
        let lines: Option<u64> = self.runs.iter().map(|s| s.log_lines).sum();
        let requests: u64 = self.runs.iter().map(|s| s.run.requests).sum();
        lines
            .filter(|_| requests > 0 && !self.runs.is_empty())
            .map(|l| l as f64 / requests as f64)
    }

    /// The per-round values of `f`, by round.
    fn by_round(&self, f: impl Fn(&Sample) -> f64) -> Vec<(usize, f64)> {
        self.runs.iter().map(|s| (s.round, f(s))).collect()
    }

    /// The runs' RPS, in the order of the rounds.
    fn rps_runs(&self) -> String {
        self.runs
            .iter()
            .map(|s| format!("{:.0}", s.run.rps()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `f(a) / f(b)` round by round, for rounds both have.
fn paired_ratios(a: &Figures, b: &Figures, f: impl Fn(&Sample) -> f64 + Copy) -> Vec<f64> {
    let b = b.by_round(f);
    a.by_round(f)
        .into_iter()
        .filter_map(|(round, x)| {
            let (_, y) = b.iter().find(|(r, _)| *r == round)?;
            (*y > 0.0).then(|| x / y)
        })
        .collect()
}

/// `f(a) − f(b)` round by round, median over the rounds.
fn paired_difference(a: &Figures, b: &Figures, f: impl Fn(&Sample) -> f64 + Copy) -> Option<f64> {
    let b = b.by_round(f);
    let diffs: Vec<f64> = a
        .by_round(f)
        .into_iter()
        .filter_map(|(round, x)| Some(x - b.iter().find(|(r, _)| *r == round)?.1))
        .collect();
    median(&diffs)
}

/// `(max − min) / median` of `values`, as a fraction.
fn spread(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    (m > 0.0).then(|| (max - min) / m)
}

fn us(v: Option<f64>) -> String {
    num(v, 0)
}

fn signed_us(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:+.0}"))
}

/// The table of one driver, concurrency and topology: every target's
/// figures, with ratios against nginx.
fn target_table(r: &ProxyResults, driver: Driver, c: Concurrency, topology: Topology) -> Table {
    let nginx = Figures::of(r, driver, c, topology, Target::Proxy(ProxyKind::Nginx));
    let rows = driver
        .targets()
        .iter()
        .map(|&target| {
            let f = Figures::of(r, driver, c, topology, target);
            let is_proxy = target != Target::Direct;
            let vs = |x: Option<f64>, base: Option<f64>| {
                if is_proxy {
                    ratio(x, base)
                } else {
                    "—".to_owned()
                }
            };
            let p99 = f.pct(|run| run.p99_us);
            vec![
                target.name().to_owned(),
                num(f.rps(), 0),
                vs(f.rps(), nginx.rps()),
                f.rps_runs(),
                format!(
                    "{} / {} / {}",
                    us(f.pct(|run| run.p50_us)),
                    us(p99),
                    us(f.pct(|run| run.p999_us))
                ),
                vs(p99, nginx.pct(|run| run.p99_us)),
                num(f.per_100k(|s| s.proxy_cpu), 2),
                vs(f.per_100k(|s| s.proxy_cpu), nginx.per_100k(|s| s.proxy_cpu)),
                num(f.per_100k(|s| Some(s.tunnel_cpu)), 2),
                f.errors().to_string(),
                num(f.log_per_request(), 2),
            ]
        })
        .collect();
    Table {
        header: vec![
            "target",
            "req/s (median)",
            "vs nginx",
            "req/s per round",
            "p50 / p99 / p99.9 µs",
            "p99 vs nginx",
            "proxy CPU s / 100k req",
            "CPU vs nginx",
            "tunnel CPU s / 100k req",
            "errors",
            "log lines / req",
        ],
        rows,
    }
}

/// The latency each proxy adds over the direct runs, both concurrencies.
fn added_table(r: &ProxyResults, driver: Driver) -> Table {
    let mut rows = Vec::new();
    for topology in Topology::ALL {
        for target in Target::ALL {
            let cell = |c: Concurrency| {
                let f = Figures::of(r, driver, c, topology, target);
                if target == Target::Direct {
                    return format!(
                        "{} / {} / {}",
                        us(f.pct(|run| run.p50_us)),
                        us(f.pct(|run| run.p99_us)),
                        us(f.pct(|run| run.p999_us))
                    );
                }
                let direct = Figures::of(r, driver, c, topology, Target::Direct);
                format!(
                    "{} / {} / {}",
                    signed_us(paired_difference(&f, &direct, |s| s.run.p50_us)),
                    signed_us(paired_difference(&f, &direct, |s| s.run.p99_us)),
                    signed_us(paired_difference(&f, &direct, |s| s.run.p999_us))
                )
            };
            let single = Figures::of(r, driver, Concurrency::Single, topology, target);
            rows.push(vec![
                format!("{}, {}", topology.name(), target.name()),
                cell(Concurrency::Single),
                num(single.rps(), 0),
                cell(Concurrency::Loaded),
            ]);
        }
    }
    Table {
        header: vec![
            "upstream, target",
            "1 connection: p50 / p99 / p99.9 µs (added)",
            "1 connection req/s",
            "64 connections: p50 / p99 / p99.9 µs (added)",
        ],
        rows,
    }
}

/// The target for one topology: warren's req/s at least nginx's
/// and its p99 at most nginx's, each within the run-to-run spread.
fn target_line(r: &ProxyResults, driver: Driver, topology: Topology) -> String {
    let c = Concurrency::Loaded;
    let warren = Figures::of(r, driver, c, topology, Target::Proxy(ProxyKind::Warren));
    let nginx = Figures::of(r, driver, c, topology, Target::Proxy(ProxyKind::Nginx));
    let judge = |x: Option<f64>, base: Option<f64>, nginx_runs: Vec<f64>, higher: bool| {
        let (Some(x), Some(base)) = (x, base) else {
            return "no figures".to_owned();
        };
        let q = x / base;
        let s = spread(&nginx_runs).unwrap_or(0.0);
        let met = if higher { q >= 1.0 } else { q <= 1.0 };
        let within = if higher { q >= 1.0 - s } else { q <= 1.0 + s };
        let word = if met {
            verdict(true).to_owned()
        } else if within {
            "met within the spread".to_owned()
        } else {
            verdict(false).to_owned()
        };
        format!(
            "{q:.2}× ({word}; nginx's own runs spread {:.0} %)",
            s * 100.0
        )
    };
    let rps = judge(
        warren.rps(),
        nginx.rps(),
        nginx.values(|s| Some(s.run.rps())),
        true,
    );
    let p99 = judge(
        warren.pct(|run| run.p99_us),
        nginx.pct(|run| run.p99_us),
        nginx.values(|s| Some(s.run.p99_us)),
        false,
    );
    let rounds = |f: fn(&Sample) -> f64| {
        paired_ratios(&warren, &nginx, f)
            .iter()
            .map(|q| format!("{q:.2}×"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}: req/s warren / nginx {rps}, round by round {}; p99 warren / nginx {p99}, round by \
         round {}.",
        topology.name(),
        rounds(|s| s.run.rps()),
        rounds(|s| s.run.p99_us),
    )
}

/// The section's tables (what `make bench` prints) and target lines.
pub fn proxy_tables(r: &ProxyResults) -> String {
    let mut out = String::new();
    for driver in Driver::ALL {
        for topology in Topology::ALL {
            out.push_str(&format!(
                "Proxies, {} — {}, {}, {} s × {} rounds\n\n{}\n",
                topology.title(),
                driver.title(),
                driver.load_text(),
                driver.seconds(r.seconds),
                r.rounds,
                target_table(r, driver, Concurrency::Loaded, topology).render()
            ));
        }
        // Latency added needs direct runs and both concurrencies.
        if driver.targets().contains(&Target::Direct) {
            out.push_str(&format!(
                "Latency added over calling the upstream directly — {}; the direct rows are \
                 absolute, the proxies' the median of the rounds' paired differences\n\n{}\n",
                driver.title(),
                added_table(r, driver).render()
            ));
        }
        out.push_str(&format!(
            "Target ({}): warren's req/s ≥ nginx's and its p99 ≤ nginx's in the same run (64 \
             connections), within the run-to-run spread:\n\n",
            driver.title()
        ));
        for topology in Topology::ALL {
            out.push_str(&format!("- {}\n", target_line(r, driver, topology)));
        }
    }
    out
}

/// The section's part of the report.
pub fn document(r: &ProxyResults, about: &About, args: &str) -> String {
    let mut d = String::from("## Ingress proxy\n\n");
    d.push_str(&provenance(&r.circumstances, about, args, "proxy"));
    let versions = r
        .versions
        .iter()
        .map(|(_, v)| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let one = Concurrency::Single;
    d.push_str(&format!(
        "Proxies and client: {versions}.\n\n\
         **Setup:** a lab cluster built by `warren_netns_tests::cluster`: `warren serve \
         --docker-host … --http-listen 0.0.0.0:80 --https-listen 0.0.0.0:443 --proxy-workers \
         {w}` on a public lab host \
         (`WARREN_LOG={WARREN_LOG}`), with a Docker daemon of its own in its namespace, so that \
         it runs replicas as the node `control`; one worker, `vm` (`warren join --direct`, in a \
         VPC behind a cone NAT), with its own. Both daemons hold `{IMAGE}`, made from this \
         host's `/usr/sbin/nginx` and the libraries it loads (`docker import`; there is no \
         registry): nginx with {} workers, keep-alive, no access log, serving a \
         {PAGE_BYTES}-byte page. Two services of one replica each are the upstreams: `local` \
         (`--constraint node==control`, `--host local.bench.test`) on the proxies' own host, \
         reached without the tunnel, and `mesh` (`--constraint node==vm`, `--host \
         mesh.bench.test`) across the WireGuard mesh. warren's proxy is `warren serve` itself \
         (port 80); nginx (8081), HAProxy (8082) and Caddy (8083) run in the control plane's \
         namespace with the same two routes by `Host` to the replicas' `mesh-ip:host-port` \
         (from `warren ps --json`). For HTTPS each service also has a second host name, \
         `local-tls.bench.test` and `mesh-tls.bench.test` (a second `--host`), with one \
         self-signed certificate for all four names (rcgen): `warren cert set` for the two \
         `-tls` names only (warren answers plain HTTP for a host with a certificate with a 308 \
         to HTTPS, which the cleartext runs must not get); nginx `listen 8441 ssl http2`, \
         HAProxy `bind :8442 ssl crt … alpn h2,http/1.1`, Caddy a site block with `tls CERT \
         KEY` on 8443, each with the same upstreams, upstream keep-alive and access log as its \
         cleartext listener; warren on 443.\n\n\
         **The configurations** (`bench/src/proxy_conf.rs`): nginx `worker_processes {w}`, \
         `upstream {{ keepalive {idle}; }}` with `proxy_http_version 1.1` and `Connection \
         \"\"`; HAProxy `nbthread {w}`, `option http-keep-alive` (its default connection \
         reuse); Caddy with `GOMAXPROCS={w}`, `transport http {{ keepalive_idle_conns_per_host \
         {idle} }}`; all with client keep-alive, `X-Forwarded-For/-Proto/-Host` set as warren \
         sets them, and **an access log line per request for all four, written to a file as the \
         request ends** (nginx's `combined` to a file, HAProxy's `httplog` to stdout, Caddy's \
         JSON to a file, warren's `warren::access` tracing line to stderr; the lab sends stdout \
         and stderr to a file). The \"log lines / req\" column counts what each wrote during \
         its runs. warren's proxy runs on worker threads of its own (`warren-proxy-N`, a \
         single-threaded tokio runtime each); `warren serve`'s threads were {}.\n\n\
         **Method:** wrk (HTTP/1.1 keep-alive) runs in the control plane's namespace too, \
         against each proxy at `203.0.113.x:PORT` with `-H 'Host: …'` and against the upstream \
         directly at its `mesh-ip:host-port` (the mesh address is reachable only from a mesh \
         host, so the client sits on the control host for every target alike). Each round runs \
         every target for each topology at 64 connections (`-t2 -c64 -d{}s`) and then at one \
         connection (`-t1 -c1 -d{}s`), the targets in turn, starting one further each round; {} \
         rounds, after one unrecorded {} s run per target to fill the pools. Latency \
         percentiles come from wrk's own histogram (p99.9 through a Lua `done` callback); each \
         table shows the median of the rounds. Proxy CPU is utime + stime from `/proc/PID/stat` \
         over each run (nginx's master and workers; HAProxy's and Caddy's process; warren: \
         `warren serve` less its mesh device thread `{DEVICE_THREAD}`), per 100k requests, \
         median of the runs; \"tunnel CPU\" is that device thread's, which carries every \
         proxy's mesh traffic (and idles in the local topology). \"Latency added\" is each \
         proxy's percentile minus the direct run's in the same round, the median over the \
         rounds. The target is met \"within the spread\" when warren's figure falls short of \
         nginx's by less than nginx's own runs spread ((max − min) / median).\n\n\
         **HTTP/2 over TLS:** after wrk's runs in each round, h2load (`-t2 -c64 -m{streams} \
         -D{h2s}`, the connections made once per run, so the handshakes are a small part) runs \
         against each proxy's HTTPS port as `https://local-tls.bench.test:PORT/` with \
         `--connect-to 203.0.113.x:PORT` (the URI's host is the SNI and `:authority`; h2load \
         does not verify the certificate, and a run fails unless ALPN gave `h2`). Its \
         percentiles come from its per-request `--log-file` (nearest rank over every request \
         of the run), its req/s from the requests that succeeded over its `finished in` time. \
         The upstreams speak cleartext HTTP/1.1 only, so these tables have no direct row and \
         no \"latency added\".\n\n\
         **Caveats:** the machine has 2 cores, shared by wrk, the proxy, the upstream nginx, \
         the Docker NAT and, for the mesh, both WireGuard devices: at 64 connections every \
         target is CPU-bound and latency is mostly queueing, so the ratios are the result and \
         the absolute figures context; the direct runs have one process fewer on the cores. The \
         machine is shared, so runs from a noisy moment move all targets of a round.\n\n",
        warren_netns_tests::docker::NGINX_WORKERS,
        r.warren_threads,
        r.seconds,
        one.seconds(r.seconds),
        r.rounds,
        WARM_UP.as_secs(),
        w = proxy_conf::WORKERS,
        streams = crate::h2load::STREAMS,
        h2s = Driver::H2load.seconds(r.seconds),
        idle = proxy_conf::IDLE_UPSTREAM,
    ));
    d.push_str(&proxy_tables(r));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        round: usize,
        c: Concurrency,
        topology: Topology,
        target: Target,
        rps: f64,
        p99: f64,
    ) -> Sample {
        Sample {
            round,
            driver: Driver::Wrk,
            concurrency: c,
            topology,
            target,
            run: LoadRun {
                requests: (rps * 5.0) as u64,
                seconds: 5.0,
                errors: 0,
                p50_us: p99 / 4.0,
                p99_us: p99,
                p999_us: p99 * 2.0,
                max_us: p99 * 3.0,
            },
            proxy_cpu: (target != Target::Direct).then_some(rps * 5.0 / 1e5 * 0.5),
            tunnel_cpu: 0.0,
            log_lines: (target != Target::Direct).then_some((rps * 5.0) as u64),
        }
    }

    fn results() -> ProxyResults {
        let mut samples = Vec::new();
        for round in 0..3 {
            for c in Concurrency::ALL {
                for topology in Topology::ALL {
                    for (i, target) in Target::ALL.into_iter().enumerate() {
                        let rps = match target {
                            Target::Direct => 40_000.0,
                            Target::Proxy(ProxyKind::Warren) => 19_000.0 + round as f64 * 100.0,
                            Target::Proxy(ProxyKind::Nginx) => 20_000.0,
                            _ => 15_000.0 + i as f64,
                        };
                        let p99 = 1_000_000.0 / rps * 64.0;
                        samples.push(sample(round, c, topology, target, rps, p99));
                    }
                }
            }
        }
        ProxyResults {
            circumstances: crate::workload::Circumstances::default(),
            versions: vec![("nginx".to_owned(), "nginx/1".to_owned())],
            rounds: 3,
            seconds: 5,
            warren_threads: "`warren` ×1".to_owned(),
            samples,
        }
    }

    #[test]
    fn tables_give_medians_and_ratios_against_nginx() {
        let r = results();
        let t = proxy_tables(&r);
        let warren = crate::workload::row_cells(&t, "warren");
        // 19000, 19100, 19200: median 19100; / 20000.
        assert_eq!(warren[1..3], ["19100", "0.95×"], "{t}");
        assert_eq!(warren[3], "19000, 19100, 19200", "{t}");
        assert_eq!(warren[9..], ["0", "1.00"], "{t}");
        let nginx = crate::workload::row_cells(&t, "nginx");
        assert_eq!(nginx[2], "1.00×", "{t}");
        assert_eq!(nginx[6], "0.50", "CPU per 100k: {t}");
        let direct = crate::workload::row_cells(&t, "direct");
        assert_eq!(direct[2], "—", "{t}");
        assert!(
            t.contains("local: req/s warren / nginx 0.95× (NOT met"),
            "{t}"
        );
        assert!(t.contains("round by round 0.95×, 0.95×, 0.96×"), "{t}");
    }

    #[test]
    fn h2load_tables_have_no_direct_row_and_their_own_targets() {
        let mut r = results();
        let h2: Vec<Sample> = r
            .samples
            .iter()
            .filter(|s| s.concurrency == Concurrency::Loaded && s.target != Target::Direct)
            .map(|s| Sample {
                driver: Driver::H2load,
                ..s.clone()
            })
            .collect();
        r.samples.extend(h2);
        let t = proxy_tables(&r);
        let at = t.find("h2load, HTTP/2 over TLS").expect("an h2load table");
        let h2 = &t[at..];
        assert!(!h2.contains("direct (no proxy)"), "{h2}");
        assert!(!h2.contains("Latency added"), "{h2}");
        assert!(
            h2.contains("64 connections × 10 streams, 3 s × 3 rounds"),
            "{h2}"
        );
        assert!(h2.contains("local: req/s warren / nginx 0.95×"), "{h2}");
    }

    #[test]
    fn latency_added_is_the_paired_difference() {
        let r = results();
        let t = added_table(&r, Driver::Wrk).render();
        // nginx p99 3200 µs, direct 1600 µs: +1600 at p99.
        let row = crate::workload::row_cells(&t, "local, nginx");
        assert_eq!(row[1], "+400 / +1600 / +3200", "{t}");
        let direct = crate::workload::row_cells(&t, "local, direct");
        assert_eq!(direct[1], "400 / 1600 / 3200", "{t}");
    }

    #[test]
    fn spreads_and_pairs() {
        assert_eq!(spread(&[9.0, 10.0, 11.0]), Some(0.2));
        assert_eq!(spread(&[]), None);
        let r = results();
        let w = Figures::of(
            &r,
            Driver::Wrk,
            Concurrency::Loaded,
            Topology::Mesh,
            Target::Proxy(ProxyKind::Warren),
        );
        let n = Figures::of(
            &r,
            Driver::Wrk,
            Concurrency::Loaded,
            Topology::Mesh,
            Target::Proxy(ProxyKind::Nginx),
        );
        assert_eq!(paired_ratios(&w, &n, |s| s.run.rps()).len(), 3);
        assert_eq!(paired_difference(&n, &n, |s| s.run.p99_us), Some(0.0));
    }
}
