//! A service as the user declares it (`warren deploy`): what to run, how
//! many, with what resources, health check, placement constraints and
//! restart policy. The CLI builds a [`ServiceSpec`], the control plane
//! validates and stores it, and agents receive it with their assignments.
//!
//! [`ServiceSpec::validate`] is the one place the rules live; a spec that
//! passes it can be scheduled and run. Units are fixed: CPU in millicores,
//! memory in bytes, durations in milliseconds.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a replica reserves when the spec gives no `--cpu`: a tenth of a core.
pub const DEFAULT_CPU_MILLIS: u32 = 100;

/// What a replica reserves when the spec gives no `--memory`: 64 MiB.
pub const DEFAULT_MEMORY: u64 = 64 << 20;

/// The most replicas one service may ask for.
pub const MAX_REPLICAS: u32 = 1000;

/// The longest node or service name: a DNS label (a service becomes
/// `NAME.warren` later).
pub const MAX_NAME_LEN: usize = 63;

/// A service's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The service's name: a DNS label.
    pub name: String,
    /// The image to run (`busybox:1`, `registry.example/app:2`).
    pub image: String,
    /// How many replicas.
    pub replicas: u32,
    /// Container ports to publish, each on a host port the scheduler picks.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Host names the proxy routes to this service's first port; a name
    /// may start with `*.` to stand for any one label.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The path prefix the proxy routes for each host (`None`: every path).
    #[serde(default)]
    pub path: Option<String>,
    /// Whether the proxy takes the path prefix off before passing a request
    /// on (it is passed on unchanged otherwise).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Whether the proxy keeps a client on one replica, by a cookie.
    #[serde(default)]
    pub sticky: bool,
    /// Whether the proxy gets certificates for the hosts by ACME.
    #[serde(default)]
    pub tls: TlsMode,
    /// Whether the proxy speaks HTTP/2 without TLS (h2c) to the replicas,
    /// as gRPC servers want.
    #[serde(default)]
    pub upstream_h2: bool,
    /// Environment variables, in order.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// The command and its arguments (empty: the image's own).
    #[serde(default)]
    pub command: Vec<String>,
    /// CPU reserved and allowed, millicores (`None`: reserve
    /// [`DEFAULT_CPU_MILLIS`], no limit).
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    /// Memory reserved and allowed, bytes (`None`: reserve
    /// [`DEFAULT_MEMORY`], no limit).
    #[serde(default)]
    pub memory: Option<u64>,
    /// How the agent checks a replica's health (`None`: healthy after 1 s
    /// of running).
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Where replicas may run.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// When the agent restarts a replica's container.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How a new generation replaces the one before.
    #[serde(default)]
    pub update: UpdatePolicy,
    /// How long a replica's container has to exit after SIGTERM before it
    /// is killed, milliseconds; also how long the proxy waits for requests
    /// in flight to a replica that goes before it is stopped.
    #[serde(default = "default_stop_grace_ms")]
    pub stop_grace_ms: u64,
}

/// A replica's stop grace when the spec sets none (`--stop-grace`): 10 s.
pub const DEFAULT_STOP_GRACE_MS: u64 = 10_000;

/// The longest `--stop-grace`, `--update-delay` and `--min-healthy-time`,
/// milliseconds (an hour).
pub const MAX_UPDATE_WAIT_MS: u64 = 3600 * 1000;

fn default_stop_grace_ms() -> u64 {
    DEFAULT_STOP_GRACE_MS
}

/// The longest `--healthy-deadline`, seconds (a day).
pub const MAX_HEALTHY_DEADLINE_SECS: u32 = 24 * 3600;

/// How a new generation of a service replaces the one before (`warren
/// deploy --update-parallelism --update-delay --update-order
/// --min-healthy-time --healthy-deadline --no-auto-rollback`). Changing it
/// alone makes no new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdatePolicy {
    /// How long a new generation has to roll out (every replica healthy),
    /// seconds; past it, it is rolled back (or, without `auto_rollback`,
    /// given up on).
    pub healthy_deadline_secs: u32,
    /// Whether a generation that misses its deadline is rolled back to the
    /// last one that completed.
    pub auto_rollback: bool,
    /// How many replicas are replaced at once: new ones started beside the
    /// old ones that still serve (`start-first`), or old ones stopped
    /// before their replacements start (`stop-first`).
    pub parallelism: u32,
    /// How long to wait after one batch of replicas is replaced before the
    /// next begins, milliseconds.
    pub delay_ms: u64,
    /// Whether a replacement starts before the replica it replaces stops.
    pub order: UpdateOrder,
    /// How long a new replica's health checks must pass before it counts
    /// as healthy (and takes traffic), milliseconds: a replica that passes
    /// once and then crashes does not move a rollout on.
    pub min_healthy_ms: u64,
}

impl Default for UpdatePolicy {
    fn default() -> UpdatePolicy {
        UpdatePolicy {
            healthy_deadline_secs: 60,
            auto_rollback: true,
            parallelism: 1,
            delay_ms: 0,
            order: UpdateOrder::StartFirst,
            min_healthy_ms: 2000,
        }
    }
}

/// Whether a rolling update starts a replacement before it stops the
/// replica it replaces (`warren deploy --update-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Start the new replica, wait until it is healthy, then stop an old
    /// one: the service never has fewer healthy replicas than asked, and
    /// briefly needs room for one batch more.
    #[default]
    StartFirst,
    /// Stop an old replica, then start its replacement: for services that
    /// cannot run two at once (one holding a volume or a lock), at the cost
    /// of a batch fewer serving meanwhile.
    StopFirst,
}

impl UpdateOrder {
    /// The name `--update-order` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StartFirst => "start-first",
            UpdateOrder::StopFirst => "stop-first",
        }
    }
}

impl FromStr for UpdateOrder {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<UpdateOrder, SpecError> {
        match s {
            "start-first" => Ok(UpdateOrder::StartFirst),
            "stop-first" => Ok(UpdateOrder::StopFirst),
            _ => Err(SpecError::UpdateOrder(s.to_owned())),
        }
    }
}

impl ServiceSpec {
    /// Whether `other` runs the same containers as this spec: they differ at
    /// most in the replica count and the update policy, which a deploy
    /// changes without a new generation.
    pub fn same_workload(&self, other: &ServiceSpec) -> bool {
        let workload = |spec: &ServiceSpec| ServiceSpec {
            replicas: 0,
            update: UpdatePolicy::default(),
            ..spec.clone()
        };
        workload(self) == workload(other)
    }

    /// One replica of `image` named `name`, with the image's own command and
    /// everything else at its default; set the rest with struct update
    /// syntax.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        ServiceSpec {
            name: name.into(),
            image: image.into(),
            replicas: 1,
            ports: Vec::new(),
            hosts: Vec::new(),
            path: None,
            strip_prefix: false,
            sticky: false,
            tls: TlsMode::Auto,
            upstream_h2: false,
            env: Vec::new(),
            command: Vec::new(),
            cpu_millis: None,
            memory: None,
            health: None,
            constraints: Vec::new(),
            restart: RestartPolicy::default(),
            update: UpdatePolicy::default(),
            stop_grace_ms: DEFAULT_STOP_GRACE_MS,
        }
    }

    /// The CPU a replica reserves, millicores.
    pub fn cpu_reservation(&self) -> u32 {
        self.cpu_millis.unwrap_or(DEFAULT_CPU_MILLIS)
    }

    /// The memory a replica reserves, bytes.
    pub fn memory_reservation(&self) -> u64 {
        self.memory.unwrap_or(DEFAULT_MEMORY)
    }

    /// Checks every rule a spec must follow; the first broken one is the
    /// error.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !is_dns_label(&self.name) {
            return Err(SpecError::Name(shorten(&self.name)));
        }
        if !is_image_reference(&self.image) {
            return Err(SpecError::Image(shorten(&self.image)));
        }
        if self.replicas > MAX_REPLICAS {
            return Err(SpecError::Replicas(self.replicas));
        }
        if let Some(port) = self.ports.iter().find(|port| **port == 0) {
            return Err(SpecError::Port(u32::from(*port)));
        }
        for (i, port) in self.ports.iter().enumerate() {
            if self.ports[..i].contains(port) {
                return Err(SpecError::DuplicatePort(*port));
            }
        }
        if let Some(host) = self.hosts.iter().find(|host| !is_host_pattern(host)) {
            return Err(SpecError::Host(shorten(host)));
        }
        self.validate_route()?;
        if let Some((key, _)) = self.env.iter().find(|(key, _)| !is_env_key(key)) {
            return Err(SpecError::EnvKey(shorten(key)));
        }
        if self.cpu_millis == Some(0) {
            return Err(SpecError::Cpu);
        }
        if self.memory.is_some_and(|memory| memory < MIN_MEMORY) {
            return Err(SpecError::Memory);
        }
        if let Some(health) = &self.health {
            health.validate(&self.ports)?;
        }
        if !(1..=MAX_HEALTHY_DEADLINE_SECS).contains(&self.update.healthy_deadline_secs) {
            return Err(SpecError::HealthyDeadline);
        }
        if !(1..=MAX_REPLICAS).contains(&self.update.parallelism) {
            return Err(SpecError::Parallelism(self.update.parallelism));
        }
        for (flag, ms) in [
            ("--update-delay", self.update.delay_ms),
            ("--min-healthy-time", self.update.min_healthy_ms),
            ("--stop-grace", self.stop_grace_ms),
        ] {
            if ms > MAX_UPDATE_WAIT_MS {
                return Err(SpecError::TooLong(flag));
            }
        }
        Ok(())
    }
}

impl ServiceSpec {
    /// The proxy's rules: a route needs a port to send to, a path needs a
    /// host, and a prefix to strip needs a path.
    fn validate_route(&self) -> Result<(), SpecError> {
        if !self.hosts.is_empty() && self.ports.is_empty() {
            return Err(SpecError::HostNeedsPort);
        }
        if let Some(path) = &self.path {
            if self.hosts.is_empty() {
                return Err(SpecError::PathNeedsHost);
            }
            if !is_path_prefix(path) {
                return Err(SpecError::RoutePath(shorten(path)));
            }
        }
        if self.strip_prefix && self.path.is_none() {
            return Err(SpecError::StripNeedsPath);
        }
        if self.sticky && self.hosts.is_empty() {
            return Err(SpecError::StickyNeedsHost);
        }
        if self.upstream_h2 && self.hosts.is_empty() {
            return Err(SpecError::UpstreamH2NeedsHost);
        }
        Ok(())
    }
}

/// The longest `--path`.
pub const MAX_PATH_LEN: usize = 256;

/// Whether `path` is a route's prefix: `/` and path segments of printable
/// ASCII, no query, fragment or empty segment, no trailing `/` (but `/`).
fn is_path_prefix(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= MAX_PATH_LEN
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#%\\".contains(&b))
}

/// The least memory a container may be limited to (Docker refuses less
/// than 6 MiB).
pub const MIN_MEMORY: u64 = 6 << 20;

/// Whether the proxy gets certificates for a service's hosts by ACME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// By ACME when the control plane has an ACME directory (the default);
    /// a certificate set with `warren cert set` wins.
    #[default]
    Auto,
    /// Never by ACME (a certificate set by hand is still served).
    Off,
}

impl FromStr for TlsMode {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<TlsMode, SpecError> {
        match text {
            "auto" => Ok(TlsMode::Auto),
            "off" => Ok(TlsMode::Off),
            _ => Err(SpecError::Tls(shorten(text))),
        }
    }
}

/// When a replica's container is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Always (the default).
    #[default]
    Always,
    /// Only after a non-zero exit or a failed health check.
    OnFailure,
    /// Never: an exited replica stays exited.
    Never,
}

impl FromStr for RestartPolicy {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<RestartPolicy, SpecError> {
        match text {
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "never" => Ok(RestartPolicy::Never),
            other => Err(SpecError::Restart(shorten(other))),
        }
    }
}

/// How the agent checks a replica's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What it checks.
    pub probe: Probe,
    /// Between checks, milliseconds.
    pub interval_ms: u64,
    /// How long one check may take, milliseconds.
    pub timeout_ms: u64,
    /// Failed checks in a row that make a replica unhealthy.
    pub retries: u32,
    /// How long after a start failures do not count, milliseconds.
    pub start_period_ms: u64,
}

impl HealthCheck {
    /// A check of `probe` with the defaults: every 2 s, 1 s timeout, 3
    /// retries, a 10 s start period.
    pub fn new(probe: Probe) -> HealthCheck {
        HealthCheck {
            probe,
            interval_ms: 2000,
            timeout_ms: 1000,
            retries: 3,
            start_period_ms: 10_000,
        }
    }

    fn validate(&self, ports: &[u16]) -> Result<(), SpecError> {
        match &self.probe {
            Probe::Http { path }
                if !path.starts_with('/') || path.chars().any(char::is_whitespace) =>
            {
                return Err(SpecError::HealthPath(shorten(path)));
            }
            Probe::Http { .. } | Probe::Tcp if ports.is_empty() => {
                return Err(SpecError::HealthNeedsPort);
            }
            Probe::Command { argv } if argv.is_empty() => return Err(SpecError::HealthCommand),
            _ => {}
        }
        if self.interval_ms == 0 || self.timeout_ms == 0 || self.retries == 0 {
            return Err(SpecError::HealthTiming);
        }
        Ok(())
    }
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    /// `GET PATH` on the first port answers 2xx or 3xx.
    Http {
        /// The path, starting with `/`.
        path: String,
    },
    /// A TCP connection to the first port is accepted.
    Tcp,
    /// A command run in the container exits 0.
    Command {
        /// The command and its arguments.
        argv: Vec<String>,
    },
}

/// A placement rule: a node label must (`==`) or must not (`!=`) have a
/// value. `arch` and `node` are labels every node has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Constraint {
    /// The label's key.
    pub key: String,
    /// `true` for `==`, `false` for `!=`.
    pub equal: bool,
    /// The value compared with.
    pub value: String,
}

impl Constraint {
    /// Whether a node whose label `key` is `value` (`None`: no such label)
    /// satisfies this constraint.
    pub fn holds(&self, value: Option<&str>) -> bool {
        (value == Some(self.value.as_str())) == self.equal
    }
}

impl FromStr for Constraint {
    type Err = SpecError;

    /// `KEY==VALUE` or `KEY!=VALUE`.
    fn from_str(text: &str) -> Result<Constraint, SpecError> {
        let bad = || SpecError::Constraint(shorten(text));
        let (key, equal, value) = match (text.split_once("!="), text.split_once("==")) {
            (Some((key, value)), _) => (key, false, value),
            (None, Some((key, value))) => (key, true, value),
            (None, None) => return Err(bad()),
        };
        if !is_label_key(key) || !is_label_value(value) {
            return Err(bad());
        }
        Ok(Constraint {
            key: key.to_owned(),
            equal,
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{op}{}", self.key, self.value)
    }
}

/// A rule a spec broke, as one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The name is not a DNS label.
    #[error("invalid service name {0:?}: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'")]
    Name(String),
    /// The image is not an image reference.
    #[error("invalid image {0:?}: expected a reference like busybox:1 or registry.example/app:2")]
    Image(String),
    /// Too many replicas.
    #[error("{0} replicas is more than the {MAX_REPLICAS} a service may have")]
    Replicas(u32),
    /// A port outside 1–65535.
    #[error("port {0} is not a port: use 1 to 65535")]
    Port(u32),
    /// A port given twice.
    #[error("port {0} is given twice")]
    DuplicatePort(u16),
    /// A host name that is not one.
    #[error("invalid host name {0:?}: labels of letters, digits and '-', the first may be '*'")]
    Host(String),
    /// `--host` without a port for the proxy to send to.
    #[error("--host needs a --port: the proxy sends requests to the service's first port")]
    HostNeedsPort,
    /// `--path` without `--host`.
    #[error("--path needs a --host")]
    PathNeedsHost,
    /// A path prefix that is not one.
    #[error("invalid --path {0:?}: it starts with '/', has no '?', '#', '%', spaces or empty segments and does not end with '/'")]
    RoutePath(String),
    /// `--strip-prefix` without `--path`.
    #[error("--strip-prefix needs a --path")]
    StripNeedsPath,
    /// Not `auto` or `off`.
    #[error("invalid --tls {0:?}: auto or off")]
    Tls(String),
    /// `--sticky` without `--host`.
    #[error("--sticky needs a --host")]
    StickyNeedsHost,
    /// `--upstream-h2` without `--host`.
    #[error("--upstream-h2 needs a --host")]
    UpstreamH2NeedsHost,
    /// An environment variable name that is not one.
    #[error("invalid environment variable name {0:?}: use letters, digits and '_', not starting with a digit")]
    EnvKey(String),
    /// `--cpu 0`.
    #[error("--cpu must be more than 0")]
    Cpu,
    /// Less memory than a container can have.
    #[error("--memory must be at least 6 MiB")]
    Memory,
    /// A healthy deadline out of range.
    #[error("--healthy-deadline must be between 1s and 24h")]
    HealthyDeadline,
    /// An update parallelism out of range.
    #[error("--update-parallelism {0}: must be between 1 and {MAX_REPLICAS}")]
    Parallelism(u32),
    /// A wait longer than [`MAX_UPDATE_WAIT_MS`].
    #[error("{0} must be at most 1h")]
    TooLong(&'static str),
    /// Not `start-first` or `stop-first`.
    #[error("invalid update order {0:?}: start-first or stop-first")]
    UpdateOrder(String),
    /// Not `always`, `on-failure` or `never`.
    #[error("invalid restart policy {0:?}: always, on-failure or never")]
    Restart(String),
    /// Not `KEY==VALUE` or `KEY!=VALUE`.
    #[error("invalid constraint {0:?}: expected KEY==VALUE or KEY!=VALUE (label keys and values: letters, digits, '-', '_', '.')")]
    Constraint(String),
    /// An HTTP check's path.
    #[error("invalid health check path {0:?}: it starts with '/' and has no spaces")]
    HealthPath(String),
    /// An HTTP or TCP check without a port to probe.
    #[error("--health-http and --health-tcp need a --port to probe")]
    HealthNeedsPort,
    /// A command check without a command.
    #[error("--health-cmd needs a command")]
    HealthCommand,
    /// A zero interval, timeout or retry count.
    #[error("health check interval, timeout and retries must be more than 0")]
    HealthTiming,
}

/// At most 64 characters of user input, for an error message.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= 64 {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(63).collect();
    short.push('…');
    short
}

/// Whether `name` is a DNS label: what node and service names must be.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `name` is a host name or a wildcard one (`*.example.com`: any
/// one label in place of the `*`).
pub fn is_host_pattern(name: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(rest) => rest.contains('.') && is_host_name(rest),
        None => is_host_name(name),
    }
}

/// Whether `name` is a host name: dot-separated labels, at most 253 bytes.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_NAME_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `image` looks like an image reference: `[registry/]path[:tag][@digest]`
/// in the characters Docker allows, lowercase repository.
fn is_image_reference(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let digest_ok = digest.is_none_or(|digest| {
        digest.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
    });
    // A tag follows the last ':' after the last '/' (a registry may have a port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let tag_ok = tag.is_none_or(|tag| {
        !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    });
    // The first part names a registry when it looks like a host: it may
    // have a port and uppercase; every other part is a lowercase path.
    let registry = repository
        .split_once('/')
        .map(|(first, _)| first)
        .filter(|first| first.contains('.') || first.contains(':') || *first == "localhost");
    let path = registry.map_or(repository, |registry| &repository[registry.len() + 1..]);
    let registry_ok = registry.is_none_or(|registry| {
        registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    });
    let repository_ok = registry_ok
        && !path.is_empty()
        && repository.len() <= 255
        && path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    digest_ok && tag_ok && repository_ok
}

/// Whether `key` is an environment variable name.
fn is_env_key(key: &str) -> bool {
    key.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `key` is a node label key.
pub fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whether `value` is a node label value (may be empty).
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Parses a size: a number of bytes with an optional binary suffix
/// (`K`, `M`, `G`, `T`, also `KiB`…, `k`/`m`/`g`, or `B`): `512M`, `1.5G`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Parses a CPU amount in cores (`0.5`, `2`, `250m`) into millicores.
pub fn parse_cpu(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Some(millis) = text.strip_suffix('m') {
        return millis.parse().ok();
    }
    let cores: f64 = text.parse().ok()?;
    let millis = (cores * 1000.0).round();
    (millis.is_finite() && millis >= 0.0 && millis <= f64::from(u32::MAX)).then_some(millis as u32)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
