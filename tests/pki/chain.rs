//! Chains, names and purposes, checked with rustls' own verifiers.

use super::*;

#[test]
fn terminal_cert_has_fixed_name_ip_sans_and_server_auth() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let der = der(&read(tmp.path(), pki::TERMINAL_CERT));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");

    let san = cert
        .subject_alternative_name()
        .expect("ext")
        .expect("SAN present");
    let names = &san.value.general_names;
    assert!(names.contains(&GeneralName::DNSName(TERMINAL_SERVER_NAME)));
    assert!(names.contains(&GeneralName::IPAddress(&[192, 168, 1, 50])));
    assert!(names.contains(&GeneralName::IPAddress(&[10, 0, 0, 7])));

    let eku = cert
        .extended_key_usage()
        .expect("ext")
        .expect("EKU present")
        .value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(!cert.is_ca());
    let cn = cert.subject().iter_common_name().next().expect("CN");
    assert_eq!(cn.as_str().expect("utf8"), TERMINAL_SERVER_NAME);
}

#[test]
fn client_cert_is_client_auth_with_gateway_cn() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let der = der(&read(tmp.path(), pki::CLIENT_CERT));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let eku = cert
        .extended_key_usage()
        .expect("ext")
        .expect("EKU present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    let cn = cert.subject().iter_common_name().next().expect("CN");
    assert_eq!(cn.as_str().expect("utf8"), pki::GATEWAY_CLIENT_CN);
}

#[test]
fn terminal_chain_verifies_for_fixed_name_and_its_ips() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let (ca, terminal) = (
        read(tmp.path(), pki::CA_CERT),
        read(tmp.path(), pki::TERMINAL_CERT),
    );
    verify_server(&ca, &terminal, TERMINAL_SERVER_NAME).expect("fixed name");
    verify_server(&ca, &terminal, "192.168.1.50").expect("IP SAN");
    let other_ip = cert_error(verify_server(&ca, &terminal, "192.168.1.51"));
    assert!(matches!(
        other_ip,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
    ));
}

#[test]
fn terminal_cert_from_another_ca_is_unknown_issuer() {
    let ca = Ca::generate("shop CA").expect("CA");
    let rogue = Ca::generate("rogue CA").expect("CA");
    let leaf = rogue.issue(&LeafSpec::terminal(&[])).expect("leaf");
    let err = cert_error(verify_server(
        ca.cert_pem(),
        &leaf.cert_pem,
        TERMINAL_SERVER_NAME,
    ));
    assert_eq!(err, CertificateError::UnknownIssuer);
    verify_server(rogue.cert_pem(), &leaf.cert_pem, TERMINAL_SERVER_NAME).expect("own CA");
}

#[test]
fn expired_terminal_cert_is_rejected_as_expired() {
    let ca = Ca::generate("shop CA").expect("CA");
    let leaf = ca
        .issue(&LeafSpec::terminal(&[ip("192.168.1.50")]).expired())
        .expect("leaf");
    let err = cert_error(verify_server(
        ca.cert_pem(),
        &leaf.cert_pem,
        TERMINAL_SERVER_NAME,
    ));
    assert!(
        matches!(
            err,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn cert_for_another_name_is_not_valid_for_terminal_name() {
    let ca = Ca::generate("shop CA").expect("CA");
    let leaf = ca
        .issue(&LeafSpec::server("other", &["other.home.arpa".into()], &[]))
        .expect("leaf");
    let err = cert_error(verify_server(
        ca.cert_pem(),
        &leaf.cert_pem,
        TERMINAL_SERVER_NAME,
    ));
    assert!(
        matches!(
            err,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{err:?}"
    );
    verify_server(ca.cert_pem(), &leaf.cert_pem, "other.home.arpa").expect("its own name");
}

#[test]
fn gateway_cert_verifies_for_loopback_and_extra_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let (ca, gateway) = (
        read(tmp.path(), pki::CA_CERT),
        read(tmp.path(), pki::GATEWAY_CERT),
    );
    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "till-1.lan",
        "192.168.1.10",
    ] {
        verify_server(&ca, &gateway, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify_server(&ca, &gateway, TERMINAL_SERVER_NAME).is_err());
}

#[test]
fn client_cert_passes_client_verifier_and_server_cert_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let ca = read(tmp.path(), pki::CA_CERT);
    verify_client(&ca, &read(tmp.path(), pki::CLIENT_CERT)).expect("client cert");
    let err = cert_error(verify_client(&ca, &read(tmp.path(), pki::TERMINAL_CERT)));
    assert!(
        matches!(
            err,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        ),
        "{err:?}"
    );
    // And the other way round: a client identity cannot pose as the terminal.
    let ca_obj = Ca::generate("shop CA").expect("CA");
    let client = ca_obj.issue(&LeafSpec::client("x")).expect("leaf");
    assert!(verify_server(ca_obj.cert_pem(), &client.cert_pem, "x").is_err());
}

#[test]
fn loaded_ca_issues_leaves_the_original_ca_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let loaded = Ca::load(tmp.path()).expect("load");
    let original_pem = read(tmp.path(), pki::CA_CERT);
    assert_eq!(loaded.cert_pem(), original_pem);
    assert_eq!(loaded.key_pem(), read(tmp.path(), pki::CA_KEY));
    let leaf = loaded.issue(&LeafSpec::terminal(&[])).expect("leaf");
    verify_server(&original_pem, &leaf.cert_pem, TERMINAL_SERVER_NAME).expect("verifies");
}

#[test]
fn cas_with_the_same_name_are_still_told_apart() {
    let first = Ca::generate("shop CA").expect("CA");
    let second = Ca::generate("shop CA").expect("CA");
    let leaf = second.issue(&LeafSpec::terminal(&[])).expect("leaf");
    // Same CN, but the subjects differ, so the verifier never tries the wrong CA's key.
    let err = cert_error(verify_server(
        first.cert_pem(),
        &leaf.cert_pem,
        TERMINAL_SERVER_NAME,
    ));
    assert_eq!(err, CertificateError::UnknownIssuer);
}
