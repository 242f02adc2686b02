//! The control plane's own paths, measured every few seconds as agents
//! measure theirs: for `warren mesh` (under the name `control`) and in
//! `DATA_DIR/status.json` for `warren status`.

use crate::cluster::Cluster;
use crate::nodes::CONTROL_NAME;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use warren_device::paths;
use warren_device::DeviceHandle;
use warren_proto::{Report, Status, StatusOf};
use warren_wire::PublicKey;

/// How often the control plane measures its own paths.
const INTERVAL: Duration = Duration::from_secs(5);

/// Measures and records until the task is aborted.
pub async fn run(
    cluster: Cluster,
    device: DeviceHandle,
    relays: Vec<SocketAddr>,
    me: StatusOf,
    status_path: PathBuf,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let Ok(nodes) = cluster
            .with(|state| {
                state
                    .registry()
                    .nodes()
                    .map(|n| (n.public_key, (n.name.clone(), n.mesh_ip)))
                    .collect::<HashMap<PublicKey, (String, Ipv4Addr)>>()
            })
            .await
        else {
            return;
        };
        let mesh_ips = nodes.iter().map(|(key, (_, ip))| (*key, *ip)).collect();
        let Ok(paths) = paths::measure(&device, &relays, &mesh_ips).await else {
            continue;
        };
        let report = Report {
            paths,
            candidates: Vec::new(),
        };
        let status = Status::from_report(
            &me,
            &report,
            |key| nodes.get(key).cloned(),
            true,
            warren_os::unix_now(),
        );
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|bytes| warren_os::files::write_status(&status_path, &bytes));
        if let Err(error) = written {
            tracing::warn!(%error, path = %status_path.display(), "writing the status file");
        }
        let at = SystemTime::now();
        if cluster
            .with(move |state| state.record_report(CONTROL_NAME, report, at))
            .await
            .is_err()
        {
            return;
        }
    }
}
