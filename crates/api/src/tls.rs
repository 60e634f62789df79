//! HTTPS for any of our HTTP listeners: rustls (ring provider) from a PEM certificate
//! chain and key, or from a self-signed certificate generated once into the data dir.
//!
//! [`serve`] is `axum::serve` with a TLS handshake in front when a config is given:
//! one task per connection, HTTP/1.1 (what the MX and sipX clients speak).

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
pub use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// A server config from PEM files.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("TLS certificate {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {}: no certificate in the file", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("TLS key {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key do not fit: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The self-signed certificate in `<data_dir>/tls/` (`cert.pem`, `key.pem`), made on
/// first use for `localhost`, `127.0.0.1`, `::1` and `names`. Returns the two paths.
pub fn self_signed(data_dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    sans.extend(names.iter().filter(|n| !sans.contains(n)).cloned().collect::<Vec<_>>());
    let made = rcgen::generate_simple_self_signed(sans).map_err(|e| format!("self-signed certificate: {e}"))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "self-signed TLS certificate created");
    Ok((cert, key))
}

/// The key file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Serves `app` on `listener` until `stop` resolves; over TLS when `tls` is set.
pub async fn serve(listener: TcpListener, app: Router, tls: Option<Arc<ServerConfig>>, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let Some(tls) = tls else {
        // ConnectInfo: dialects that trust source networks (002) need the peer address.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        return axum::serve(listener, app).with_graceful_shutdown(stop).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                // Out of descriptors and the like: keep serving the others.
                Err(e) => { tracing::warn!("HTTPS accept: {e}"); tokio::time::sleep(std::time::Duration::from_millis(50)).await; continue }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake: {e}"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, "HTTPS connection: {e}");
            }
        });
    }
}
