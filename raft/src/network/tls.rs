//! Mutual TLS for the raft RPC: the server requires a client certificate signed by the group
//! CA, and the client verifies the server against the same CA and presents its own. A caller
//! without such a certificate cannot open a connection, so it can neither vote, append nor
//! read a snapshot; the shared secret, when set, is checked on top.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::config::GroupTls;

/// Why the TLS material was refused.
fn bad(what: &str, e: impl std::fmt::Display) -> String {
    format!("raft TLS {what}: {e}")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| bad(what, e))?;
    if certs.is_empty() {
        return Err(bad(what, "no certificate in the PEM text"));
    }
    Ok(certs)
}

fn roots(tls: &GroupTls) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(&tls.ca_pem, "CA")? {
        roots.add(c).map_err(|e| bad("CA", e))?;
    }
    Ok(roots)
}

fn key(tls: &GroupTls) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| bad("key", e))
}

/// The server side: this node's certificate, and client certificates required and verified.
pub(crate) fn server_config(tls: &GroupTls) -> Result<rustls::ServerConfig, String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(tls)?), provider())
        .build()
        .map_err(|e| bad("client verifier", e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&tls.cert_pem, "certificate")?, key(tls)?)
        .map_err(|e| bad("certificate and key", e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The client side: servers verified against the group CA, this node's certificate presented.
pub(crate) fn client_config(tls: &GroupTls) -> Result<rustls::ClientConfig, String> {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", e))?
        .with_root_certificates(roots(tls)?)
        .with_client_auth_cert(certs(&tls.cert_pem, "certificate")?, key(tls)?)
        .map_err(|e| bad("certificate and key", e))
}
