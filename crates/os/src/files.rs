//! Files written whole: a temporary file renamed into place, so a reader or
//! a crash never sees half of one. Secrets (keys, credentials, the agent's
//! joined state) are 0600 and synced before the rename; status files, which
//! hold nothing secret and are rewritten every few seconds, are 0644 and
//! not synced (no fsync stalls, no flash wear). Files are read back as
//! "absent" or "present", never as an empty default.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
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
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    fs::rename(&temporary, path)
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
