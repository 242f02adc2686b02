//! The two facts the proxy needs from an X.509 certificate and rustls does
//! not expose: when it expires and which DNS names it covers. A small DER
//! reader over the certificate's outer structure (RFC 5280 §4.1); anything
//! it does not expect is `None`, never a panic.

/// What the proxy reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The end of its validity, unix seconds.
    pub not_after: u64,
    /// Its subject alternative names of type DNS, as written (`*.example.com` too).
    pub dns_names: Vec<String>,
}

/// The facts of the DER certificate `der`, or `None` if it is not one.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional; then the serial number.
    if rest.first() == Some(&VERSION) {
        rest = element(rest)?.2;
    }
    rest = expect(rest, INTEGER)?.1;
    rest = expect(rest, SEQUENCE)?.1; // signature algorithm
    rest = expect(rest, SEQUENCE)?.1; // issuer
    let (validity, after_validity) = expect(rest, SEQUENCE)?;
    rest = after_validity;
    let (_, _, after_not_before) = element(validity)?;
    let (time_tag, not_after, _) = element(after_not_before)?;
    let not_after = parse_time(time_tag, not_after)?;
    rest = expect(rest, SEQUENCE)?.1; // subject
    rest = expect(rest, SEQUENCE)?.1; // subject public key info
    let mut dns_names = Vec::new();
    while !rest.is_empty() {
        let (tag, contents, next) = element(rest)?;
        rest = next;
        if tag == EXTENSIONS {
            dns_names = san_dns_names(contents)?;
        }
    }
    Some(CertFacts {
        not_after,
        dns_names,
    })
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
const DNS_NAME: u8 = 0x82;
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11];

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an element that must have `tag`, and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(input)?;
    (found == tag).then_some((contents, rest))
}

/// The DNS names of the subjectAltName extension among `extensions`
/// (`[3] EXPLICIT SEQUENCE OF Extension`); none without one.
fn san_dns_names(extensions: &[u8]) -> Option<Vec<String>> {
    let (mut list, _) = expect(extensions, SEQUENCE)?;
    while !list.is_empty() {
        let (extension, next) = expect(list, SEQUENCE)?;
        list = next;
        let (oid, mut rest) = expect(extension, OID)?;
        if rest.first() == Some(&BOOLEAN) {
            rest = element(rest)?.2;
        }
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let (value, _) = expect(rest, OCTET_STRING)?;
        let (mut names, _) = expect(value, SEQUENCE)?;
        let mut dns = Vec::new();
        while !names.is_empty() {
            let (tag, name, next) = element(names)?;
            names = next;
            if tag == DNS_NAME {
                dns.push(std::str::from_utf8(name).ok()?.to_ascii_lowercase());
            }
        }
        return Some(dns);
    }
    Some(Vec::new())
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// unix seconds.
fn parse_time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 12 => {
            let yy: u64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 14 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| -> Option<u64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = i64::try_from(year).ok()? - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::try_from(month).ok()?;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5
        + i64::try_from(day).ok()?
        - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    u64::try_from(era * 146_097 + day_of_era - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn certificate(names: &[&str], not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_expiry_and_dns_names_of_a_certificate_are_read() {
        let der = certificate(&["example.com", "*.apps.example.com"], (2031, 3, 4));
        let facts = facts(&der).unwrap();
        assert_eq!(facts.dns_names, ["example.com", "*.apps.example.com"]);
        // 2031-03-04T00:00:00Z
        assert_eq!(facts.not_after, 1_930_348_800);
        let der = certificate(&["x.test"], (2049, 12, 31));
        assert_eq!(facts_of(&der).not_after, 2_524_521_600);
    }

    fn facts_of(der: &[u8]) -> CertFacts {
        facts(der).unwrap()
    }

    #[test]
    fn times_in_both_encodings_are_unix_seconds() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"000229123456Z"), Some(951_827_696));
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(parse_time(UTC_TIME, b"701301000000Z"), None);
        assert_eq!(parse_time(UTC_TIME, b"7001010000+0Z"), None);
        assert_eq!(parse_time(GENERALIZED_TIME, b"700101000000Z"), None);
    }

    proptest! {
        /// Garbage, and every truncation or corruption of a real
        /// certificate, is `None` or facts, never a panic.
        #[test]
        fn no_input_makes_the_reader_panic(
            noise in prop::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..2000,
            flip in (0usize..2000, any::<u8>()),
        ) {
            let _ = facts(&noise);
            let der = certificate(&["example.com"], (2030, 1, 1));
            let _ = facts(&der[..cut.min(der.len())]);
            let mut bent = der.clone();
            let at = flip.0 % bent.len();
            bent[at] ^= flip.1;
            let _ = facts(&bent);
        }
    }
}
