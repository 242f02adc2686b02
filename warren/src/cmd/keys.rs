//! `warren genkey` and `warren pubkey`: WireGuard keys in wg(8)'s format.

use anyhow::{bail, Context, Result};
use boringtun::x25519::{PublicKey, StaticSecret};
use std::io::{Read, Write};
use warren_mesh::PeerKey;

/// Prints a fresh private key.
pub fn genkey() -> Result<()> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // Clamp as wg(8) does, so the printed key is the canonical form.
    bytes[0] &= 248;
    bytes[31] = (bytes[31] & 127) | 64;
    println!("{}", PeerKey(bytes).to_base64());
    Ok(())
}

/// Reads a private key on stdin and prints the matching public key.
pub fn pubkey() -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .context("reading the private key from stdin")?;
    let Ok(private) = PeerKey::from_base64(text.trim()) else {
        bail!("stdin is not a base64 WireGuard private key (as printed by `warren genkey`)");
    };
    let public = PublicKey::from(&StaticSecret::from(private.0));
    writeln!(std::io::stdout(), "{}", PeerKey::from(public)).context("writing stdout")?;
    Ok(())
}
