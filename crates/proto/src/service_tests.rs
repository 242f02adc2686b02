//! The spec rules, case by case, and the parsers the CLI uses.

use super::*;
use proptest::prelude::*;

fn spec() -> ServiceSpec {
    ServiceSpec {
        name: "web".to_owned(),
        image: "local/busybox:1".to_owned(),
        replicas: 3,
        ports: vec![8080],
        hosts: vec!["web.example.com".to_owned(), "*.web.example.com".to_owned()],
        path: Some("/app".to_owned()),
        strip_prefix: true,
        sticky: true,
        tls: TlsMode::Off,
        upstream_h2: true,
        env: vec![("MODE".to_owned(), "prod".to_owned())],
        command: vec!["httpd".to_owned(), "-f".to_owned()],
        cpu_millis: Some(500),
        memory: Some(128 << 20),
        health: Some(HealthCheck::new(Probe::Http {
            path: "/healthz".to_owned(),
        })),
        constraints: vec!["arch==x86_64".parse().unwrap()],
        restart: RestartPolicy::Always,
        update: Default::default(),
        stop_grace_ms: 5000,
    }
}

#[test]
fn a_good_spec_passes_and_round_trips_through_json() {
    assert_eq!(spec().validate(), Ok(()));
    let json = serde_json::to_string(&spec()).unwrap();
    assert_eq!(serde_json::from_str::<ServiceSpec>(&json).unwrap(), spec());
    assert!(json.contains(r#""restart":"always""#), "{json}");
}

#[test]
fn a_spec_stored_before_the_update_controls_reads_with_their_defaults() {
    let stored = r#"{"name":"web","image":"web:1","replicas":2,
        "update":{"healthy_deadline_secs":30,"auto_rollback":false,"parallelism":2}}"#;
    let spec: ServiceSpec = serde_json::from_str(stored).unwrap();
    assert_eq!(spec.stop_grace_ms, DEFAULT_STOP_GRACE_MS);
    assert_eq!(
        spec.update,
        UpdatePolicy {
            healthy_deadline_secs: 30,
            auto_rollback: false,
            parallelism: 2,
            ..UpdatePolicy::default()
        }
    );
    assert_eq!(spec.update.order, UpdateOrder::StartFirst);
    assert_eq!(spec.update.min_healthy_ms, 2000);
    assert_eq!("stop-first".parse(), Ok(UpdateOrder::StopFirst));
    assert!("stop-last".parse::<UpdateOrder>().is_err());
}

#[test]
fn every_broken_rule_is_refused_with_its_own_line() {
    let cases: Vec<(ServiceSpec, &str)> = vec![
        (
            ServiceSpec {
                name: "Web!".into(),
                ..spec()
            },
            "invalid service name",
        ),
        (
            ServiceSpec {
                update: crate::UpdatePolicy {
                    parallelism: 0,
                    ..Default::default()
                },
                ..spec()
            },
            "--update-parallelism 0",
        ),
        (
            ServiceSpec {
                update: crate::UpdatePolicy {
                    healthy_deadline_secs: 0,
                    ..Default::default()
                },
                ..spec()
            },
            "--healthy-deadline",
        ),
        (
            ServiceSpec {
                update: crate::UpdatePolicy {
                    delay_ms: 2 * 3600 * 1000,
                    ..Default::default()
                },
                ..spec()
            },
            "--update-delay must be at most 1h",
        ),
        (
            ServiceSpec {
                stop_grace_ms: 3600 * 1000 + 1,
                ..spec()
            },
            "--stop-grace must be at most 1h",
        ),
        (
            ServiceSpec {
                name: String::new(),
                ..spec()
            },
            "invalid service name",
        ),
        (
            ServiceSpec {
                image: "Busybox".into(),
                ..spec()
            },
            "invalid image",
        ),
        (
            ServiceSpec {
                image: "a b".into(),
                ..spec()
            },
            "invalid image",
        ),
        (
            ServiceSpec {
                image: "busybox:".into(),
                ..spec()
            },
            "invalid image",
        ),
        (
            ServiceSpec {
                replicas: 5000,
                ..spec()
            },
            "more than the 1000",
        ),
        (
            ServiceSpec {
                ports: vec![0],
                health: None,
                ..spec()
            },
            "port 0 is not a port",
        ),
        (
            ServiceSpec {
                ports: vec![80, 80],
                ..spec()
            },
            "given twice",
        ),
        (
            ServiceSpec {
                hosts: vec!["bad host".into()],
                ..spec()
            },
            "invalid host name",
        ),
        (
            ServiceSpec {
                env: vec![("1X".into(), "v".into())],
                ..spec()
            },
            "environment variable",
        ),
        (
            ServiceSpec {
                cpu_millis: Some(0),
                ..spec()
            },
            "--cpu",
        ),
        (
            ServiceSpec {
                memory: Some(1024),
                ..spec()
            },
            "--memory",
        ),
        (
            ServiceSpec {
                ports: Vec::new(),
                hosts: Vec::new(),
                path: None,
                strip_prefix: false,
                sticky: false,
                upstream_h2: false,
                ..spec()
            },
            "need a --port",
        ),
        (
            ServiceSpec {
                health: Some(HealthCheck::new(Probe::Http {
                    path: "healthz".into(),
                })),
                ..spec()
            },
            "health check path",
        ),
        (
            ServiceSpec {
                health: Some(HealthCheck::new(Probe::Command { argv: Vec::new() })),
                ..spec()
            },
            "--health-cmd",
        ),
        (
            ServiceSpec {
                health: Some(HealthCheck {
                    retries: 0,
                    ..HealthCheck::new(Probe::Tcp)
                }),
                ..spec()
            },
            "more than 0",
        ),
        (
            ServiceSpec {
                hosts: vec!["*.com".into()],
                ..spec()
            },
            "invalid host name",
        ),
        (
            ServiceSpec {
                hosts: vec!["a.*.example.com".into()],
                ..spec()
            },
            "invalid host name",
        ),
        (
            ServiceSpec {
                ports: Vec::new(),
                health: None,
                ..spec()
            },
            "--host needs a --port",
        ),
        (
            ServiceSpec {
                hosts: Vec::new(),
                ..spec()
            },
            "--path needs a --host",
        ),
        (
            ServiceSpec {
                path: Some("/app/".into()),
                ..spec()
            },
            "invalid --path",
        ),
        (
            ServiceSpec {
                path: Some("/a?b".into()),
                ..spec()
            },
            "invalid --path",
        ),
        (
            ServiceSpec {
                path: Some("app".into()),
                ..spec()
            },
            "invalid --path",
        ),
        (
            ServiceSpec {
                path: None,
                ..spec()
            },
            "--strip-prefix needs a --path",
        ),
        (
            ServiceSpec {
                hosts: Vec::new(),
                path: None,
                strip_prefix: false,
                ..spec()
            },
            "--sticky needs a --host",
        ),
        (
            ServiceSpec {
                hosts: Vec::new(),
                path: None,
                strip_prefix: false,
                sticky: false,
                ..spec()
            },
            "--upstream-h2 needs a --host",
        ),
    ];
    for (spec, expected) in cases {
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        assert!(!error.contains('\n'));
    }
}

#[test]
fn long_input_is_shortened_in_errors() {
    let error = ServiceSpec {
        name: "x".repeat(10_000),
        ..spec()
    }
    .validate()
    .unwrap_err();
    assert!(error.to_string().len() < 300, "{error}");
}

#[test]
fn image_references_of_every_common_shape_are_accepted() {
    for image in [
        "busybox",
        "busybox:1",
        "local/busybox:1.36-musl",
        "registry.example:5000/team/app:2",
        "Registry.Example/app",
        "app@sha256:0123456789abcdef",
    ] {
        let spec = ServiceSpec {
            image: image.to_owned(),
            ..spec()
        };
        assert_eq!(spec.validate(), Ok(()), "{image}");
    }
}

#[test]
fn constraints_parse_and_hold() {
    let equal: Constraint = "zone==home".parse().unwrap();
    let unequal: Constraint = "gpu!=yes".parse().unwrap();
    assert!(equal.holds(Some("home")) && !equal.holds(Some("vps")) && !equal.holds(None));
    assert!(unequal.holds(Some("no")) && unequal.holds(None) && !unequal.holds(Some("yes")));
    assert_eq!(unequal.to_string(), "gpu!=yes");
    for bad in ["zone=home", "==home", "zo ne==x", "zone==a b"] {
        assert!(bad.parse::<Constraint>().is_err(), "{bad}");
    }
}

#[test]
fn sizes_cpus_and_restart_policies_parse() {
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("1.5G"), Some(3 << 29));
    assert_eq!(parse_size("64mib"), Some(64 << 20));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("-1G"), None);
    assert_eq!(parse_size("12Q"), None);
    assert_eq!(parse_cpu("0.5"), Some(500));
    assert_eq!(parse_cpu("2"), Some(2000));
    assert_eq!(parse_cpu("250m"), Some(250));
    assert_eq!(parse_cpu("-1"), None);
    assert_eq!("on-failure".parse(), Ok(RestartPolicy::OnFailure));
    assert!("sometimes".parse::<RestartPolicy>().is_err());
}

proptest! {
    /// No input makes the rules or the parsers panic.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,80}") {
        let _ = ServiceSpec { name: text.clone(), image: text.clone(), ..spec() }.validate();
        let _ = text.parse::<Constraint>();
        let _ = parse_size(&text);
        let _ = parse_cpu(&text);
    }
}
