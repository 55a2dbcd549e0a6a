//! A server-certificate verifier that decides exactly as the private CA's WebPKI verifier,
//! then hands the end-entity certificate and that verdict to its owner: the doctor keeps a
//! copy to describe a refused certificate, a pinned lane checks the key. The owner may only
//! refuse more, never accept what WebPKI refused (`After` gets the verdict, not a choice).

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::tls::{TlsError, load_certs, provider};

/// What runs after WebPKI: the certificate shown and WebPKI's verdict in, the final verdict out.
pub type After = dyn Fn(
        &CertificateDer<'_>,
        Result<ServerCertVerified, rustls::Error>,
    ) -> Result<ServerCertVerified, rustls::Error>
    + Send
    + Sync;

/// The standard WebPKI verifier for the CA certificates in `ca_pem`.
pub fn webpki(ca_pem: &Path) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(ca_pem)? {
        roots.add(ca)?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
}

pub struct Checked {
    inner: Arc<WebPkiServerVerifier>,
    after: Box<After>,
}

impl Checked {
    pub fn new(inner: Arc<WebPkiServerVerifier>, after: Box<After>) -> Arc<Checked> {
        Arc::new(Checked { inner, after })
    }
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        (self.after)(end_entity, verdict)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
