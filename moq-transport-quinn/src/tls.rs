//! TLS 1.3 for both endpoints (rustls with the ring provider): trust on the client,
//! certificates on the server, fingerprints for certificate pinning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::ConfigError;

/// The crypto provider of every TLS configuration this crate builds: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A SHA-256 fingerprint of a certificate's DER encoding, as browsers take it in
/// `serverCertificateHashes` and as [`Trust::Fingerprints`] pins it.
///
/// Displays as lowercase hex; parses from hex, with or without `:` separators.
///
/// ```
/// use moq_transport_quinn::Fingerprint;
///
/// let fp = Fingerprint::of(b"not really a certificate");
/// let text = fp.to_string();
/// assert_eq!(text.len(), 64);
/// assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
/// assert!("abc".parse::<Fingerprint>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of DER bytes (a certificate's encoding).
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidFingerprint(text.to_owned());
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

/// Which server certificates a client accepts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Trust {
    /// The operating system's trust store (loaded with `rustls-native-certs`). A store that
    /// yields no certificate is an error ([`ConfigError::NoSystemRoots`]).
    #[default]
    System,
    /// These root certificates (see [`Trust::roots_from_pem_files`]).
    Roots(Vec<CertificateDer<'static>>),
    /// Exactly the leaf certificates with these SHA-256 fingerprints, whatever their issuer,
    /// names or dates (certificate pinning, as with a browser's `serverCertificateHashes`).
    /// The server must still prove it holds the certificate's key.
    Fingerprints(Vec<Fingerprint>),
    /// Any certificate at all. **For local development only**: anyone on the path can
    /// impersonate the server. Logs a warning when a client is built with it.
    DangerousDisableVerify,
}

impl Trust {
    /// The root certificates in these PEM files.
    pub fn roots_from_pem_files<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, ConfigError> {
        let mut roots = Vec::new();
        for path in paths {
            roots.extend(read_certs(path.as_ref())?);
        }
        Ok(Self::Roots(roots))
    }
}

/// Reads every certificate in a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem_error = |e: rustls::pki_types::pem::Error| ConfigError::Pem {
        path: PathBuf::from(path),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(ConfigError::Pem {
            path: PathBuf::from(path),
            message: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

/// A client TLS configuration for one ALPN.
pub(crate) fn client_config(
    trust: &Trust,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let mut config = match trust {
        Trust::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
                return Err(ConfigError::NoSystemRoots(errors.join("; ")));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Roots(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| ConfigError::Tls(format!("bad root certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprints(fingerprints) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pinned: Some(fingerprints.clone()),
                provider,
            }))
            .with_no_client_auth(),
        Trust::DangerousDisableVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pinned: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// Checks the server's leaf certificate against pinned SHA-256 fingerprints, or accepts any
/// certificate when `pinned` is `None` ([`Trust::DangerousDisableVerify`]). Either way the
/// TLS 1.3 handshake signature is still verified, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Option<Vec<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            None => Ok(ServerCertVerified::assertion()),
            Some(pinned) if pinned.contains(&Fingerprint::of(end_entity)) => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The validity of a generated certificate. Browsers accept a certificate pinned through
/// `serverCertificateHashes` only if it is valid for at most 14 days.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// A server certificate: a chain (leaf first) and the leaf's private key.
#[derive(Debug)]
pub struct Certificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Certificate {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Certificate {
    /// A certificate chain and its private key, from PEM files (the key may be PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let chain_certs = read_certs(chain.as_ref())?;
        let key_path = key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| ConfigError::Pem {
            path: PathBuf::from(key_path),
            message: e.to_string(),
        })?;
        Self::from_der(chain_certs, key)
    }

    /// A certificate chain (leaf first) and its private key, already decoded.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, ConfigError> {
        if chain.is_empty() {
            return Err(ConfigError::Tls("empty certificate chain".into()));
        }
        let cert = Self { chain, key };
        // Fail now, not at the first handshake, if the key is unusable or not the leaf's.
        cert.certified_key()?;
        Ok(cert)
    }

    /// Generates a self-signed certificate (ECDSA P-256) for these names, valid from a
    /// minute ago for [`SELF_SIGNED_VALIDITY`] in all, so that browsers accept it when it is
    /// pinned by its [`fingerprint`](Self::fingerprint).
    ///
    /// Names that parse as IP addresses become IP address names.
    pub fn self_signed<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err(ConfigError::Tls(
                "a certificate needs at least one name".into(),
            ));
        }
        let generate = |e: rcgen::Error| ConfigError::Tls(format!("generating a certificate: {e}"));
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(generate)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = params.not_before + SELF_SIGNED_VALIDITY;
        let cert = params.self_signed(&key).map_err(generate)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Self::from_der(vec![cert.der().clone()], key)
    }

    /// The SHA-256 fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate in PEM form (to hand to a client as a root, say).
    pub fn leaf_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.chain[0])
    }

    fn certified_key(&self) -> Result<CertifiedKey, ConfigError> {
        let key = CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider())
            .map_err(|e| ConfigError::Tls(format!("unusable certificate or key: {e}")))?;
        Ok(key)
    }
}

/// PEM armour (RFC 7468) around DER bytes.
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for group in der.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Picks the server certificate by SNI: the first whose leaf is valid for the requested
/// name, else the last one (WIRE.md §2.3).
#[derive(Debug)]
struct SniResolver {
    certs: Vec<(CertificateDer<'static>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name()
            && let Ok(name) = ServerName::try_from(name)
        {
            for (leaf, key) in &self.certs {
                let valid = webpki::EndEntityCert::try_from(leaf)
                    .and_then(|cert| cert.verify_is_valid_for_subject_name(&name));
                if valid.is_ok() {
                    return Some(key.clone());
                }
            }
        }
        self.certs.last().map(|(_, key)| key.clone())
    }
}

/// The server TLS configuration: TLS 1.3, certificates chosen by SNI, both ALPNs.
pub(crate) fn server_config(certs: &[Certificate]) -> Result<rustls::ServerConfig, ConfigError> {
    if certs.is_empty() {
        return Err(ConfigError::Tls(
            "a server needs at least one certificate".into(),
        ));
    }
    let certs = certs
        .iter()
        .map(|cert| Ok((cert.chain[0].clone(), Arc::new(cert.certified_key()?))))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs }));
    // WIRE.md §2.3: one port serves both; the negotiated ALPN picks the transport.
    config.alpn_protocols = vec![
        web_transport_quinn::ALPN.as_bytes().to_vec(),
        moq_proto::ALPN.to_vec(),
    ];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        for len in 0..8 {
            let der: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), &der[..]);
        }
    }

    #[test]
    fn self_signed_is_short_lived_and_fingerprinted() {
        let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let hex = cert.fingerprint().to_string();
        assert_eq!(hex, hex.to_lowercase());
        assert_eq!(hex.len(), 64);
        assert_eq!(cert.fingerprint(), Fingerprint::of(&cert.chain()[0]));
        let leaf = webpki::EndEntityCert::try_from(&cert.chain()[0]).unwrap();
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        assert!(leaf.verify_is_valid_for_subject_name(&ip).is_ok());
        let other = ServerName::try_from("example.com").unwrap();
        assert!(leaf.verify_is_valid_for_subject_name(&other).is_err());
    }

    #[test]
    fn fingerprint_parsing() {
        let fp = Fingerprint([0xab; 32]);
        let colons =
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), fp);
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
