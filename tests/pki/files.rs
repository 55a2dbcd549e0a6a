//! The certificate directory: which files appear, their modes, overwriting, and reading
//! them back.

use super::*;

#[test]
fn init_writes_all_nine_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("certs");
    let written = init_in(&dir, false).expect("init");
    let mut expected: Vec<PathBuf> = ALL_FILES.iter().map(|n| dir.join(n)).collect();
    let mut got = written.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    for path in &written {
        assert!(
            std::fs::metadata(path).expect("written").len() > 0,
            "{path:?} empty"
        );
    }
    // Nothing else, e.g. no temporary files left behind.
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 9);
}

#[cfg(unix)]
#[test]
fn keys_are_owner_only_and_certs_world_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("certs");
    init_in(&dir, false).expect("init");
    for name in ALL_FILES {
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&dir.join(name)), want, "{name}");
    }
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join(pki::GATEWAY_KEY), "keep me").expect("placeholder");
    let err = init_in(dir, false).expect_err("must refuse");
    match &err {
        PkiError::Exists { path } => assert_eq!(path, &dir.join(pki::GATEWAY_KEY)),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(err.to_string().contains(pki::GATEWAY_KEY), "{err}");
    assert_eq!(read(dir, pki::GATEWAY_KEY), "keep me");
    assert_eq!(std::fs::read_dir(dir).expect("dir").count(), 1);
}

#[test]
fn force_replaces_every_file_and_resets_key_mode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_in(dir, false).expect("first init");
    let old_ca = read(dir, pki::CA_CERT);
    let old_terminal = read(dir, pki::TERMINAL_CERT);
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.join(pki::TERMINAL_KEY),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");

    init_in(dir, true).expect("forced init");
    assert_ne!(read(dir, pki::CA_CERT), old_ca);
    assert_ne!(read(dir, pki::TERMINAL_CERT), old_terminal);
    #[cfg(unix)]
    assert_eq!(mode(&dir.join(pki::TERMINAL_KEY)), 0o600);
    // The new set is consistent: the new terminal cert chains to the new CA only.
    let terminal = read(dir, pki::TERMINAL_CERT);
    verify_server(&read(dir, pki::CA_CERT), &terminal, TERMINAL_SERVER_NAME).expect("new CA");
    let stale = cert_error(verify_server(&old_ca, &terminal, TERMINAL_SERVER_NAME));
    assert_eq!(stale, CertificateError::UnknownIssuer);
}

#[test]
fn caroot_cer_is_the_ca_in_der() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let cer = std::fs::read(tmp.path().join(pki::CA_DER)).expect("caroot.cer");
    assert_eq!(
        cer.as_slice(),
        der(&read(tmp.path(), pki::CA_CERT)).as_ref()
    );
    assert_eq!(cer[0], 0x30, "DER starts with a SEQUENCE, not PEM text");
}

#[test]
fn show_reports_names_usage_and_fingerprints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_in(dir, false).expect("init");
    // A key saved with a .pem name must be skipped, not parsed as a certificate.
    std::fs::copy(dir.join(pki::CLIENT_KEY), dir.join("stray-key.pem")).expect("copy");

    let summaries = pki::show(dir).expect("show");
    let files: Vec<String> = summaries
        .iter()
        .map(|s| {
            s.file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files,
        ["ca.pem", "client.pem", "gateway.pem", "terminal.pem"]
    );

    let terminal = &summaries[3];
    assert!(
        terminal
            .sans
            .contains(&format!("DNS:{TERMINAL_SERVER_NAME}"))
    );
    assert!(terminal.sans.contains(&"IP:192.168.1.50".to_string()));
    assert_eq!(terminal.sha256.len(), 95);
    let terminal_der = der(&read(dir, pki::TERMINAL_CERT));
    assert_eq!(terminal.sha256, pki::fingerprint_sha256(&terminal_der));
    assert!(!terminal.expired);
    assert_eq!(terminal.ext_key_usages, ["serverAuth"]);
    assert_eq!(terminal.issuer, summaries[0].subject);
    assert!(summaries[0].is_ca);

    let text = terminal.to_string();
    assert!(
        text.contains(TERMINAL_SERVER_NAME) && text.contains(&terminal.sha256),
        "{text}"
    );
    assert!(!text.contains("EXPIRED"));
}

#[test]
fn summarize_flags_expired_and_not_after_agrees() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("shop CA").expect("CA");
    let leaf = ca.issue(&LeafSpec::client("old").expired()).expect("leaf");
    let path = tmp.path().join("old.pem");
    std::fs::write(&path, &leaf.cert_pem).expect("write");

    let summary = pki::summarize(&path).expect("summary");
    assert!(summary.expired);
    assert!(summary.to_string().contains("EXPIRED"));
    let end = pki::not_after(&leaf.cert_pem).expect("not_after");
    assert!(end < time::OffsetDateTime::now_utc());
    let formatted = end
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    assert_eq!(summary.not_after, formatted);

    let fresh = ca.issue(&LeafSpec::terminal(&[])).expect("leaf");
    let remaining =
        pki::not_after(&fresh.cert_pem).expect("not_after") - time::OffsetDateTime::now_utc();
    // Issue 16: Mozilla's intermediate profile wants a lifetime under 366 days.
    assert!(remaining > time::Duration::days(360) && remaining <= time::Duration::days(365));
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let summary = pki::summarize(&tmp.path().join(pki::GATEWAY_CERT)).expect("summary");
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let lifetime = parse(&summary.not_after) - parse(&summary.not_before);
    assert!(lifetime < time::Duration::days(366), "{lifetime}");
}

#[test]
fn issue_device_checks_id_and_writes_client_cert() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_in(dir, false).expect("init");
    for bad in ["", "../etc", "a b", "ñ", &"x".repeat(65)] {
        let err = pki::issue_device(dir, bad, false).expect_err(bad);
        assert!(
            matches!(err, PkiError::InvalidDeviceId { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let written = pki::issue_device(dir, "PAX-A920_01.x", false).expect("device");
    assert_eq!(
        written,
        [
            dir.join("device-PAX-A920_01.x.pem"),
            dir.join("device-PAX-A920_01.x.key")
        ]
    );
    #[cfg(unix)]
    assert_eq!(mode(&written[1]), 0o600);
    let cert = read(dir, "device-PAX-A920_01.x.pem");
    verify_client(&read(dir, pki::CA_CERT), &cert).expect("device cert chains to CA");
    let summary = pki::summarize(&written[0]).expect("summary");
    assert_eq!(summary.subject, "CN=PAX-A920_01.x");

    let again = pki::issue_device(dir, "PAX-A920_01.x", false).expect_err("exists");
    assert!(matches!(again, PkiError::Exists { .. }));
    pki::issue_device(dir, "PAX-A920_01.x", true).expect("forced");
    assert_ne!(read(dir, "device-PAX-A920_01.x.pem"), cert);
}

#[test]
fn issue_broker_serves_given_and_loopback_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_in(dir, false).expect("init");
    let names = ["mqtt.lan".to_string(), "192.168.1.60".to_string()];
    let written = pki::issue_broker(dir, &[ip("10.1.2.3")], &names, false).expect("broker");
    assert_eq!(
        written,
        [dir.join(pki::BROKER_CERT), dir.join(pki::BROKER_KEY)]
    );
    let (ca, broker) = (read(dir, pki::CA_CERT), read(dir, pki::BROKER_CERT));
    for name in [
        "mqtt.lan",
        "192.168.1.60",
        "10.1.2.3",
        "localhost",
        "127.0.0.1",
    ] {
        verify_server(&ca, &broker, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = pki::issue_broker(dir, &[], &[], false).expect_err("exists");
    assert!(matches!(err, PkiError::Exists { .. }));
}

#[test]
fn issue_without_ca_reports_missing_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = pki::issue_device(tmp.path(), "dev1", false).expect_err("no CA");
    match err {
        PkiError::Io { path, source } => {
            assert_eq!(path, tmp.path().join(pki::CA_CERT));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
}

#[test]
fn ca_load_rejects_a_key_from_another_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let other = Ca::generate("other CA").expect("CA");
    std::fs::write(tmp.path().join(pki::CA_KEY), other.key_pem()).expect("swap key");
    let err = Ca::load(tmp.path()).expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");

    std::fs::write(
        tmp.path().join(pki::CA_CERT),
        read(tmp.path(), pki::TERMINAL_CERT),
    )
    .expect("swap cert");
    let err = Ca::load(tmp.path()).expect_err("leaf is no CA");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
}
