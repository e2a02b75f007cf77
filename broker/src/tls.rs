//! TLS for listeners: the rustls server configuration a listener's `[tls]` section
//! describes (certificate chain and key; optionally a CA whose client certificates are
//! accepted or required), and the identity a client certificate carries.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::BrokerError;

fn bad(what: &std::path::Path, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Config(format!("TLS: {}: {e}", what.display()))
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, BrokerError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The acceptor for a listener's TLS settings; errors name the file and what is wrong.
pub(crate) fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, BrokerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| bad(&cfg.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Config(format!("TLS: {e}")))?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| bad(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match cfg.require_client_cert {
                true => verifier.build(),
                false => verifier.allow_unauthenticated().build(),
            }
            .map_err(|e| bad(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad(&cfg.key, e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The subject's common name (CN) of a DER certificate.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
