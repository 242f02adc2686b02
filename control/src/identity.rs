//! The control plane's identities, kept in its data directory and created
//! on first start: the TLS certificate agents pin (through the join token),
//! the WireGuard key of its own mesh device, the Ed25519 key that signs
//! relay tickets, and the admin credential the CLI presents.
//!
//! ```text
//! DATA_DIR/            (0700)
//!   admin.token        the admin credential (base64url); `warren token …` reads it
//!   tls.key, tls.crt   the QUIC endpoint's key and self-signed certificate (DER)
//!   wireguard.key      the control plane's WireGuard private key (base64)
//!   relay-signing.key  the ticket-signing seed (base64, as `warren relay keygen` prints)
//!   state.db           the SQLite state (see `store`)
//! ```
//!
//! Secret files are written 0600, through a temporary file renamed into
//! place, so a crash never leaves half a key ([`warren_proto::files`]).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warren_os::files;
use warren_relay_proto::{ControlKey, SigningKey};
use warren_wire::PrivateKey;

/// The admin credential's file name in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// What went wrong with the data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file or the directory could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, so not a separate cause).
        error: io::Error,
    },
    /// The data directory cannot hold secrets.
    #[error(transparent)]
    Dir(#[from] warren_os::files::DirError),
    /// A file holds something else than what warren writes there.
    #[error("{path}: not a {what} (move it away to have a new one created)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// No randomness from the OS.
    #[error("the OS gave no random bytes")]
    Random,
    /// The certificate could not be generated.
    #[error("generating the TLS certificate: {0}")]
    Certificate(String),
}

/// Everything the control plane is, loaded from its data directory.
pub struct Identity {
    /// The data directory.
    pub dir: PathBuf,
    /// The admin credential.
    pub admin_token: String,
    /// The QUIC endpoint's certificate, DER.
    pub tls_cert: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub tls_key: Vec<u8>,
    /// The mesh device's WireGuard private key.
    pub wireguard_key: PrivateKey,
    /// The key that signs relay tickets.
    pub signing_key: Arc<SigningKey>,
}

impl Identity {
    /// Loads the identities in `dir`, creating the directory (0700) and
    /// whatever is missing; an existing directory keeps its mode, and one
    /// anyone may write in is refused.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        warren_os::files::private_dir(dir)?;

        let admin_path = dir.join(ADMIN_TOKEN_FILE);
        let admin_token = match read_optional(&admin_path)? {
            Some(text) => {
                let token = text.trim().to_owned();
                if URL_SAFE_NO_PAD.decode(&token).map(|b| b.len()) != Ok(32) {
                    return Err(malformed(&admin_path, "admin credential"));
                }
                token
            }
            None => {
                let token = URL_SAFE_NO_PAD.encode(random::<32>()?);
                write_secret(&admin_path, format!("{token}\n").as_bytes())?;
                token
            }
        };

        let wireguard_key = PrivateKey::from_bytes(load_key(
            &dir.join("wireguard.key"),
            "WireGuard private key",
        )?);
        let signing_path = dir.join("relay-signing.key");
        let signing_key = SigningKey::from_seed(&load_key(&signing_path, "ticket-signing key")?)
            .map_err(|_| malformed(&signing_path, "ticket-signing key"))?;

        let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
        let (tls_cert, tls_key) = match (read_bytes(&cert_path)?, read_bytes(&key_path)?) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let (cert, key) = self_signed_certificate()?;
                write_secret(&key_path, &key)?;
                write_secret(&cert_path, &cert)?;
                (cert, key)
            }
        };
        Ok(Identity {
            dir: dir.to_owned(),
            admin_token,
            tls_cert,
            tls_key,
            wireguard_key,
            signing_key: Arc::new(signing_key),
        })
    }

    /// The public key relays verify tickets with (`warren relay --control-key`).
    pub fn control_key(&self) -> ControlKey {
        self.signing_key.control_key()
    }

    /// SHA-256 of the certificate: what join tokens pin.
    pub fn cert_sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &self.tls_cert).as_ref());
        out
    }

    /// The state database's path.
    pub fn database(&self) -> PathBuf {
        self.dir.join("state.db")
    }
}

/// Reads the admin credential `warren serve` wrote into `dir`.
pub fn read_admin_token(dir: &Path) -> Result<String, IdentityError> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    match read_optional(&path)? {
        Some(text) => Ok(text.trim().to_owned()),
        None => Err(IdentityError::Io {
            path,
            error: io::Error::new(
                io::ErrorKind::NotFound,
                "no admin credential here: is this the data directory of `warren serve` (--data-dir)?",
            ),
        }),
    }
}

fn malformed(path: &Path, what: &'static str) -> IdentityError {
    IdentityError::Malformed {
        path: path.to_owned(),
        what,
    }
}

fn random<const N: usize>() -> Result<[u8; N], IdentityError> {
    warren_os::random().map_err(|_| IdentityError::Random)
}

/// A 32-byte key stored as base64 at `path`, created at random if missing.
fn load_key(path: &Path, what: &'static str) -> Result<[u8; 32], IdentityError> {
    match read_optional(path)? {
        Some(text) => STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| malformed(path, what)),
        None => {
            let key = random::<32>()?;
            write_secret(path, format!("{}\n", STANDARD.encode(key)).as_bytes())?;
            Ok(key)
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, IdentityError> {
    match read_bytes(path)? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| malformed(path, "text file")),
        None => Ok(None),
    }
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, IdentityError> {
    files::read_optional(path).map_err(|error| IdentityError::Io {
        path: path.to_owned(),
        error,
    })
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    files::write_secret(path, bytes).map_err(|error| IdentityError::Io {
        path: path.to_owned(),
        error,
    })
}

/// A self-signed certificate for the QUIC endpoint. Agents do not check
/// its names or chain: they pin its SHA-256 from the join token.
fn self_signed_certificate() -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
    let certified = rcgen::generate_simple_self_signed(vec!["warren-control".to_owned()])
        .map_err(|error| IdentityError::Certificate(error.to_string()))?;
    Ok((
        certified.cert.der().to_vec(),
        certified.signing_key.serialize_der(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identities_are_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("warren-identity-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = Identity::load_or_create(&dir).unwrap();
        let again = Identity::load_or_create(&dir).unwrap();
        assert_eq!(first.admin_token, again.admin_token);
        assert_eq!(first.wireguard_key, again.wireguard_key);
        assert_eq!(first.cert_sha256(), again.cert_sha256());
        assert_eq!(first.control_key(), again.control_key());
        assert_eq!(read_admin_token(&dir).unwrap(), first.admin_token);
        let mode = fs::metadata(dir.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        fs::write(dir.join("wireguard.key"), "not a key\n").unwrap();
        let refused = Identity::load_or_create(&dir).err().unwrap();
        assert!(refused.to_string().contains("wireguard.key"), "{refused}");
        let _ = fs::remove_dir_all(&dir);
    }
}
