//! What the agent asks the runtime to run ([`ReplicaSpec`]), the labels
//! that mark a container as warren's ([`ReplicaLabels`]), and the pure
//! translation of one into a Docker container-create body.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use super::error::RuntimeError;
use warren_proto::assignment::ReplicaId;
use warren_proto::service::{is_dns_label, MIN_MEMORY};

/// Label: the service a container is a replica of.
pub const LABEL_SERVICE: &str = "warren.service";
/// Label: the replica's id (`web-3`), unique in the cluster.
pub const LABEL_REPLICA: &str = "warren.replica";
/// Label: the service generation (spec version) the container runs.
pub const LABEL_GENERATION: &str = "warren.generation";
/// Label: which of the agent's starts of this replica and generation the
/// container is (0 first, then one more per restart by the agent).
pub const LABEL_ATTEMPT: &str = "warren.attempt";

/// One port a replica publishes: `host_ip:host:container` (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The port inside the container.
    pub container: u16,
    /// The port on the node, bound on [`ReplicaSpec::publish_ip`] only.
    pub host: u16,
}

/// One replica to run: what the agent hands [`super::Runtime::run_replica`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// The service's name (a DNS label).
    pub service: String,
    /// The replica's id (`web-3`).
    pub replica: ReplicaId,
    /// The service generation it runs.
    pub generation: u64,
    /// The agent's start count for this replica and generation: a restart
    /// makes a new container with the next attempt and leaves the exited
    /// one for `warren logs --previous`. Docker's restart policy is not used.
    pub attempt: u32,
    /// The image (`local/busybox:1`); it must be on the node already.
    pub image: String,
    /// The command and its arguments (empty: the image's own).
    pub command: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The address published ports are bound on: the node's mesh IP, so a
    /// replica is reachable across the tunnels and from nowhere else.
    pub publish_ip: IpAddr,
    /// The ports to publish.
    pub ports: Vec<PortMapping>,
    /// CPU limit, millicores (`None`: no limit).
    pub cpu_millis: Option<u32>,
    /// Memory limit, bytes (`None`: no limit).
    pub memory: Option<u64>,
    /// How long the container has to exit after SIGTERM before the daemon
    /// kills it (`warren deploy --stop-grace`): the container keeps it, so
    /// a stop needs no assignment to know it.
    pub stop_grace: Duration,
}

/// The warren labels of a container, parsed: which replica it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaLabels {
    /// [`LABEL_SERVICE`].
    pub service: String,
    /// [`LABEL_REPLICA`].
    pub replica: ReplicaId,
    /// [`LABEL_GENERATION`].
    pub generation: u64,
    /// [`LABEL_ATTEMPT`].
    pub attempt: u32,
}

impl ReplicaLabels {
    /// The labels of `labels` if all four are there and well formed; any
    /// other container is not warren's.
    pub fn parse(labels: &HashMap<String, String>) -> Option<ReplicaLabels> {
        let service = labels.get(LABEL_SERVICE)?;
        if !is_dns_label(service) {
            return None;
        }
        Some(ReplicaLabels {
            service: service.clone(),
            replica: ReplicaId(
                labels
                    .get(LABEL_REPLICA)
                    .filter(|id| is_replica_of(id, service))?
                    .clone(),
            ),
            generation: labels.get(LABEL_GENERATION)?.parse().ok()?,
            attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
        })
    }

    /// As Docker labels.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SERVICE.to_owned(), self.service.clone()),
            (LABEL_REPLICA.to_owned(), self.replica.0.clone()),
            (LABEL_GENERATION.to_owned(), self.generation.to_string()),
            (LABEL_ATTEMPT.to_owned(), self.attempt.to_string()),
        ])
    }

    /// The container's name: `warren-REPLICA-gGENERATION-aATTEMPT`, unique
    /// per start, readable in `docker ps`.
    pub fn container_name(&self) -> String {
        format!(
            "warren-{}-g{}-a{}",
            self.replica, self.generation, self.attempt
        )
    }
}

impl ReplicaSpec {
    /// The labels its container carries.
    pub fn labels(&self) -> ReplicaLabels {
        ReplicaLabels {
            service: self.service.clone(),
            replica: self.replica.clone(),
            generation: self.generation,
            attempt: self.attempt,
        }
    }

    /// Checks what Docker would otherwise refuse late or silently: the
    /// service name, the image, env keys, ports and limits.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |why: String| Err(RuntimeError::InvalidSpec(why));
        if !is_dns_label(&self.service) {
            return bad(format!(
                "service name {:?} is not a DNS label",
                self.service
            ));
        }
        if !is_replica_of(&self.replica.0, &self.service) {
            return bad(format!(
                "replica id {:?} is not one of {}'s",
                self.replica.0, self.service
            ));
        }
        if self.image.is_empty() || self.image.chars().any(|c| c.is_whitespace()) {
            return bad(format!("image {:?} is not an image reference", self.image));
        }
        if let Some((key, _)) = self
            .env
            .iter()
            .find(|(key, _)| key.is_empty() || key.contains('=') || key.contains('\0'))
        {
            return bad(format!("environment variable name {key:?}"));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.container == 0 || p.host == 0 {
                return bad("port 0".to_owned());
            }
            if self.ports[..i].iter().any(|q| q.host == p.host) {
                return bad(format!("host port {} published twice", p.host));
            }
            if self.ports[..i].iter().any(|q| q.container == p.container) {
                return bad(format!("container port {} published twice", p.container));
            }
        }
        if self.cpu_millis == Some(0) {
            return bad("a CPU limit of 0".to_owned());
        }
        if self.memory.is_some_and(|m| m < MIN_MEMORY) {
            return bad(format!("a memory limit below {MIN_MEMORY} bytes"));
        }
        Ok(())
    }

    /// The container-create body: image, command, env, labels, ports bound
    /// on [`ReplicaSpec::publish_ip`] only, limits, and restart policy "no"
    /// (restarts are the agent's).
    pub fn create_body(&self) -> ContainerCreateBody {
        let key = |p: &PortMapping| format!("{}/tcp", p.container);
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = self
            .ports
            .iter()
            .map(|p| {
                let binding = PortBinding {
                    host_ip: Some(self.publish_ip.to_string()),
                    host_port: Some(p.host.to_string()),
                };
                (key(p), Some(vec![binding]))
            })
            .collect();
        let host_config = HostConfig {
            port_bindings: Some(bindings),
            publish_all_ports: Some(false),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            nano_cpus: self
                .cpu_millis
                .map(|m| i64::from(m).saturating_mul(1_000_000)),
            memory: self.memory.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
            auto_remove: Some(false),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels().to_map()),
            exposed_ports: Some(self.ports.iter().map(key).collect()),
            host_config: Some(host_config),
            // Docker counts whole seconds; a grace is never cut short.
            stop_timeout: Some(
                i64::try_from(self.stop_grace.as_millis().div_ceil(1000)).unwrap_or(i64::MAX),
            ),
            ..Default::default()
        }
    }
}

/// Whether `id` names a replica of `service`: `SERVICE-N`.
fn is_replica_of(id: &str, service: &str) -> bool {
    is_dns_label(id)
        && id
            .strip_prefix(service)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ReplicaSpec {
        ReplicaSpec {
            service: "web".to_owned(),
            replica: ReplicaId("web-2".to_owned()),
            generation: 7,
            attempt: 1,
            image: "local/busybox:1".to_owned(),
            command: vec!["httpd".to_owned(), "-f".to_owned()],
            env: vec![("A".to_owned(), "1=2".to_owned())],
            publish_ip: IpAddr::from([100, 96, 0, 2]),
            ports: vec![PortMapping {
                container: 8080,
                host: 18080,
            }],
            cpu_millis: Some(250),
            memory: Some(64 << 20),
            stop_grace: Duration::from_millis(2500),
        }
    }

    #[test]
    fn create_body_carries_labels_ports_limits_and_no_restart_policy() {
        let body = spec().create_body();
        let json = serde_json::to_value(&body).map_err(|e| e.to_string());
        let Ok(json) = json else {
            panic!("{json:?}");
        };
        assert_eq!(json["Labels"]["warren.service"], "web");
        assert_eq!(json["Labels"]["warren.replica"], "web-2");
        assert_eq!(json["Labels"]["warren.generation"], "7");
        assert_eq!(json["Labels"]["warren.attempt"], "1");
        assert_eq!(json["StopTimeout"], 3, "2.5 s rounded up");
        assert_eq!(json["Cmd"], serde_json::json!(["httpd", "-f"]));
        assert_eq!(json["Env"], serde_json::json!(["A=1=2"]));
        assert_eq!(json["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        let host = &json["HostConfig"];
        assert_eq!(
            host["PortBindings"],
            serde_json::json!({"8080/tcp": [{"HostIp": "100.96.0.2", "HostPort": "18080"}]})
        );
        assert_eq!(host["RestartPolicy"]["Name"], "no");
        assert_eq!(host["NanoCpus"], 250_000_000);
        assert_eq!(host["Memory"], 64 << 20);
        assert_eq!(host["PublishAllPorts"], false);
    }

    #[test]
    fn no_command_keeps_the_images_own() {
        let mut s = spec();
        s.command.clear();
        s.cpu_millis = None;
        s.memory = None;
        let body = s.create_body();
        assert_eq!(body.cmd, None);
        let host = body.host_config.unwrap_or_default();
        assert_eq!((host.nano_cpus, host.memory), (None, None));
    }

    #[test]
    fn labels_round_trip_and_anything_else_is_not_ours() {
        let labels = spec().labels();
        assert_eq!(ReplicaLabels::parse(&labels.to_map()), Some(labels.clone()));
        assert_eq!(labels.container_name(), "warren-web-2-g7-a1");
        let mut map = labels.to_map();
        map.remove(LABEL_ATTEMPT);
        assert_eq!(ReplicaLabels::parse(&map), None);
        let mut map = labels.to_map();
        map.insert(LABEL_REPLICA.to_owned(), "two".to_owned());
        assert_eq!(ReplicaLabels::parse(&map), None);
        let mut map = labels.to_map();
        map.insert(LABEL_SERVICE.to_owned(), "Web App".to_owned());
        assert_eq!(ReplicaLabels::parse(&map), None);
        assert_eq!(ReplicaLabels::parse(&HashMap::new()), None);
    }

    #[test]
    fn validation() {
        assert!(spec().validate().is_ok());
        let broken: Vec<fn(&mut ReplicaSpec)> = vec![
            |s| s.service = "Web".to_owned(),
            |s| s.service = "-web".to_owned(),
            |s| s.service = "w".repeat(64),
            |s| s.image = String::new(),
            |s| s.image = "a b".to_owned(),
            |s| s.env.push(("A=B".to_owned(), String::new())),
            |s| s.env.push((String::new(), String::new())),
            |s| s.ports[0].host = 0,
            |s| s.ports.push(s.ports[0]),
            |s| {
                s.ports.push(PortMapping {
                    container: 8080,
                    host: 18081,
                })
            },
            |s| s.cpu_millis = Some(0),
            |s| s.memory = Some(1 << 20),
        ];
        for (i, f) in broken.iter().enumerate() {
            let mut s = spec();
            f(&mut s);
            assert!(
                matches!(s.validate(), Err(RuntimeError::InvalidSpec(_))),
                "case {i}: {s:?}"
            );
        }
    }
}
