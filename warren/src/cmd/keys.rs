//! `warren genkey` and `warren pubkey`: WireGuard keys in wg(8)'s format.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use warren_wire::PrivateKey;

/// Prints a fresh private key.
pub fn genkey() -> Result<()> {
    let mut bytes = warren_os::random::<32>()?;
    // Clamp as wg(8) does, so the printed key is the canonical form.
    bytes[0] &= 248;
    bytes[31] = (bytes[31] & 127) | 64;
    println!("{}", PrivateKey::from_bytes(bytes).to_base64());
    Ok(())
}

/// Reads a private key on stdin and prints the matching public key.
pub fn pubkey() -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .context("reading the private key from stdin")?;
    let Ok(private) = PrivateKey::from_base64(&text) else {
        bail!("stdin is not a base64 WireGuard private key (as printed by `warren genkey`)");
    };
    writeln!(std::io::stdout(), "{}", private.public_key()).context("writing stdout")?;
    Ok(())
}
