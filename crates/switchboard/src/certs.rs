//! `switchboard certs generate`: a dev CA and a certificate per service
//! for mutual TLS between services (crate::mesh, docs/security.md §4).
//!
//! Each service certificate carries its peer name (`auth`, `signal`,
//! `edge`, `health`, or a backend's) as a DNS subject alternative name, is
//! good as server and as client (both extended key usages), and lasts
//! `--days`. An existing CA in the directory is reused, so a new backend
//! gets a certificate of the same CA; only a CA this command made can be
//! reused (its name is fixed). Production certificates come from the
//! operator's CA (cert-manager: k8s/overlays/prod, cert-manager-example.yaml).

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use switchboard_proto::mtls::PeerName;

use crate::{cli::CertsCommand, services::BoxError};

/// The subject of a CA made here, followed by a tag of its key: two dev
/// CAs never share a name (a chain is matched by name before signature).
const CA_NAME: &str = "Switchboard dev CA";
/// The CA's lifetime.
const CA_DAYS: u64 = 5 * 365;

pub fn run(command: CertsCommand) -> Result<(), BoxError> {
    let CertsCommand::Generate {
        out,
        names,
        extra_names,
        days,
    } = command;
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (ca_params, ca_key) = ca(&out)?;
    let issuer = Issuer::new(ca_params, ca_key);
    for name in &names {
        let mut alt_names = vec![name.as_str().to_owned()];
        for extra in &extra_names {
            match extra.split_once('=') {
                Some((peer, dns)) if peer == name.as_str() => alt_names.push(dns.to_owned()),
                Some(_) => {}
                None => return Err(format!("--san {extra}: expected PEER=DNS_NAME").into()),
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(alt_names)?;
        params.distinguished_name = subject(name.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days.max(1));
        let cert = params.signed_by(&key, &issuer)?;
        write(&out.join(format!("{name}.pem")), &cert.pem(), false)?;
        write(&out.join(format!("{name}.key")), &key.serialize_pem(), true)?;
        println!(
            "{}: {} and {}.key (valid {} days)",
            name,
            out.join(format!("{name}.pem")).display(),
            name,
            days.max(1)
        );
    }
    Ok(())
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now();
    // An hour back: clocks of the machines that check it may lag.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(days * 86_400)).into();
}

/// The CA parameters and key: `ca.pem`/`ca.key` in `dir` if there (made
/// here before), else new ones written there.
fn ca(dir: &Path) -> Result<(CertificateParams, KeyPair), BoxError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let params = |key: &KeyPair| -> Result<CertificateParams, BoxError> {
        use std::hash::{Hash as _, Hasher as _};
        let mut tag = std::collections::hash_map::DefaultHasher::new();
        key.public_key_raw().hash(&mut tag);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = subject(&format!("{CA_NAME} {:016x}", tag.finish()));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(params)
    };
    if key_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
        let key = KeyPair::from_pem(&pem)?;
        println!("CA: reusing {}", cert_path.display());
        return Ok((params(&key)?, key));
    }
    let key = KeyPair::generate()?;
    let mut params = params(&key)?;
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    println!(
        "CA: {} (give it to every service as --mtls-ca; keep ca.key off the cluster)",
        cert_path.display()
    );
    Ok((params, key))
}

/// Writes `contents` to `path`; a private key readable by its owner only.
fn write(path: &PathBuf, contents: &str, private: bool) -> Result<(), BoxError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// The peer names of `certs generate` when none are given.
pub fn default_names() -> Vec<PeerName> {
    ["auth", "signal", "edge", "health"]
        .iter()
        .map(|n| n.parse().expect("valid"))
        .collect()
}
