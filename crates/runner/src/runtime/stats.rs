//! What the agent reports about its node ([`NodeFacts`]: architecture,
//! cores, memory, free disk, Docker version) and about each container
//! ([`ContainerUsage`]: CPU and memory), with the arithmetic kept pure.

use std::path::{Path, PathBuf};

use bollard::models::{ContainerCpuStats, ContainerMemoryStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

use super::engine::Runtime;
use super::error::RuntimeError;
use super::version::ApiVersion;

/// The node's resources and Docker, as the agent reports them at join and
/// when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The architecture as images name it (`amd64`, `arm64`).
    pub architecture: String,
    /// The OS (`linux`).
    pub os: String,
    /// Logical CPUs the daemon sees.
    pub cpu_cores: u32,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// The daemon's data root (`/var/lib/docker`).
    pub docker_root_dir: PathBuf,
    /// Free space for unprivileged use on the data root's filesystem,
    /// bytes, read on this host (`None`: the agent cannot see that path,
    /// e.g. when it runs in a container of its own).
    pub free_disk_bytes: Option<u64>,
    /// The Docker Engine version (`20.10.24+dfsg1`).
    pub docker_version: String,
    /// The Engine API version the runtime speaks.
    pub api_version: ApiVersion,
    /// The daemon's newest Engine API version.
    pub daemon_api_version: ApiVersion,
}

/// One container's usage at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerUsage {
    /// CPU used over the daemon's sampling interval (about a second), in
    /// percent of one core (200 = two cores busy); `None` when the daemon
    /// gave no previous sample (a container that just started or stopped).
    pub cpu_percent: Option<f64>,
    /// Memory in use without the page cache it could drop (what
    /// `docker stats` shows), bytes; `None` for a container not running.
    pub memory_bytes: Option<u64>,
    /// The memory limit the kernel applies, bytes (the node's memory when
    /// the container has none).
    pub memory_limit: Option<u64>,
}

/// CPU percent between Docker's previous and current sample: the
/// container's share of the host's CPU time, scaled to cores, as
/// `docker stats` computes it.
pub fn cpu_percent(now: &ContainerCpuStats, before: &ContainerCpuStats) -> Option<f64> {
    let total = |s: &ContainerCpuStats| s.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let container = total(now)?.checked_sub(total(before)?)?;
    let system = now
        .system_cpu_usage?
        .checked_sub(before.system_cpu_usage?)?;
    if system == 0 {
        return None;
    }
    let cores = now.online_cpus.map(u64::from).or_else(|| {
        now.cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map(|p| p.len() as u64)
    })?;
    Some(container as f64 / system as f64 * cores as f64 * 100.0)
}

/// Memory in use less the inactive page cache (cgroup v1
/// `total_inactive_file`, v2 `inactive_file`), as `docker stats` shows.
pub fn memory_in_use(memory: &ContainerMemoryStats) -> Option<u64> {
    let usage = memory.usage?;
    let cache = memory.stats.as_ref().and_then(|s| {
        s.get("total_inactive_file")
            .or_else(|| s.get("inactive_file"))
            .copied()
    });
    Some(match cache {
        Some(cache) if cache < usage => usage - cache,
        _ => usage,
    })
}

/// [`ContainerUsage`] of one stats answer.
pub fn usage_from(stats: &ContainerStatsResponse) -> ContainerUsage {
    let cpu = match (&stats.cpu_stats, &stats.precpu_stats) {
        (Some(now), Some(before)) => cpu_percent(now, before),
        _ => None,
    };
    let memory = stats.memory_stats.as_ref();
    ContainerUsage {
        cpu_percent: cpu,
        memory_bytes: memory.and_then(memory_in_use),
        memory_limit: memory.and_then(|m| m.limit),
    }
}

/// Free bytes for unprivileged use on the filesystem holding `path`.
// The field types are u64 on 64-bit Linux and narrower elsewhere.
#[allow(clippy::useless_conversion)]
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    u64::from(stat.blocks_available()).checked_mul(u64::from(stat.fragment_size()))
}

impl Runtime {
    /// The node's facts: from the daemon's `/info` (cores, memory, data
    /// root), its `/version` at connect (versions, architecture) and the
    /// free space of the data root's filesystem on this host.
    pub async fn node_facts(&self) -> Result<NodeFacts, RuntimeError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| RuntimeError::from_docker("info", e))?;
        let malformed = |field| RuntimeError::Malformed {
            what: "info",
            field,
        };
        let cpu_cores = info
            .ncpu
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| malformed("NCPU"))?;
        let memory_bytes = info
            .mem_total
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| malformed("MemTotal"))?;
        let docker_root_dir = PathBuf::from(
            info.docker_root_dir
                .ok_or_else(|| malformed("DockerRootDir"))?,
        );
        let root = docker_root_dir.clone();
        let free_disk_bytes = tokio::task::spawn_blocking(move || free_bytes(&root))
            .await
            .ok()
            .flatten();
        Ok(NodeFacts {
            architecture: self.daemon.arch.clone(),
            os: self.daemon.os.clone(),
            cpu_cores,
            memory_bytes,
            docker_root_dir,
            free_disk_bytes,
            docker_version: info
                .server_version
                .unwrap_or_else(|| self.daemon.version.clone()),
            api_version: self.api,
            daemon_api_version: self.daemon.api_version,
        })
    }

    /// One container's CPU and memory now. The daemon samples twice about
    /// a second apart, so this takes about a second.
    pub async fn container_stats(&self, id: &str) -> Result<ContainerUsage, RuntimeError> {
        self.inspect_ours(id).await?;
        // stream=false without one-shot: the daemon fills precpu_stats.
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(false)
            .build();
        let mut answers = self.docker.stats(id, Some(options));
        match answers.next().await {
            Some(Ok(stats)) => Ok(usage_from(&stats)),
            Some(Err(e)) => Err(RuntimeError::from_docker_for("container stats", id, e)),
            None => Err(RuntimeError::Malformed {
                what: "container stats",
                field: "a sample",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::ContainerCpuUsage;

    use super::*;

    fn cpu(total: u64, system: u64, cores: Option<u32>) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                percpu_usage: Some(vec![0; 4]),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: cores,
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_scales_to_cores() {
        // Half the host's CPU time on a 2-core host: one core busy.
        let p = cpu_percent(&cpu(1_500, 3_000, Some(2)), &cpu(1_000, 2_000, Some(2)));
        assert_eq!(p, Some(100.0));
        // Without online_cpus, the per-CPU list counts them.
        let p = cpu_percent(&cpu(1_250, 3_000, None), &cpu(1_000, 2_000, None));
        assert_eq!(p, Some(100.0));
        // No previous sample (zeros), or a counter going backwards: none.
        assert_eq!(
            cpu_percent(&cpu(10, 0, Some(2)), &ContainerCpuStats::default()),
            None
        );
        assert_eq!(cpu_percent(&cpu(1, 3, Some(2)), &cpu(2, 2, Some(2))), None);
        assert_eq!(cpu_percent(&cpu(2, 2, Some(2)), &cpu(1, 2, Some(2))), None);
    }

    #[test]
    fn memory_leaves_out_the_inactive_page_cache() {
        let mem = |usage, key: &str, cache| ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(HashMap::from([(key.to_owned(), cache)])),
            ..Default::default()
        };
        assert_eq!(
            memory_in_use(&mem(1000, "total_inactive_file", 300)),
            Some(700)
        );
        assert_eq!(memory_in_use(&mem(1000, "inactive_file", 300)), Some(700));
        assert_eq!(memory_in_use(&mem(1000, "inactive_file", 2000)), Some(1000));
        assert_eq!(memory_in_use(&mem(1000, "rss", 300)), Some(1000));
        assert_eq!(memory_in_use(&ContainerMemoryStats::default()), None);
    }

    #[test]
    fn free_disk_of_a_path() {
        assert!(free_bytes(Path::new("/")).is_some());
        assert_eq!(free_bytes(Path::new("/no/such/warren/path")), None);
    }
}
