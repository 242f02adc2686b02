//! Per-container CPU and memory for `warren ps`: a task of its own samples
//! the daemon's stats for every running replica (each sample takes the
//! daemon about a second, so the converging loop never waits for one) and
//! publishes the latest figures, keyed by container id.

use crate::runtime::{ContainerStatus, ContainerUsage, Runtime};
use futures::future::join_all;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// How often the replicas' usage is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The latest usage of each running replica's container.
pub type Usage = HashMap<String, ContainerUsage>;

/// Samples every [`SAMPLE_EVERY`] until every receiver of `usage` is gone.
pub async fn sample(runtime: Runtime, usage: watch::Sender<Usage>) {
    loop {
        match runtime.list_ours().await {
            Ok(containers) => {
                let running: Vec<String> = containers
                    .into_iter()
                    .filter(|c| c.status == ContainerStatus::Running)
                    .map(|c| c.id)
                    .collect();
                let samples = join_all(running.iter().map(|id| runtime.container_stats(id))).await;
                let latest: Usage = running
                    .into_iter()
                    .zip(samples)
                    .filter_map(|(id, sample)| match sample {
                        Ok(sample) => Some((id, sample)),
                        Err(error) => {
                            tracing::debug!(container = %id, %error, "no usage sample");
                            None
                        }
                    })
                    .collect();
                if usage.send(latest).is_err() {
                    return;
                }
            }
            Err(error) => tracing::debug!(%error, "listing replicas for their usage"),
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// CPU in millicores, as reports carry it, from the daemon's percent of
/// one core.
pub fn cpu_millis(usage: &ContainerUsage) -> Option<u64> {
    usage
        .cpu_percent
        .filter(|p| p.is_finite() && *p >= 0.0)
        .map(|p| (p * 10.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_core_is_a_thousand_millicores_and_nonsense_is_none() {
        let usage = |cpu_percent| ContainerUsage {
            cpu_percent,
            memory_bytes: None,
            memory_limit: None,
        };
        assert_eq!(cpu_millis(&usage(Some(100.0))), Some(1000));
        assert_eq!(cpu_millis(&usage(Some(2.54))), Some(25));
        assert_eq!(cpu_millis(&usage(Some(f64::NAN))), None);
        assert_eq!(cpu_millis(&usage(Some(-1.0))), None);
        assert_eq!(cpu_millis(&usage(None)), None);
    }
}
