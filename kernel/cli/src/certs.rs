//! `hcore certs`: a private CA for a home network and the certificates it signs, for TLS
//! listeners (`server`) and for clients that log in with a certificate (`client`: its CN
//! is the user name). Keys are written readable by their owner only; the CA is made once
//! and reused, so certificates made later are signed by the same CA.

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::cli::{CertsArgs, CertsCommand};

/// Years a CA certificate is valid; leaf certificates get `LEAF_YEARS`.
const CA_YEARS: i32 = 20;
const LEAF_YEARS: i32 = 5;

pub fn certs(args: CertsArgs) -> Result<(), String> {
    let dir = args.dir;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (ca, ca_key) = ca(&dir)?;
    let (name, params) = match args.command {
        CertsCommand::Server { hosts } => {
            let first = hosts.first().cloned().ok_or("name at least one host")?;
            let mut p = CertificateParams::new(hosts).map_err(|e| e.to_string())?;
            p.distinguished_name.push(DnType::CommonName, first);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            ("server".to_string(), p)
        }
        CertsCommand::Client { name } => {
            let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
            p.distinguished_name.push(DnType::CommonName, name.clone());
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            (name, p)
        }
    };
    let (cert, key) = leaf(params, &ca, &ca_key)?;
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    write(&cert_path, &cert, false)?;
    write(&key_path, &key, true)?;
    println!(
        "wrote {} and {} (signed by {})",
        cert_path.display(),
        key_path.display(),
        dir.join("ca.pem").display()
    );
    Ok(())
}

fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}

fn validity(p: &mut CertificateParams, years: i32) {
    let year = this_year();
    p.not_before = date_time_ymd(year - 1, 1, 1);
    p.not_after = date_time_ymd(year + years, 1, 1);
}

/// The CA in `dir` (`ca.pem`, `ca.key`), made if there is none.
fn ca(dir: &Path) -> Result<(rcgen::Certificate, KeyPair), String> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let err = |e: rcgen::Error| e.to_string();
    if cert_path.exists() {
        let read =
            |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(err)?;
        let params = CertificateParams::from_ca_cert_pem(&read(&cert_path)?).map_err(err)?;
        return Ok((params.self_signed(&key).map_err(err)?, key));
    }
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, "hcore home CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut p, CA_YEARS);
    let key = KeyPair::generate().map_err(err)?;
    let cert = p.self_signed(&key).map_err(err)?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    println!(
        "made a new CA: {} (keep {} safe)",
        cert_path.display(),
        key_path.display()
    );
    Ok((cert, key))
}

/// A certificate for `params`, signed by the CA: (certificate PEM, key PEM).
fn leaf(
    mut params: CertificateParams,
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> Result<(String, String), String> {
    let err = |e: rcgen::Error| e.to_string();
    validity(&mut params, LEAF_YEARS);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.signed_by(&key, ca, ca_key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a PEM file; keys readable by their owner only.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
