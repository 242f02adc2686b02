//! Certificates checked on the way in, and found by SNI.

use super::*;

/// A self-signed certificate for `names` and its key, as PEM.
pub(crate) fn self_signed(names: &[&str], not_after_year: i32) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        to_pem("CERTIFICATE", cert.der()),
        to_pem("PRIVATE KEY", &key.serialize_der()),
    )
}

const NOW: u64 = 1_800_000_000; // 2027-01-15

#[test]
fn a_good_certificate_loads_with_its_names_and_expiry() {
    let (cert, key) = self_signed(&["example.com", "www.example.com"], 2030);
    let loaded = load("www.example.com", &cert, &key, NOW).unwrap();
    assert_eq!(loaded.names, ["example.com", "www.example.com"]);
    assert_eq!(loaded.not_after, 1_893_456_000);
    let (wild, wild_key) = self_signed(&["*.apps.example.com"], 2030);
    load("*.apps.example.com", &wild, &wild_key, NOW).unwrap();
    load("shop.apps.example.com", &wild, &wild_key, NOW).unwrap();
}

#[test]
fn bad_certificates_and_keys_are_refused_with_one_line_each() {
    let (cert, key) = self_signed(&["example.com"], 2030);
    let (_, other_key) = self_signed(&["example.com"], 2030);
    let (old, old_key) = self_signed(&["example.com"], 2026);
    let (wild, wild_key) = self_signed(&["*.example.com"], 2030);
    let cases: Vec<(Result<LoadedCert, CertError>, &str)> = vec![
        (load("example.com", "", &key, NOW), "no PEM certificate"),
        (load("example.com", &key, &key, NOW), "no PEM certificate"),
        (load("example.com", &cert, "", NOW), "no PEM private key"),
        (
            load("example.com", &cert, &other_key, NOW),
            "does not belong",
        ),
        (
            load("other.org", &cert, &key, NOW),
            "does not cover other.org (it names example.com)",
        ),
        (load("example.com", &old, &old_key, NOW), "expired"),
        (
            load("a.b.example.com", &wild, &wild_key, NOW),
            "does not cover",
        ),
        (load("example.com", &wild, &wild_key, NOW), "does not cover"),
        (
            load(
                "example.com",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &key,
                NOW,
            ),
            "could not be read",
        ),
    ];
    for (result, expected) in cases {
        let error = result.unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        assert!(!error.contains('\n'), "{error:?}");
    }
}

#[test]
fn sni_finds_the_exact_host_then_the_wildcard() {
    let (cert, key) = self_signed(&["example.com"], 2030);
    let exact = load("example.com", &cert, &key, NOW).unwrap().key;
    let (wild, wild_key) = self_signed(&["*.example.com"], 2030);
    let wildcard = load("*.example.com", &wild, &wild_key, NOW).unwrap().key;
    let table = CertTable::new([
        ("Example.com".to_owned(), Arc::clone(&exact)),
        ("*.example.com".to_owned(), Arc::clone(&wildcard)),
    ]);
    assert!(Arc::ptr_eq(table.find("example.com").unwrap(), &exact));
    assert!(Arc::ptr_eq(table.find("EXAMPLE.com.").unwrap(), &exact));
    assert!(Arc::ptr_eq(
        table.find("shop.example.com").unwrap(),
        &wildcard
    ));
    assert!(table.find("a.shop.example.com").is_none());
    assert!(table.find("other.org").is_none());
    assert!(table.covers("www.example.com"));
}
