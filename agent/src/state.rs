//! What an agent keeps in its data directory (`DATA_DIR/agent/`, 0700):
//! its WireGuard key, and once joined, who it is and how to rejoin.
//!
//! ```text
//! wireguard.key   the node's WireGuard private key (base64)
//! agent.json      {"name","mesh_ip","mode","credential","control":[…],"cert_sha256"}
//! assignments.json the replicas the control plane last assigned (with its
//!                 revision): what the agent runs while it is away
//!                 ([`warren_runner::assignments`])
//! mesh.json       the mesh as the control plane last described it (the
//!                 welcome, kept current, without the credential): what the
//!                 agent starts from when the control plane is unreachable
//! ```
//!
//! Both are written 0600 through a synced temporary file renamed into place
//! ([`warren_os::files`]); `status.json`, the node's view for `warren
//! status`, is rewritten every few seconds without a sync.

use serde::{Deserialize, Serialize};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use warren_os::files;
use warren_proto::{Mode, Secret, Status, Welcome};
use warren_runner::assignments::AssignmentsFile;
use warren_wire::PrivateKey;

/// What went wrong with the data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The data directory cannot hold secrets.
    #[error(transparent)]
    Dir(#[from] warren_os::files::DirError),
    /// A file holds something warren did not write.
    #[error("{path}: not a {what} (move it away to start afresh)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// No randomness from the OS.
    #[error("the OS gave no random bytes")]
    Random,
}

/// The file the last assignments are kept in.
const ASSIGNMENTS_FILE: &str = "assignments.json";

/// The file the mesh map is kept in.
const MESH_FILE: &str = "mesh.json";

/// Who this node is, once joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The node's name.
    pub name: String,
    /// The node's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `direct` or `relay`.
    pub mode: Mode,
    /// The credential to rejoin with (base64url).
    pub credential: Secret,
    /// Where the control plane is.
    pub control: Vec<SocketAddr>,
    /// The control plane's certificate's SHA-256, hex.
    pub cert_sha256: String,
}

impl Joined {
    /// The state after `welcome`, joined as `mode` with `credential`.
    pub fn new(
        welcome: &Welcome,
        mode: Mode,
        credential: Secret,
        control: Vec<SocketAddr>,
        cert_sha256: [u8; 32],
    ) -> Joined {
        Joined {
            name: welcome.name.clone(),
            mesh_ip: welcome.mesh_ip,
            mode,
            credential,
            control,
            cert_sha256: hex::encode(cert_sha256),
        }
    }

    /// The pinned certificate's SHA-256.
    pub fn cert_sha256(&self) -> Result<[u8; 32], StateError> {
        let mut pin = [0u8; 32];
        hex::decode_to_slice(&self.cert_sha256, &mut pin).map_err(|_| StateError::Malformed {
            path: PathBuf::from("agent.json"),
            what: "certificate pin (64 hex digits)",
        })?;
        Ok(pin)
    }
}

/// The agent's data directory.
#[derive(Debug, Clone)]
pub struct AgentDir {
    dir: PathBuf,
}

impl AgentDir {
    /// Opens (creating) `data_dir/agent`.
    pub fn open(data_dir: &Path) -> Result<AgentDir, StateError> {
        let dir = data_dir.join("agent");
        warren_os::files::private_dir(data_dir)?;
        warren_os::files::private_dir(&dir)?;
        Ok(AgentDir { dir })
    }

    /// The node's WireGuard private key, created on first use.
    pub fn wireguard_key(&self) -> Result<PrivateKey, StateError> {
        let path = self.dir.join("wireguard.key");
        match read_optional(&path)? {
            Some(text) => PrivateKey::from_base64(&text).map_err(|_| StateError::Malformed {
                path,
                what: "WireGuard private key",
            }),
            None => {
                let key =
                    PrivateKey::from_bytes(warren_os::random().map_err(|_| StateError::Random)?);
                write_secret(&path, format!("{}\n", key.to_base64()).as_bytes())?;
                Ok(key)
            }
        }
    }

    /// Who this node is, if it has joined before.
    pub fn joined(&self) -> Result<Option<Joined>, StateError> {
        read_json(&self.dir.join("agent.json"), "warren agent state file")
    }

    /// Records this node's latest view, for `warren status`.
    pub fn save_status(&self, status: &Status) -> Result<(), StateError> {
        let path = self.dir.join(warren_proto::STATUS_FILE);
        let text = serde_json::to_string(status).map_err(|error| StateError::Io {
            path: path.clone(),
            error: io::Error::other(error),
        })?;
        files::write_status(&path, text.as_bytes()).map_err(|error| StateError::Io { path, error })
    }

    /// The stored mesh map, if there is one.
    pub fn mesh_map(&self) -> Result<Option<Welcome>, StateError> {
        read_json(&self.dir.join(MESH_FILE), "warren mesh map")
    }

    /// Stores the mesh map.
    pub fn save_mesh_map(&self, map: &Welcome) -> Result<(), StateError> {
        let path = self.dir.join(MESH_FILE);
        let text = serde_json::to_string(map).map_err(|error| StateError::Io {
            path: path.clone(),
            error: io::Error::other(error),
        })?;
        write_secret(&path, text.as_bytes())
    }

    /// Where the last assignments are kept, so replicas keep running
    /// across a restart while the control plane is away.
    pub fn assignments_file(&self) -> AssignmentsFile {
        AssignmentsFile::new(self.dir.join(ASSIGNMENTS_FILE))
    }

    /// Records who this node is.
    pub fn save_joined(&self, joined: &Joined) -> Result<(), StateError> {
        let path = self.dir.join("agent.json");
        let text = serde_json::to_string_pretty(joined).map_err(|error| StateError::Io {
            path: path.clone(),
            error: io::Error::other(error),
        })?;
        write_secret(&path, format!("{text}\n").as_bytes())
    }
}

/// The JSON in `path` (`what` it should hold, for the error), if the file
/// exists.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, StateError> {
    match read_optional(path)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|_| StateError::Malformed {
                path: path.to_owned(),
                what,
            }),
        None => Ok(None),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    let io_error = |error| StateError::Io {
        path: path.to_owned(),
        error,
    };
    match files::read_optional(path).map_err(io_error)? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StateError::Malformed {
                path: path.to_owned(),
                what: "text file",
            }),
        None => Ok(None),
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    files::write_secret(path, bytes).map_err(|error| StateError::Io {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_key_is_made_once_and_the_joined_state_round_trips() {
        let root = std::env::temp_dir().join(format!("warren-agent-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = AgentDir::open(&root).unwrap();
        let key = dir.wireguard_key().unwrap();
        assert_eq!(dir.wireguard_key().unwrap(), key);
        assert_eq!(dir.joined().unwrap(), None);
        let joined = Joined {
            name: "pi".to_owned(),
            mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
            mode: Mode::Relay,
            credential: Secret([5; 32]),
            control: vec!["203.0.113.1:7443".parse().unwrap()],
            cert_sha256: "ab".repeat(32),
        };
        dir.save_joined(&joined).unwrap();
        let text = fs::read_to_string(root.join("agent/agent.json")).unwrap();
        assert!(text.contains(r#""mode": "relay""#), "{text}");
        let read = AgentDir::open(&root).unwrap().joined().unwrap().unwrap();
        assert_eq!(read, joined);
        assert_eq!(read.cert_sha256().unwrap(), [0xab; 32]);
        let _ = fs::remove_dir_all(&root);
    }
}
