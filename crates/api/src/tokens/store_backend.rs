//! [`TokenBackend`] over the real database.

use super::keys::StoredKey;
use super::{AppInfo, BoxFut, TokenBackend};
use engine::users::{DomainId, User, UserId};

fn app_info(a: store::App) -> AppInfo {
    AppInfo { client_id: a.client_id, name: a.name, domain_id: a.domain_id, enabled: a.enabled }
}

impl TokenBackend for store::Store {
    fn verify_app<'a>(&'a self, client_id: &'a str, secret: &'a str) -> BoxFut<'a, Option<AppInfo>> {
        Box::pin(async move { Ok(self.verify_app(client_id, secret).await.map_err(|e| e.to_string())?.map(app_info)) })
    }
    fn list_apps(&self) -> BoxFut<'_, Vec<AppInfo>> {
        Box::pin(async move { Ok(self.list_apps(None).await.map_err(|e| e.to_string())?.into_iter().map(app_info).collect()) })
    }
    fn verify_user_password<'a>(&'a self, domain: DomainId, login: &'a str, password: &'a str) -> BoxFut<'a, Option<User>> {
        Box::pin(async move { self.verify_user_password(domain, login, password).await.map_err(|e| e.to_string()) })
    }
    fn add_signing_key<'a>(&'a self, key: &'a StoredKey) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let k = store::SigningKey { kid: key.kid.clone(), pkcs8_der: key.pkcs8_der.clone(), created_ms: key.created_ms };
            self.add_signing_key(&k).await.map_err(|e| e.to_string())
        })
    }
    fn signing_keys(&self) -> BoxFut<'_, Vec<StoredKey>> {
        Box::pin(async move {
            let keys = self.signing_keys().await.map_err(|e| e.to_string())?;
            Ok(keys.into_iter().map(|k| StoredKey { kid: k.kid, pkcs8_der: k.pkcs8_der, created_ms: k.created_ms }).collect())
        })
    }
    fn delete_signing_key<'a>(&'a self, kid: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move { self.delete_signing_key(kid).await.map_err(|e| e.to_string()) })
    }
    fn revoke_token<'a>(&'a self, jti: &'a str, expires_ms: u64) -> BoxFut<'a, ()> {
        Box::pin(async move { self.revoke_token(jti, expires_ms).await.map_err(|e| e.to_string()) })
    }
    fn revoked_tokens(&self, now_ms: u64) -> BoxFut<'_, Vec<String>> {
        Box::pin(async move { self.revoked_tokens(now_ms).await.map_err(|e| e.to_string()) })
    }
    fn purge_revoked(&self, now_ms: u64) -> BoxFut<'_, ()> {
        Box::pin(async move { self.purge_revoked(now_ms).await.map(|_| ()).map_err(|e| e.to_string()) })
    }
    fn add_device_credential<'a>(&'a self, user_id: UserId, username: &'a str, password: &'a str, jti: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move { self.add_device_credential(user_id, username, password, jti).await.map_err(|e| e.to_string()) })
    }
    fn delete_device_credentials<'a>(&'a self, jti: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move { self.delete_device_credentials(jti).await.map(|_| ()).map_err(|e| e.to_string()) })
    }
}
