//! Issue 16: `certs renew` re-issues the leaves under the same CA, and `certs init
//! --ca-out` keeps the CA key off the gateway.

use super::*;

fn summary(dir: &Path, name: &str) -> pki::CertSummary {
    pki::summarize(&dir.join(name)).expect("summary")
}

#[test]
fn renew_keeps_names_usage_and_ca_with_a_fresh_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_in(dir, false).expect("init");
    pki::issue_broker(dir, &[ip("192.168.1.10")], &[], false).expect("broker");
    let before: Vec<_> = [
        pki::TERMINAL_CERT,
        pki::GATEWAY_CERT,
        pki::CLIENT_CERT,
        pki::BROKER_CERT,
    ]
    .iter()
    .map(|n| (summary(dir, n), read(dir, &n.replace(".pem", ".key"))))
    .collect();
    let ca_before = read(dir, pki::CA_CERT);
    let written = pki::renew(dir, None).expect("renew");
    assert_eq!(written.len(), 8, "{written:?}");
    assert_eq!(read(dir, pki::CA_CERT), ca_before, "the CA stays");
    for (old, old_key) in before {
        let name = old.file.file_name().unwrap().to_str().unwrap().to_string();
        let new = summary(dir, &name);
        assert_eq!(
            (&new.subject, &new.sans, &new.ext_key_usages),
            (&old.subject, &old.sans, &old.ext_key_usages),
            "{name}"
        );
        assert_ne!(new.sha256, old.sha256, "{name} re-issued");
        assert_ne!(
            read(dir, &name.replace(".pem", ".key")),
            old_key,
            "{name}: fresh key"
        );
        #[cfg(unix)]
        assert_eq!(mode(&dir.join(name.replace(".pem", ".key"))), 0o600);
    }
    let terminal = read(dir, pki::TERMINAL_CERT);
    verify_server(&ca_before, &terminal, TERMINAL_SERVER_NAME).expect("verifies under the same CA");
    verify_client(&ca_before, &read(dir, pki::CLIENT_CERT)).expect("client too");
}

#[test]
fn ca_out_keeps_the_ca_key_off_the_gateway() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, out) = (tmp.path().join("certs"), tmp.path().join("usb-stick"));
    let opts = InitOptions {
        dir: dir.clone(),
        terminal_ips: vec![ip("10.0.0.7")],
        gateway_names: Vec::new(),
        force: false,
    };
    pki::init_with_ca_out(&opts, Some(&out)).expect("init");
    assert!(!dir.join(pki::CA_KEY).exists(), "no CA key in certsDir");
    assert!(
        dir.join(pki::CA_CERT).exists(),
        "the gateway still trusts the CA"
    );
    #[cfg(unix)]
    assert_eq!(mode(&out.join(pki::CA_KEY)), 0o600);
    assert_eq!(read(&out, pki::CA_CERT), read(&dir, pki::CA_CERT));
    // Renewing needs the key: refused without it, done with it.
    assert!(matches!(pki::renew(&dir, None), Err(PkiError::Io { .. })));
    pki::renew(&dir, Some(&out)).expect("renew with the CA folder");
    verify_server(
        &read(&dir, pki::CA_CERT),
        &read(&dir, pki::TERMINAL_CERT),
        "10.0.0.7",
    )
    .expect("renewed under the same CA");
}
