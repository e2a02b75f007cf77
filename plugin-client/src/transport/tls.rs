//! TLS for `mqtts://` brokers: which CA to trust (a file, or the system's roots without
//! one) and, optionally, the client certificate to log in with (its CN is the identity on
//! a broker that accepts certificates).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ClientError;

/// Where the TLS files are (PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates that sign the broker's certificate (default: the system's).
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its key, to log in with.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

fn bad(what: &std::path::Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Connect(format!("TLS: {}: {e}", what.display()))
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

impl TlsOptions {
    /// The rustls configuration these options describe.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for c in certs(ca)? {
                    roots.add(c).map_err(|e| bad(ca, e))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Connect(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(cert, e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ClientError::Connect(
                    "TLS: a client certificate needs both cert and key".into(),
                ))
            }
        };
        Ok(Arc::new(config))
    }
}
