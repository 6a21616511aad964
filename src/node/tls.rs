//! TLS for the API port: the configured certificate, or a self-signed one generated once into
//! `monitoring-datadir` (as the Go project does when `monitoring-ssl-cert` is empty).

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::ServerConfig;

/// Loads the configured certificate and key, or generates a self-signed pair on first use.
pub async fn load_or_generate(server: &ServerConfig) -> anyhow::Result<RustlsConfig> {
    // Installing the provider twice is harmless; the error only says one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = match (&server.ssl_cert, &server.ssl_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("monitoring-ssl-cert and monitoring-ssl-key must be set together")
        }
        (None, None) => {
            let cert = server.datadir.join("api-selfsigned.crt");
            let key = server.datadir.join("api-selfsigned.key");
            if !cert.exists() || !key.exists() {
                let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                let generated = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
                crate::files::write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
                crate::files::write_private(&cert, generated.cert.pem().as_bytes())?;
                tracing::info!(cert = %cert.display(), "generated a self-signed API certificate");
            }
            (cert, key)
        }
    };
    RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))
}
