//! The last assignments a node was given, kept in a file so that its
//! replicas keep running and restarting while the control plane is away,
//! also across a restart of the process that runs them. Written 0600
//! through a synced temporary file renamed into place ([`warren_os::files`]).

use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use warren_os::files;
use warren_proto::assignment::Assignment;

/// What went wrong with the assignments file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssignmentsError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The file holds something warren did not write.
    #[error("{path}: not a warren assignments file (move it away to start afresh)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// The assignments as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAssignments {
    revision: u64,
    replicas: Vec<Assignment>,
}

/// Where a node's last assignments are kept (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentsFile {
    path: PathBuf,
}

impl AssignmentsFile {
    /// The file at `path` (its directory must exist).
    pub fn new(path: PathBuf) -> AssignmentsFile {
        AssignmentsFile { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored assignments and their revision, if any.
    pub fn load(&self) -> Result<Option<(u64, Vec<Assignment>)>, AssignmentsError> {
        let io_error = |error| AssignmentsError::Io {
            path: self.path.clone(),
            error,
        };
        let Some(bytes) = files::read_optional(&self.path).map_err(io_error)? else {
            return Ok(None);
        };
        serde_json::from_slice::<StoredAssignments>(&bytes)
            .map(|stored| Some((stored.revision, stored.replicas)))
            .map_err(|_| AssignmentsError::Malformed {
                path: self.path.clone(),
            })
    }

    /// Stores `replicas` at `revision`.
    pub fn save(&self, revision: u64, replicas: &[Assignment]) -> Result<(), AssignmentsError> {
        let stored = StoredAssignments {
            revision,
            replicas: replicas.to_vec(),
        };
        let io_error = |error| AssignmentsError::Io {
            path: self.path.clone(),
            error,
        };
        let text = serde_json::to_vec(&stored).map_err(|e| io_error(io::Error::other(e)))?;
        files::write_secret(&self.path, &text).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip_and_junk_is_malformed() {
        let root = std::env::temp_dir().join(format!("warren-assignments-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let file = AssignmentsFile::new(root.join("assignments.json"));
        assert!(file.load().unwrap().is_none());
        file.save(7, &[]).unwrap();
        assert_eq!(file.load().unwrap(), Some((7, Vec::new())));
        std::fs::write(file.path(), b"{not json").unwrap();
        assert!(matches!(
            file.load(),
            Err(AssignmentsError::Malformed { .. })
        ));
        let _ = std::fs::remove_dir_all(&root);
    }
}
