//! Wiring of lane "tokens": the JWT service over the store, the MX routes, HTTPS for
//! the API listener, and the admin web listener. `run` calls [`setup`] once.

use crate::config::Config;
use api::auth::{CredentialVerifier, Verifiers};
use api::tokens::oidc::{OidcConfig, OidcIssuer};
use api::tokens::{JwtVerifier, TokenConfig, TokenService};
use engine::users::DirectorySnapshot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub struct Tokens {
    pub service: Arc<TokenService>,
    /// Goes into `AppState::verifiers`.
    pub verifier: Arc<dyn CredentialVerifier>,
    /// `/auth`, `/contacts`, `/debug/log`, `/.well-known/jwks.json`: merge into the API router.
    /// The MX dialect's state; its routes are made once the engine handle exists.
    pub mx_state: api::mx::MxState,
    /// HTTPS for the API listener when `[tls]` asks for it.
    pub api_tls: Option<Arc<api::tls::ServerConfig>>,
    /// For the MX call log, call modes, push tokens, voicemail and scheduled conferences
    /// (and the admin web's `/tokens`).
    pub store: store::Store,
}

pub async fn setup(
    cfg: &Config,
    db: store::Store,
    directory: watch::Receiver<Arc<DirectorySnapshot>>,
    directory_changed: Arc<tokio::sync::Notify>,
) -> Result<Tokens, String> {
    let oidc = match &cfg.oidc.issuer {
        None => None,
        Some(issuer) => {
            let need = |v: &Option<String>, key: &str| v.clone().ok_or_else(|| format!("[oidc] issuer is set but {key} is not"));
            Some(OidcIssuer::new(OidcConfig {
                issuer: issuer.clone(),
                jwks_url: need(&cfg.oidc.jwks_url, "jwks_url")?,
                audience: need(&cfg.oidc.audience, "audience")?,
                user_claim: cfg.oidc.user_claim.clone(),
                domain: cfg.oidc.domain.clone().unwrap_or_else(|| cfg.domain.clone()),
            }))
        }
    };
    if cfg.auth.token_ttl_s == 0 || cfg.auth.sign_key_ttl_s == 0 {
        return Err("[auth] token_ttl_s and sign_key_ttl_s must be above 0".into());
    }
    let node = cfg.mx.node.clone().unwrap_or_else(|| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "switchboard".into()));
    let tcfg = TokenConfig {
        token_ttl: Duration::from_secs(cfg.auth.token_ttl_s),
        sign_key_ttl: Duration::from_secs(cfg.auth.sign_key_ttl_s),
        issuer: cfg.auth.issuer.clone(),
        default_domain: cfg.domain.to_ascii_lowercase(),
        node,
    };
    let service = TokenService::start(tcfg, Arc::new(db.clone()), directory, oidc).await.map_err(|e| format!("tokens: {e}"))?;
    service.spawn_maintenance();
    let mx_state = api::mx::MxState {
        store: Some(db.clone()),
        push: Arc::new(crate::push::topics(&cfg.push)),
        directory_changed: Some(directory_changed),
        data_dir: Some(cfg.data_dir.clone()),
        conferences: Arc::new(api::mx::conferences::ConferenceInfo {
            ext: cfg.ivr.conference_number.trim().to_owned(),
            did: cfg.mx.conferences.did.trim().to_owned(),
            subject: cfg.mx.conferences.subject.clone(),
            body: cfg.mx.conferences.body.clone(),
            meeting: cfg.mx.conferences.meeting.clone(),
        }),
        ..api::mx::MxState::new(service.clone(), cfg.mx.log_file.clone())
    };
    let api_tls = if cfg.tls.http { tls_config(cfg)? } else { None };
    Ok(Tokens { verifier: Arc::new(JwtVerifier(service.clone())), service, mx_state, api_tls, store: db })
}

/// The `[tls]` certificate, if any is configured.
pub fn tls_config(cfg: &Config) -> Result<Option<Arc<api::tls::ServerConfig>>, String> {
    match (&cfg.tls.cert_file, &cfg.tls.key_file, cfg.tls.self_signed) {
        (Some(c), Some(k), _) => api::tls::server_config(c, k).map(Some),
        (None, None, true) => {
            let (c, k) = api::tls::self_signed(&cfg.data_dir, std::slice::from_ref(&cfg.domain))?;
            api::tls::server_config(&c, &k).map(Some)
        }
        (None, None, false) => Ok(None),
        _ => Err("[tls] needs both cert_file and key_file".into()),
    }
}

/// Starts the admin web on `[mx] admin_listen` (off when empty). A busy port is a
/// warning, not a failure: the admin web is an extra, and the default address is fixed.
pub async fn spawn_admin(cfg: &Config, tokens: &Tokens, api_token: Option<String>, verifiers: Verifiers, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    if cfg.mx.admin_listen.trim().is_empty() {
        return Ok(());
    }
    let addr: SocketAddr = cfg.mx.admin_listen.parse().map_err(|e| format!("[mx] admin_listen `{}`: {e}", cfg.mx.admin_listen))?;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("admin web not started: {addr}: {e}");
            return Ok(());
        }
    };
    let tls = match cfg.mx.admin_tls {
        false => None,
        true => Some(tls_config(cfg)?.ok_or("[mx] admin_tls needs a [tls] certificate (cert_file+key_file or self_signed)")?),
    };
    let app = api::mx::admin::routes(api::mx::admin::AdminState { tokens: tokens.service.clone(), api_token, verifiers, store: Some(tokens.store.clone()) });
    info!(%addr, https = tls.is_some(), "admin web listening");
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = api::tls::serve(listener, app, tls, stop).await {
            warn!("admin web: {e}");
        }
    });
    Ok(())
}
