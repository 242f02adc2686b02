//! Files written whole: a temporary file renamed into place, so a reader or
//! a crash never sees half of one. Secrets (keys, credentials, the agent's
//! joined state) are 0600 and synced before the rename; status files, which
//! hold nothing secret and are rewritten every few seconds, are 0644 and
//! not synced (no fsync stalls, no flash wear). Files are read back as
//! "absent" or "present", never as an empty default. The directories that
//! hold them are made private when warren creates them, and are never
//! re-permissioned when they exist ([`private_dir`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Writes `bytes` to `path` (mode 0600) through a synced temporary file.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_whole(path, bytes, 0o600, true)
}

/// Writes `bytes` to `path` (mode 0644) through a temporary file, without
/// syncing: for files that are rewritten often and may be lost on a crash.
pub fn write_status(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_whole(path, bytes, 0o644, false)
}

fn write_whole(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    // A temporary file left from before (or put there by someone else)
    // keeps its own mode and owner: it is removed, and a fresh one made.
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    if sync {
        // The rename is durable once the directory is.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}

/// Why a data directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// It could not be created or looked at.
    #[error("{path}: {error}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        error: io::Error,
    },
    /// Anyone may write in it, so anyone could replace warren's keys.
    #[error("{path} is writable by every user (mode {mode:o}): make it 0700 (chmod 700) or use another directory")]
    WorldWritable {
        /// The directory.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It exists and is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(std::path::PathBuf),
}

/// Makes sure `dir` can hold warren's secrets: created (with any missing
/// parents) as 0700 when missing; an existing directory is used as it is,
/// never re-permissioned (`--data-dir /tmp` must not change /tmp), unless
/// anyone may write in it, which is refused. One readable by other users
/// is used (the secret files in it are 0600), and the caller may say so.
pub fn private_dir(dir: &Path) -> Result<(), DirError> {
    let io_error = |error| DirError::Io {
        path: dir.to_owned(),
        error,
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(DirError::NotADirectory(dir.to_owned())),
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            // World-writable without the sticky bit's protection either.
            if mode & 0o002 != 0 {
                return Err(DirError::WorldWritable {
                    path: dir.to_owned(),
                    mode,
                });
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error),
        Err(error) => Err(io_error(error)),
    }
}

/// The file's bytes, or `None` if there is no such file.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_stale_temporary_file_does_not_lend_its_mode_to_a_secret() {
        let dir = std::env::temp_dir().join(format!("warren-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        fs::write(dir.join("key.tmp"), b"old").unwrap();
        fs::set_permissions(dir.join("key.tmp"), fs::Permissions::from_mode(0o666)).unwrap();
        write_secret(&path, b"secret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn data_directories_are_made_private_and_existing_ones_left_alone() {
        let base = std::env::temp_dir().join(format!("warren-dirs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        // Missing: made 0700.
        let fresh = base.join("fresh").join("data");
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        // Existing and shared for reading: used, not changed.
        let shared = base.join("shared");
        fs::create_dir_all(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
        // Writable by anyone: refused, and left as it was.
        let open = base.join("open");
        fs::create_dir_all(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let refused = private_dir(&open).unwrap_err().to_string();
        assert!(
            refused.contains("writable by every user (mode 777)"),
            "{refused}"
        );
        assert_eq!(mode(&open), 0o777);
        // A file is not a directory.
        let file = base.join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            private_dir(&file),
            Err(DirError::NotADirectory(_))
        ));
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn secrets_are_private_and_absence_is_not_an_error() {
        let dir = std::env::temp_dir().join(format!("warren-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        assert_eq!(read_optional(&path).unwrap(), None);
        write_secret(&path, b"secret").unwrap();
        assert_eq!(read_optional(&path).unwrap(), Some(b"secret".to_vec()));
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join("key.tmp").exists());
        let status = dir.join("status.json");
        write_status(&status, b"{}").unwrap();
        assert_eq!(read_optional(&status).unwrap(), Some(b"{}".to_vec()));
        let _ = fs::remove_dir_all(&dir);
    }
}
