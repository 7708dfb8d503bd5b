//! `--tls-self-signed`: a development certificate the edge makes for itself
//! at start (rcgen), for HTTPS on a LAN or a phone (browsers give camera
//! and microphone only to secure origins) without a CA. It names
//! `localhost`, the loopback addresses and the listen address; its files go
//! to a directory of this process (key readable by its owner only), and
//! its fingerprints are printed so a tester can check what the browser
//! shows, or start Chromium with `--ignore-certificate-errors-spki-list`.

use std::{net::SocketAddr, path::PathBuf};

use sha2::{Digest as _, Sha256};

use crate::services::BoxError;

/// Writes a new certificate and key for `listen`, prints their
/// fingerprints, and returns the two files.
pub fn generate(listen: SocketAddr) -> Result<(PathBuf, PathBuf), BoxError> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(30 * 86_400)).into();
    let cert = params.self_signed(&key)?;
    let dir = std::env::temp_dir().join(format!("switchboard-self-signed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, &key.serialize_pem())?;
    let fingerprint = Sha256::digest(cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let spki = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key),
        ))
    };
    println!("TLS self-signed certificate for {}", names.join(", "));
    println!("TLS SHA-256 fingerprint {fingerprint}");
    println!("TLS SPKI SHA-256 (Chromium --ignore-certificate-errors-spki-list) {spki}");
    Ok((cert_path, key_path))
}

fn write_private(path: &PathBuf, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}
