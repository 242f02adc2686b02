//! Engine API version negotiation, sans-IO: which version warren speaks to
//! a daemon, given what the daemon's unversioned `GET /version` reported,
//! and the `/vMAJOR.MINOR` prefix that pins every request to it.
//!
//! A Docker daemon serves a request without a prefix at its own newest API
//! version, refuses one below its `MinAPIVersion` ("client version 1.41 is
//! too old") and one above its `ApiVersion` ("too new"). warren asks
//! `/version` without a prefix, speaks `min(MAX_SUPPORTED, ApiVersion)`
//! and refuses a daemon whose range does not meet
//! [`MIN_SUPPORTED`]`..=`[`MAX_SUPPORTED`] (docs/workloads.md).

use std::fmt;
use std::str::FromStr;

/// The oldest Engine API warren speaks: Docker 20.10's (Debian's
/// `docker.io`, the lab's daemon). One-shot stats need 1.41.
pub const MIN_SUPPORTED: ApiVersion = ApiVersion::new(1, 41);

/// The newest Engine API warren speaks: the one bollard 0.21.1's models
/// describe (Docker 29.x). A newer daemon is spoken to at this version.
pub const MAX_SUPPORTED: ApiVersion = ApiVersion::new(1, 53);

/// An Engine API version, `MAJOR.MINOR` (`1.41`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// The major version (1 for every Engine API so far).
    pub major: u16,
    /// The minor version.
    pub minor: u16,
}

impl ApiVersion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<ApiVersion, VersionError> {
        let malformed = || VersionError::Malformed(text.chars().take(32).collect());
        let (major, minor) = text.split_once('.').ok_or_else(malformed)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            part.parse::<u16>().map_err(|_| malformed())
        };
        Ok(ApiVersion::new(number(major)?, number(minor)?))
    }
}

/// Why warren cannot talk to a daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The daemon reported a version that is not `MAJOR.MINOR`.
    #[error("the Docker daemon reported API version {0:?}, not MAJOR.MINOR")]
    Malformed(String),
    /// The daemon's `/version` has no `ApiVersion`.
    #[error("the Docker daemon's /version has no ApiVersion")]
    Missing,
    /// The daemon's newest API is older than warren's oldest.
    #[error(
        "the Docker daemon's newest Engine API is {daemon}, older than {oldest}, the oldest \
         warren speaks: upgrade Docker on this node"
    )]
    DaemonTooOld {
        /// The daemon's `ApiVersion`.
        daemon: ApiVersion,
        /// [`MIN_SUPPORTED`].
        oldest: ApiVersion,
    },
    /// The daemon refuses every API warren speaks.
    #[error(
        "the Docker daemon refuses Engine APIs older than {daemon_min}, and warren speaks at \
         most {newest}: upgrade warren (or lower the daemon's DOCKER_MIN_API_VERSION)"
    )]
    DaemonTooNew {
        /// The daemon's `MinAPIVersion`.
        daemon_min: ApiVersion,
        /// [`MAX_SUPPORTED`].
        newest: ApiVersion,
    },
    /// The daemon's minimum is above its maximum.
    #[error("the Docker daemon reported MinAPIVersion {min} above its ApiVersion {max}")]
    Inconsistent {
        /// `MinAPIVersion`.
        min: ApiVersion,
        /// `ApiVersion`.
        max: ApiVersion,
    },
}

/// The outcome of a negotiation: the daemon's range and what warren speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The version every request is pinned to.
    pub speak: ApiVersion,
    /// The daemon's newest (`ApiVersion`).
    pub daemon_max: ApiVersion,
    /// The daemon's oldest (`MinAPIVersion`), when it says.
    pub daemon_min: Option<ApiVersion>,
}

/// The version to speak to a daemon whose `/version` said `api_version`
/// (`ApiVersion`, its newest) and `min_api_version` (`MinAPIVersion`;
/// absent on very old daemons, read as no lower bound):
/// `min(MAX_SUPPORTED, ApiVersion)`, if the daemon accepts it and it is at
/// least [`MIN_SUPPORTED`].
pub fn negotiate(
    api_version: Option<&str>,
    min_api_version: Option<&str>,
) -> Result<Negotiated, VersionError> {
    let max: ApiVersion = api_version.ok_or(VersionError::Missing)?.parse()?;
    let min: Option<ApiVersion> = min_api_version.map(str::parse).transpose()?;
    if let Some(min) = min {
        if min > max {
            return Err(VersionError::Inconsistent { min, max });
        }
        if min > MAX_SUPPORTED {
            return Err(VersionError::DaemonTooNew {
                daemon_min: min,
                newest: MAX_SUPPORTED,
            });
        }
    }
    if max < MIN_SUPPORTED {
        return Err(VersionError::DaemonTooOld {
            daemon: max,
            oldest: MIN_SUPPORTED,
        });
    }
    Ok(Negotiated {
        speak: max.min(MAX_SUPPORTED),
        daemon_max: max,
        daemon_min: min,
    })
}

/// `path_and_query` (`/containers/json?all=true`) with any `/vX.Y` prefix
/// removed and, if `version` is given, `/v{version}` put in front: the
/// same result whether the client sent a prefix (bollard after #737) or
/// not (bollard 0.21.1, bollard#736).
pub fn versioned_path(path_and_query: &str, version: Option<ApiVersion>) -> String {
    let rest = strip_version_prefix(path_and_query);
    let slash = if rest.starts_with('/') { "" } else { "/" };
    match version {
        Some(v) => format!("/v{v}{slash}{rest}"),
        None => format!("{slash}{rest}"),
    }
}

/// `path` without a leading `/vMAJOR.MINOR` segment (only when a `/`, a
/// `?` or the end follows it: `/version` keeps its name). What is left may
/// be empty or start with `?`.
fn strip_version_prefix(path: &str) -> &str {
    let Some(after_v) = path.strip_prefix("/v") else {
        return path;
    };
    let end = after_v.find(['/', '?']).unwrap_or(after_v.len());
    let (segment, rest) = after_v.split_at(end);
    if segment.parse::<ApiVersion>().is_err() {
        return path;
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("1.41".parse(), Ok(ApiVersion::new(1, 41)));
        assert_eq!(ApiVersion::new(1, 53).to_string(), "1.53");
        for bad in [
            "", "1", "1.", ".41", "1.41.0", "v1.41", "1.4x", "+1.41", "1.99999",
        ] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad:?}");
        }
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
    }

    #[test]
    fn speaks_the_lab_daemons_version() {
        // docker.io 20.10: ApiVersion 1.41, MinAPIVersion 1.12.
        assert_eq!(
            negotiate(Some("1.41"), Some("1.12")),
            Ok(Negotiated {
                speak: ApiVersion::new(1, 41),
                daemon_max: ApiVersion::new(1, 41),
                daemon_min: Some(ApiVersion::new(1, 12)),
            })
        );
    }

    #[test]
    fn speaks_a_modern_daemons_version_within_its_range() {
        // Docker 29.0: ApiVersion 1.52, MinAPIVersion 1.44.
        let speak = |max, min| negotiate(Some(max), min).map(|n| n.speak);
        assert_eq!(speak("1.52", Some("1.44")), Ok(ApiVersion::new(1, 52)));
        // A daemon newer than warren: warren's newest, if the daemon takes it.
        assert_eq!(speak("1.60", Some("1.44")), Ok(MAX_SUPPORTED));
        assert_eq!(speak("1.60", None), Ok(MAX_SUPPORTED));
        // Exactly at either end.
        assert_eq!(speak("1.53", Some("1.53")), Ok(MAX_SUPPORTED));
        assert_eq!(speak("1.41", None), Ok(MIN_SUPPORTED));
    }

    #[test]
    fn refuses_daemons_outside_the_range() {
        assert_eq!(
            negotiate(Some("1.40"), Some("1.12")),
            Err(VersionError::DaemonTooOld {
                daemon: ApiVersion::new(1, 40),
                oldest: MIN_SUPPORTED
            })
        );
        let too_new = negotiate(Some("1.70"), Some("1.60"));
        assert_eq!(
            too_new,
            Err(VersionError::DaemonTooNew {
                daemon_min: ApiVersion::new(1, 60),
                newest: MAX_SUPPORTED
            })
        );
        let message = too_new.map_err(|e| e.to_string()).unwrap_err();
        assert!(
            message.contains("1.60") && message.contains("1.53"),
            "{message}"
        );
        assert_eq!(negotiate(None, Some("1.12")), Err(VersionError::Missing));
        assert!(matches!(
            negotiate(Some("1.44"), Some("1.52")),
            Err(VersionError::Inconsistent { .. })
        ));
        assert!(matches!(
            negotiate(Some("latest"), None),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(Some("1.41"), Some("x")),
            Err(VersionError::Malformed(_))
        ));
    }

    #[test]
    fn pins_unversioned_and_versioned_paths_alike() {
        let v = Some(ApiVersion::new(1, 41));
        // bollard 0.21.1 sends no prefix; a bollard with #737 sends its own.
        for sent in [
            "/containers/json?all=true",
            "/v1.53/containers/json?all=true",
        ] {
            assert_eq!(versioned_path(sent, v), "/v1.41/containers/json?all=true");
        }
        assert_eq!(versioned_path("/version", v), "/v1.41/version");
        assert_eq!(versioned_path("/v1.41/version", v), "/v1.41/version");
    }

    #[test]
    fn unpins_for_the_probe() {
        assert_eq!(versioned_path("/version", None), "/version");
        assert_eq!(versioned_path("/v1.53/version", None), "/version");
        assert_eq!(versioned_path("/v1.53", None), "/");
        assert_eq!(versioned_path("/v1.53?x=1", None), "/?x=1");
        // Not a version segment: left alone.
        assert_eq!(versioned_path("/volumes", None), "/volumes");
        assert_eq!(versioned_path("/vx.y/containers", None), "/vx.y/containers");
    }
}
