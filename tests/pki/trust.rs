//! Issue 16: the private CA cannot be turned against the PC that trusts it. Its name
//! constraints are real X.509 (OpenSSL reads them), and a certificate for a public site
//! signed with the CA's key is refused by rustls, while the CA's own names still verify.

use super::*;

#[test]
fn openssl_reads_the_name_constraints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "nameConstraints", "-in"])
        .arg(tmp.path().join(pki::CA_CERT))
        .output()
        .expect("openssl (Debian package openssl) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for permitted in [
        "Name Constraints: critical",
        "Permitted:",
        &format!("DNS:{TERMINAL_SERVER_NAME}"),
        "DNS:localhost",
        "IP:127.0.0.0/255.0.0.0",
        "IP:10.0.0.0/255.0.0.0",
        "IP:172.16.0.0/255.240.0.0",
        "IP:192.168.0.0/255.255.0.0",
        "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        "IP:FC00:0:0:0:0:0:0:0/FE00:0:0:0:0:0:0:0",
    ] {
        assert!(text.contains(permitted), "{permitted} in {text}");
    }
    // And `certs show` prints them.
    let shown = pki::summarize(&tmp.path().join(pki::CA_CERT)).expect("summary");
    assert!(shown.to_string().contains("permits:   DNS:"), "{shown}");
}

#[test]
fn a_public_name_signed_by_the_ca_is_refused_by_rustls() {
    let ca = Ca::generate_for("shop CA", &["till-1.lan".into()]).expect("CA");
    for (name, ips) in [
        ("www.bank.com", vec![]),
        ("login.example.net", vec![ip("192.168.1.9")]),
    ] {
        let leaf = ca
            .issue(&LeafSpec::server("forged", &[name.into()], &ips))
            .expect("rcgen signs whatever it is asked to");
        let err = cert_error(verify_server(ca.cert_pem(), &leaf.cert_pem, name));
        assert!(
            format!("{err:?}").contains("NameConstraintViolation"),
            "{name}: {err:?}"
        );
    }
    // A public address is outside the permitted networks too.
    let leaf = ca
        .issue(&LeafSpec::server("forged", &[], &[ip("8.8.8.8")]))
        .expect("leaf");
    assert!(verify_server(ca.cert_pem(), &leaf.cert_pem, "8.8.8.8").is_err());
    // What the CA is for still verifies: the terminal's name, LAN addresses, loopback.
    let terminal = ca
        .issue(&LeafSpec::terminal(&[ip("10.0.0.7")]))
        .expect("leaf");
    verify_server(ca.cert_pem(), &terminal.cert_pem, TERMINAL_SERVER_NAME).expect("terminal name");
    verify_server(ca.cert_pem(), &terminal.cert_pem, "10.0.0.7").expect("LAN address");
    let gateway = ca
        .issue(&LeafSpec::gateway(&["till-1.lan".into()]))
        .expect("leaf");
    for name in ["localhost", "127.0.0.1", "::1", "till-1.lan"] {
        verify_server(ca.cert_pem(), &gateway.cert_pem, name).expect(name);
    }
    let client = ca
        .issue(&LeafSpec::client(pki::GATEWAY_CLIENT_CN))
        .expect("leaf");
    verify_client(ca.cert_pem(), &client.cert_pem).expect("client certificate");
}

#[test]
fn a_broker_certificate_for_a_name_the_ca_may_not_vouch_for_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init_in(tmp.path(), false).expect("init");
    let err = pki::issue_broker(tmp.path(), &[], &["broker.example.com".into()], false)
        .expect_err("a public name");
    assert!(err.to_string().contains("broker.example.com"), "{err}");
    assert!(
        !tmp.path().join(pki::BROKER_CERT).exists(),
        "nothing written"
    );
    let err = pki::issue_broker(tmp.path(), &[ip("8.8.8.8")], &[], false).expect_err("a public IP");
    assert!(err.to_string().contains("8.8.8.8"), "{err}");
    pki::issue_broker(
        tmp.path(),
        &[ip("192.168.1.10")],
        &["mqtt.shop.lan".into()],
        false,
    )
    .expect("a LAN broker");
    let broker = read(tmp.path(), pki::BROKER_CERT);
    verify_server(&read(tmp.path(), pki::CA_CERT), &broker, "mqtt.shop.lan").expect("verifies");
}
