//! What an agent keeps in its data directory (`DATA_DIR/agent/`, 0700):
//! its WireGuard key, and once joined, who it is and how to rejoin.
//!
//! ```text
//! wireguard.key   the node's WireGuard private key (base64)
//! agent.json      {"name","mesh_ip","mode","credential","control":[…],"cert_sha256"}
//! ```
//!
//! Both are written 0600 through a synced temporary file renamed into place
//! ([`warren_proto::files`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use warren_proto::files;

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

/// Who this node is, once joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `direct` or `relay`.
    pub mode: String,
    /// The credential to rejoin with (base64url).
    pub credential: String,
    /// Where the control plane is.
    pub control: Vec<SocketAddr>,
    /// Its certificate's SHA-256, hex.
    pub cert_sha256: String,
}

/// The agent's data directory.
pub struct AgentDir {
    dir: PathBuf,
}

impl AgentDir {
    /// Opens (creating) `data_dir/agent`.
    pub fn open(data_dir: &Path) -> Result<AgentDir, StateError> {
        let dir = data_dir.join("agent");
        let io_error = |error| StateError::Io {
            path: dir.clone(),
            error,
        };
        fs::create_dir_all(&dir).map_err(io_error)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_error)?;
        Ok(AgentDir { dir })
    }

    /// The node's WireGuard private key, created on first use.
    pub fn wireguard_key(&self) -> Result<[u8; 32], StateError> {
        let path = self.dir.join("wireguard.key");
        match read_optional(&path)? {
            Some(text) => STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(StateError::Malformed {
                    path,
                    what: "WireGuard private key",
                }),
            None => {
                let mut key = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                    .map_err(|_| StateError::Random)?;
                write_secret(&path, format!("{}\n", STANDARD.encode(key)).as_bytes())?;
                Ok(key)
            }
        }
    }

    /// Who this node is, if it has joined before.
    pub fn joined(&self) -> Result<Option<Joined>, StateError> {
        let path = self.dir.join("agent.json");
        match read_optional(&path)? {
            Some(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|_| StateError::Malformed {
                        path,
                        what: "warren agent state file",
                    })
            }
            None => Ok(None),
        }
    }

    /// Records this node's latest view, for `warren status`.
    pub fn save_status(&self, status: &warren_proto::Status) -> Result<(), StateError> {
        let path = self.dir.join(warren_proto::STATUS_FILE);
        let text = serde_json::to_string(status).map_err(|error| StateError::Io {
            path: path.clone(),
            error: io::Error::other(error),
        })?;
        write_secret(&path, text.as_bytes())
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
            mode: "relay".to_owned(),
            credential: "c2VjcmV0".to_owned(),
            control: vec!["203.0.113.1:7443".parse().unwrap()],
            cert_sha256: "00".repeat(32),
        };
        dir.save_joined(&joined).unwrap();
        assert_eq!(
            AgentDir::open(&root).unwrap().joined().unwrap(),
            Some(joined)
        );
        let _ = fs::remove_dir_all(&root);
    }
}
