//! Federated login: an OpenID Connect issuer's `id_token` exchanged for our token
//! (`POST /auth` with `Authorization: Bearer <id_token>`, as MX Proxy does for Azure AD).
//!
//! The id_token is verified here, not passed on: signature (RS256 or ES256) against the
//! issuer's JWKS, `iss`, `aud`, `exp`. The JWKS is fetched from the configured URL and
//! cached; a token with a kid we do not know triggers one refetch (the issuer rotated),
//! at most every [`REFETCH_MIN`], so a stream of forged kids cannot make us hammer it.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

const REFETCH_MIN: Duration = Duration::from_secs(10);

/// `[oidc]` settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    /// The claim naming our user (`preferred_username`): a login, or `login@domain`.
    pub user_claim: String,
    /// The domain its users belong to.
    pub domain: String,
}

pub struct OidcIssuer {
    pub cfg: OidcConfig,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl OidcIssuer {
    pub fn new(cfg: OidcConfig) -> OidcIssuer {
        OidcIssuer { cfg, keys: Default::default(), last_fetch: Default::default() }
    }

    /// Verifies `id_token`; returns the login it names (without any `@domain` of ours).
    pub async fn verify(&self, id_token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| "invalid token".to_string())?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(format!("unsupported algorithm {:?}", header.alg));
        }
        let kid = header.kid.ok_or("token has no kid")?;
        if !self.keys.read().expect("lock").contains_key(&kid) {
            self.refetch().await?;
        }
        let (alg, key) = self.keys.read().expect("lock").get(&kid).cloned().ok_or("unknown signing key")?;
        if alg != header.alg {
            return Err("algorithm does not match the issuer's key".into());
        }
        let mut v = Validation::new(alg);
        v.leeway = 30;
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_string(),
                ErrorKind::InvalidSignature => "bad signature".to_string(),
                ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
                ErrorKind::InvalidAudience => "wrong audience".to_string(),
                _ => format!("invalid token ({e})"),
            }
        })?;
        let name = data.claims.get(&self.cfg.user_claim).and_then(|v| v.as_str()).ok_or_else(|| format!("no {} claim", self.cfg.user_claim))?;
        Ok(match name.rsplit_once('@') {
            Some((login, dom)) if dom.eq_ignore_ascii_case(&self.cfg.domain) => login.to_string(),
            _ => name.to_string(),
        })
    }

    async fn refetch(&self) -> Result<(), String> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_MIN) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let url = self.cfg.jwks_url.clone();
        let set: JwkSet = tokio::task::spawn_blocking(move || -> Result<JwkSet, String> {
            let resp = ureq::get(&url).timeout(Duration::from_secs(10)).call().map_err(|e| format!("issuer JWKS {url}: {e}"))?;
            resp.into_json::<JwkSet>().map_err(|e| format!("issuer JWKS {url}: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid, (alg, k));
                }
                Err(e) => tracing::warn!(%kid, "issuer key ignored: {e}"),
            }
        }
        tracing::info!(issuer = %self.cfg.issuer, keys = keys.len(), "OIDC issuer keys fetched");
        *self.keys.write().expect("lock") = keys;
        Ok(())
    }
}
