//! An in-memory [`TokenBackend`] for the unit tests of the token logic.

use super::*;

#[derive(Default)]
pub struct MemoryBackend {
    pub keys: Mutex<Vec<StoredKey>>,
    pub revoked: Mutex<Vec<(String, u64)>>,
    pub devices: Mutex<Vec<(UserId, String, String, String)>>,
    pub users: Vec<(User, String)>,
    pub apps: Vec<(AppInfo, String)>,
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFut<'a, T> {
    Box::pin(async move { Ok(v) })
}

impl TokenBackend for MemoryBackend {
    fn verify_app<'a>(&'a self, client_id: &'a str, secret: &'a str) -> BoxFut<'a, Option<AppInfo>> {
        ready(self.apps.iter().find(|(a, s)| a.client_id == client_id && s == secret).map(|(a, _)| a.clone()))
    }
    fn list_apps(&self) -> BoxFut<'_, Vec<AppInfo>> {
        ready(self.apps.iter().map(|(a, _)| a.clone()).collect())
    }
    fn verify_user_password<'a>(&'a self, domain: DomainId, login: &'a str, password: &'a str) -> BoxFut<'a, Option<User>> {
        ready(self.users.iter().find(|(u, p)| u.domain_id == domain && u.login == login && p == password).map(|(u, _)| u.clone()))
    }
    fn add_signing_key<'a>(&'a self, key: &'a StoredKey) -> BoxFut<'a, ()> {
        self.keys.lock().unwrap().push(key.clone());
        ready(())
    }
    fn signing_keys(&self) -> BoxFut<'_, Vec<StoredKey>> {
        ready(self.keys.lock().unwrap().clone())
    }
    fn delete_signing_key<'a>(&'a self, kid: &'a str) -> BoxFut<'a, ()> {
        self.keys.lock().unwrap().retain(|k| k.kid != kid);
        ready(())
    }
    fn revoke_token<'a>(&'a self, jti: &'a str, expires_ms: u64) -> BoxFut<'a, ()> {
        self.revoked.lock().unwrap().push((jti.to_string(), expires_ms));
        ready(())
    }
    fn revoked_tokens(&self, now_ms: u64) -> BoxFut<'_, Vec<String>> {
        ready(self.revoked.lock().unwrap().iter().filter(|(_, e)| *e > now_ms).map(|(j, _)| j.clone()).collect())
    }
    fn purge_revoked(&self, now_ms: u64) -> BoxFut<'_, ()> {
        self.revoked.lock().unwrap().retain(|(_, e)| *e > now_ms);
        ready(())
    }
    fn add_device_credential<'a>(&'a self, user_id: UserId, username: &'a str, password: &'a str, jti: &'a str) -> BoxFut<'a, ()> {
        self.devices.lock().unwrap().push((user_id, username.into(), password.into(), jti.into()));
        ready(())
    }
    fn delete_device_credentials<'a>(&'a self, jti: &'a str) -> BoxFut<'a, ()> {
        self.devices.lock().unwrap().retain(|d| d.3 != jti);
        ready(())
    }
}
