//! Randomness from the operating system (through ring), for keys, secrets,
//! credentials and the seeds the sans-IO cores take.

use ring::rand::{SecureRandom as _, SystemRandom};

/// The operating system gave no randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// `N` random bytes.
pub fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let (a, b) = (random::<32>().unwrap(), random::<32>().unwrap());
        assert_ne!(a, b);
    }
}
