//! Join tokens as the control plane keeps them: issued with a lifetime and a
//! number of uses, stored as the SHA-256 of their secret (a leaked database
//! admits no one), redeemed only while unexpired, unrevoked and not used up.
//!
//! Pure: the clock and the randomness come in as arguments; the store runs
//! [`TokenRecord::check`] and the use count update in one transaction.

use ring::digest::{digest, SHA256};
use std::time::Duration;

/// A token's lifetime when none is given (`warren token create`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// How many joins a token admits when not told otherwise.
pub const DEFAULT_USES: u32 = 1;

/// The longest lifetime a token may be given (a year).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// One issued token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id.
    pub id: [u8; 8],
    /// SHA-256 of its secret.
    pub secret_sha256: [u8; 32],
    /// When it was issued, unix seconds.
    pub created: u64,
    /// When it stops working, unix seconds.
    pub expires: u64,
    /// How many joins it admits.
    pub uses: u32,
    /// How many it has admitted.
    pub used: u32,
    /// Whether an admin revoked it.
    pub revoked: bool,
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// It admits joins.
    Active,
    /// Its lifetime is over.
    Expired,
    /// It admitted as many joins as it was issued for.
    UsedUp,
    /// An admin revoked it.
    Revoked,
}

impl TokenState {
    /// The word `warren token list` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::UsedUp => "used",
            TokenState::Revoked => "revoked",
        }
    }
}

/// Why a token does not admit a join. The messages are what `warren join`
/// prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefused {
    /// No token has this id, or the secret does not match it.
    #[error(
        "the join token is not valid for this control plane (mistyped, or from another cluster)"
    )]
    Unknown,
    /// Past its expiry.
    #[error("the join token expired; create a new one with `warren token create`")]
    Expired,
    /// Revoked by an admin.
    #[error("the join token was revoked; create a new one with `warren token create`")]
    Revoked,
    /// No uses left.
    #[error("the join token was already used ({uses} of {uses} uses); create a new one with `warren token create --uses N`")]
    UsedUp {
        /// How many uses it had.
        uses: u32,
    },
}

/// Why a token cannot be issued as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// A zero lifetime, or longer than [`MAX_TTL`].
    #[error("a token's --ttl must be between 1s and 365d")]
    Ttl,
    /// Zero uses.
    #[error("a token's --uses must be at least 1")]
    Uses,
}

impl TokenRecord {
    /// A new token issued at `now` (unix seconds) from `random` bytes (8 for
    /// the id, 32 for the secret); returns the record to store and the
    /// secret to hand out once.
    pub fn issue(
        now: u64,
        ttl: Duration,
        uses: u32,
        random: [u8; 40],
    ) -> Result<(TokenRecord, [u8; 32]), IssueError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(IssueError::Ttl);
        }
        if uses == 0 {
            return Err(IssueError::Uses);
        }
        let (id, secret) = random.split_at(8);
        let id: [u8; 8] = id.try_into().map_err(|_| IssueError::Uses)?;
        let secret: [u8; 32] = secret.try_into().map_err(|_| IssueError::Uses)?;
        let record = TokenRecord {
            id,
            secret_sha256: secret_sha256(&secret),
            created: now,
            expires: now.saturating_add(ttl.as_secs().max(1)),
            uses,
            used: 0,
            revoked: false,
        };
        Ok((record, secret))
    }

    /// The id as `warren token list` shows it.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Where the token stands at `now`. Revocation shows first, then use,
    /// then expiry.
    pub fn state(&self, now: u64) -> TokenState {
        if self.revoked {
            TokenState::Revoked
        } else if self.used >= self.uses {
            TokenState::UsedUp
        } else if now >= self.expires {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// Whether `secret` may join at `now`. The secret is compared by hash,
    /// so the comparison's timing tells nothing about the secret.
    pub fn check(&self, secret: &[u8; 32], now: u64) -> Result<(), TokenRefused> {
        if secret_sha256(secret) != self.secret_sha256 {
            return Err(TokenRefused::Unknown);
        }
        match self.state(now) {
            TokenState::Active => Ok(()),
            TokenState::Expired => Err(TokenRefused::Expired),
            TokenState::Revoked => Err(TokenRefused::Revoked),
            TokenState::UsedUp => Err(TokenRefused::UsedUp { uses: self.uses }),
        }
    }
}

/// SHA-256 of a token secret.
pub fn secret_sha256(secret: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, secret).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_token_admits_its_uses_until_it_expires_or_is_revoked() {
        let (mut record, secret) =
            TokenRecord::issue(1000, Duration::from_secs(60), 2, [7; 40]).unwrap();
        assert_ne!(record.secret_sha256, secret, "only the hash is stored");
        assert_eq!(record.check(&secret, 1000), Ok(()));
        assert_eq!(record.check(&[0; 32], 1000), Err(TokenRefused::Unknown));
        record.used = 2;
        assert_eq!(
            record.check(&secret, 1001),
            Err(TokenRefused::UsedUp { uses: 2 })
        );
        record.used = 1;
        assert_eq!(record.check(&secret, 1060), Err(TokenRefused::Expired));
        record.revoked = true;
        assert_eq!(record.check(&secret, 1001), Err(TokenRefused::Revoked));
        assert_eq!(record.state(1001).as_str(), "revoked");
    }

    #[test]
    fn nonsense_lifetimes_and_uses_are_refused() {
        assert_eq!(
            TokenRecord::issue(0, Duration::ZERO, 1, [0; 40]).unwrap_err(),
            IssueError::Ttl
        );
        assert_eq!(
            TokenRecord::issue(0, MAX_TTL + Duration::from_secs(1), 1, [0; 40]).unwrap_err(),
            IssueError::Ttl
        );
        assert_eq!(
            TokenRecord::issue(0, DEFAULT_TTL, 0, [0; 40]).unwrap_err(),
            IssueError::Uses
        );
    }

    proptest! {
        /// A token admits exactly the secret it was issued with, exactly
        /// while active.
        #[test]
        fn only_the_issued_secret_of_an_active_token_passes(
            random in any::<[u8; 40]>(),
            other in any::<[u8; 32]>(),
            ttl in 1u64..100_000,
            uses in 1u32..5,
            used in 0u32..6,
            revoked in any::<bool>(),
            at in 0u64..200_000,
        ) {
            let (mut record, secret) =
                TokenRecord::issue(1000, Duration::from_secs(ttl), uses, random).unwrap();
            record.used = used;
            record.revoked = revoked;
            let now = 1000 + at;
            let active = !revoked && used < uses && now < 1000 + ttl;
            prop_assert_eq!(record.check(&secret, now).is_ok(), active);
            prop_assert_eq!(record.state(now) == TokenState::Active, active);
            if other != secret {
                prop_assert_eq!(record.check(&other, now), Err(TokenRefused::Unknown));
            }
        }
    }
}
