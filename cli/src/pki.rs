//! The cluster's credentials, made at first start and kept in the data
//! directory: a CA, a serving certificate signed by it for each start, an
//! admin token, the key pair service-account tokens are signed with
//! (`sa.key`, `sa.pub`, as kubeadm names them), and a kubeconfig that
//! embeds the CA and the token.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// What the server needs to serve HTTPS and check tokens.
pub struct Credentials {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The serving certificate chain, PEM.
    pub cert_pem: String,
    /// The serving key, PEM.
    pub key_pem: String,
    /// The admin bearer token.
    pub token: String,
    /// The service-account signing key (P-256, PKCS #8 PEM) and its
    /// public key (PEM).
    pub service_account: (String, String),
}

/// Writes `contents` to `path` readable by its owner alone.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The CA's parameters: the same every time, so the kept key re-creates
/// the issuer of the kept certificate.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "skiff-ca");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The names the serving certificate holds beside localhost: the
/// `kubernetes` Service's, which in-cluster clients dial.
const SERVICE_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Loads the CA, token and signing key from `dir`, making them on first
/// start; signs a serving certificate for 127.0.0.1, localhost, the
/// `kubernetes` Service's names and the addresses `ips` (those that are
/// neither loopback nor unspecified).
pub fn load_or_create(dir: &Path, ips: &[IpAddr]) -> Result<Credentials> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !ca_cert.exists() || !ca_key.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key, key.serialize_pem().as_bytes())?;
        write_private(&ca_cert, cert.pem().as_bytes())?;
    }
    let ca_pem = std::fs::read_to_string(&ca_cert)
        .with_context(|| format!("cannot read {}", ca_cert.display()))?;
    let ca_key_pem = std::fs::read_to_string(&ca_key)
        .with_context(|| format!("cannot read {}", ca_key.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{} is not a private key", ca_key.display()))?;
    let issuer = Issuer::new(ca_params()?, ca_key);

    let key = KeyPair::generate()?;
    let names = std::iter::once("localhost").chain(SERVICE_NAMES);
    let mut params = CertificateParams::new(names.map(str::to_owned).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-apiserver");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    for ip in ips
        .iter()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let cert = params.signed_by(&key, &issuer)?;

    let token_path = dir.join("token");
    if !token_path.exists() {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_private(&token_path, token.as_bytes())?;
    }
    let token = std::fs::read_to_string(&token_path)
        .with_context(|| format!("cannot read {}", token_path.display()))?
        .trim()
        .to_owned();
    let service_account = dir.join("sa.key");
    if !service_account.exists() {
        let key = KeyPair::generate()?;
        // The public key beside it, for whoever checks tokens elsewhere
        // (written once: each write is a sync).
        write_private(&dir.join("sa.pub"), key.public_key_pem().as_bytes())?;
        write_private(&service_account, key.serialize_pem().as_bytes())?;
    }
    let service_account_pem = std::fs::read_to_string(&service_account)
        .with_context(|| format!("cannot read {}", service_account.display()))?;
    let public_pem = KeyPair::from_pem(&service_account_pem)
        .with_context(|| format!("{} is not a private key", service_account.display()))?
        .public_key_pem();
    Ok(Credentials {
        service_account: (service_account_pem, public_pem),
        cert_pem: format!("{}{ca_pem}", cert.pem()),
        key_pem: key.serialize_pem(),
        ca_pem,
        token,
    })
}

/// The kubeconfig text for `server` with the CA and token embedded.
pub fn kubeconfig(server: &str, credentials: &Credentials) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&credentials.ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: skiff-admin
  user:
    token: {token}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
    namespace: default
current-context: skiff
",
        token = credentials.token
    )
}

/// Writes the kubeconfig (mode 0600); returns its path.
pub fn write_kubeconfig(
    data_dir: &Path,
    server: &str,
    credentials: &Credentials,
) -> Result<PathBuf> {
    let path = data_dir.join("kubeconfig");
    write_private(&path, kubeconfig(server, credentials).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_persist_and_the_kubeconfig_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let listen = [IpAddr::from([127, 0, 0, 1])];
        let first = load_or_create(dir.path(), &listen).unwrap();
        let second = load_or_create(dir.path(), &listen).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.service_account, second.service_account);
        assert_eq!(first.token, second.token);
        assert_eq!(first.token.len(), 64);
        let path = write_kubeconfig(dir.path(), "https://127.0.0.1:6443", &first).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains(&first.token));
        assert_eq!(
            std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
