//! Making keys and certificates, in memory only: nothing here touches the disk except
//! [`Ca::load`], so tests can mint any certificate they need (expired, wrong CA, wrong name).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use super::{CA_CERT, CA_KEY, PkiError, read_text, show};
use crate::constants::TERMINAL_SERVER_NAME;

/// Every certificate starts this far in the past: a POS or terminal whose clock runs a few
/// minutes behind must not reject a certificate made a moment ago.
const BACKDATE: Duration = Duration::hours(1);
/// The CA outlives many leaf renewals, so the trust step on every till is done once.
const CA_VALIDITY: Duration = Duration::days(3650);
/// A year: Mozilla's "intermediate" TLS profile (sslyze) wants under 366 days, and a
/// stolen leaf key stays useful for no longer; `ecrlink certs renew` re-issues the leaves.
pub const LEAF_VALIDITY: Duration = Duration::days(365);
/// Common name of the gateway's HTTPS API certificate; distinct from [`super::GATEWAY_CLIENT_CN`]
/// so `certs show` tells the two apart.
const GATEWAY_SERVER_CN: &str = "ecrlink-gateway-api";

/// The shop's certificate authority: its certificate and the key that signs leaves.
pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("sha256", &show::fingerprint_sha256(&self.cert_der))
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// A new CA with an ECDSA P-256 key, valid for ten years, allowed to sign leaves only
    /// (path length 0), so a leaf key can never mint further certificates.
    ///
    /// The subject also carries `OU=key <id>` from the key's hash. Verifiers find a leaf's
    /// issuer by name, so two CAs with the same common name (a regenerated CA, made the same
    /// day) would otherwise be confused: an old till would report a bad signature instead
    /// of an unknown issuer, and Windows could pick the wrong one from its store.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        Ca::generate_for(common_name, &[])
    }

    /// Like [`Ca::generate`], with name constraints that also permit `gateway_names`
    /// (see `constraints`): the CA can vouch for private names and addresses only.
    pub fn generate_for(common_name: &str, gateway_names: &[String]) -> Result<Ca, PkiError> {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let key_hash = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
        let key_id: String = key_hash.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name)?;
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, format!("key {key_id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(super::constraints::name_constraints(gateway_names));
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `dir/ca.pem` and `dir/ca.key`, checking the key belongs to the certificate:
    /// a mismatched pair would sign leaves that no client can verify.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_text(&cert_path)?;
        let key_pem = read_text(&key_path)?;
        let parse_err = |path: &Path, reason: String| PkiError::Parse {
            path: path.to_path_buf(),
            reason,
        };

        let cert_der = show::pem_to_der(&cert_pem).map_err(|r| parse_err(&cert_path, r))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| parse_err(&cert_path, e.to_string()))?;
        if !x509.is_ca() {
            return Err(parse_err(&cert_path, "not a CA certificate".into()));
        }
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| parse_err(&key_path, format!("not a PKCS#8 private key: {e}")))?;
        if key.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|e| parse_err(&cert_path, e.to_string()))?;
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA key in PKCS#8 PEM, for writing `ca.key`.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Signs a new leaf with a fresh ECDSA P-256 key. The serial number rcgen derives from
    /// the public key is unique because no key is ever reused.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, PkiError> {
        if spec.not_after <= spec.not_before {
            return Err(PkiError::InvalidSpec {
                reason: format!("{:?}: not_after is not after not_before", spec.common_name),
            });
        }
        let subject_alt_names = subject_alt_names(spec)?;
        if matches!(spec.usage, Usage::Server) && subject_alt_names.is_empty() {
            // Clients match names against SANs only, never the CN.
            return Err(PkiError::InvalidSpec {
                reason: format!("server certificate {:?} has no names", spec.common_name),
            });
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&spec.common_name)?;
        params.subject_alt_names = subject_alt_names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match spec.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        // Windows builds chains by key identifier; without it the POS may not find the CA.
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Which side of a TLS connection a leaf certificate authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// What a leaf certificate should say; build one with the constructors, adjust fields if needed.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usage: Usage,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl LeafSpec {
    /// The terminal's certificate: the fixed vendor name plus its LAN addresses, so it
    /// verifies whether a client dials the name or the IP.
    pub fn terminal(ips: &[IpAddr]) -> LeafSpec {
        LeafSpec::server(TERMINAL_SERVER_NAME, &[TERMINAL_SERVER_NAME.into()], ips)
    }

    /// The gateway API's certificate: loopback names for a POS on the same PC, plus each
    /// extra name (host names, or addresses, which become IP SANs).
    pub fn gateway(names: &[String]) -> LeafSpec {
        let mut all = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        all.extend_from_slice(names);
        let (dns_names, ips) = split_names(&all);
        LeafSpec::server(GATEWAY_SERVER_CN, &dns_names, &ips)
    }

    /// A client identity for mutual TLS.
    pub fn client(common_name: &str) -> LeafSpec {
        let (not_before, not_after) = leaf_validity();
        LeafSpec {
            common_name: common_name.to_string(),
            dns_names: Vec::new(),
            ips: Vec::new(),
            usage: Usage::Client,
            not_before,
            not_after,
        }
    }

    /// Any server certificate.
    pub fn server(common_name: &str, dns_names: &[String], ips: &[IpAddr]) -> LeafSpec {
        let (not_before, not_after) = leaf_validity();
        LeafSpec {
            common_name: common_name.to_string(),
            dns_names: dns_names.to_vec(),
            ips: ips.to_vec(),
            usage: Usage::Server,
            not_before,
            not_after,
        }
    }

    /// The same certificate, but one that expired yesterday: for testing rejection.
    pub fn expired(self) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
            ..self
        }
    }
}

/// A signed certificate and its private key, both PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl Leaf {
    /// The certificate in DER, as rustls configs take it.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| {
            PkiError::BadCertificate {
                reason: e.to_string(),
            }
        })
    }

    /// The private key in DER, as rustls configs take it.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| {
            PkiError::BadCertificate {
                reason: format!("private key: {e}"),
            }
        })
    }
}

/// Splits command-line names into DNS names and IP addresses, in order.
pub(super) fn split_names(names: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns_names = Vec::new();
    let mut ips = Vec::new();
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns_names.push(name.clone()),
        }
    }
    (dns_names, ips)
}

fn leaf_validity() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - BACKDATE, now + LEAF_VALIDITY)
}

fn distinguished_name(common_name: &str) -> Result<DistinguishedName, PkiError> {
    if common_name.trim().is_empty() {
        return Err(PkiError::InvalidSpec {
            reason: "empty common name".into(),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

/// SANs without duplicates (a name given twice on the command line is harmless). DNS names
/// are checked with the same rules clients apply, so a typo fails here, not at the till.
fn subject_alt_names(spec: &LeafSpec) -> Result<Vec<SanType>, PkiError> {
    let mut sans: Vec<SanType> = Vec::new();
    for name in &spec.dns_names {
        let invalid = || PkiError::InvalidName { name: name.clone() };
        DnsName::try_from(name.as_str()).map_err(|_| invalid())?;
        let san = SanType::DnsName(name.as_str().try_into().map_err(|_| invalid())?);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in &spec.ips {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_spec_turns_addresses_into_ip_sans() {
        let spec = LeafSpec::gateway(&["till-1.lan".into(), "192.168.1.20".into()]);
        assert_eq!(spec.dns_names, ["localhost", "till-1.lan"]);
        let expected: Vec<IpAddr> = ["127.0.0.1", "::1", "192.168.1.20"]
            .iter()
            .map(|s| s.parse().expect("literal address"))
            .collect();
        assert_eq!(spec.ips, expected);
        assert_eq!(spec.usage, Usage::Server);
    }

    #[test]
    fn expired_spec_lies_entirely_in_the_past() {
        let now = OffsetDateTime::now_utc();
        let spec = LeafSpec::client("x").expired();
        assert!(spec.not_before < spec.not_after);
        assert!(spec.not_after < now);
        assert_eq!(spec.common_name, "x");
    }

    #[test]
    fn issue_rejects_bad_dns_name_and_nameless_server() {
        let ca = Ca::generate("test CA").expect("CA");
        let bad = LeafSpec::server("x", &["not a name".into()], &[]);
        assert!(matches!(ca.issue(&bad), Err(PkiError::InvalidName { .. })));
        let nameless = LeafSpec::server("x", &[], &[]);
        assert!(matches!(
            ca.issue(&nameless),
            Err(PkiError::InvalidSpec { .. })
        ));
        assert!(matches!(
            Ca::generate(" "),
            Err(PkiError::InvalidSpec { .. })
        ));
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let ca = Ca::generate("test CA").expect("CA");
        let leaf = ca.issue(&LeafSpec::client("c")).expect("leaf");
        let body = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_string();
        let (leaf_key, ca_key) = (body(&leaf.key_pem), body(&ca.key_pem()));
        assert!(leaf_key.len() > 20 && ca_key.len() > 20);
        assert!(!format!("{leaf:?}").contains(&leaf_key));
        assert!(!format!("{ca:?}").contains(&ca_key));
        assert!(format!("{leaf:?}").contains("[redacted]"));
    }
}
