//! The files both ends of the protocol keep their secrets in (keys,
//! credentials, the agent's joined state): written 0600 through a synced
//! temporary file renamed into place, so a crash never leaves half a key,
//! and read back as "absent" or "present", never as an empty default.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` (mode 0600) through a synced temporary file.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
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
        let _ = fs::remove_dir_all(&dir);
    }
}
