//! Answering digest challenges (RFC 3261 §22.2, §22.3; RFC 8760 algorithms).
//!
//! A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) to any request we sent is
//! answered by sending the same request again with an Authorization or
//! Proxy-Authorization header, a new branch and a new CSeq. Each challenge header gets
//! the first of its algorithms we speak (the server lists them in its order of
//! preference). To never loop on a registrar that keeps refusing, a request chain gets
//! one retry, plus one more only if the new challenge says `stale=true` with a nonce
//! we have not answered yet; anything else ends in the failure response itself.

use super::{ClientTx, Purpose, UserAgent};
use crate::dialog::random_token;
use crate::digest::Challenge;
use crate::message::{Request, Response};
use std::time::Instant;
use crate::transaction::TxId;

/// What a chain of retries of one request has answered so far.
#[derive(Debug, Clone, Default)]
pub(super) struct AuthState {
    retries: u8,
    nonces: Vec<String>,
}

/// Challenge header → credentials header.
fn answer_header(status: u16) -> (&'static str, &'static str) {
    if status == 407 {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    }
}

impl UserAgent {
    /// Re-sends `ctx`'s request answering the challenge in `resp`. None when we cannot
    /// or may not (no password, no usable challenge, retry budget spent).
    pub(super) fn retry_with_credentials(&mut self, now: Instant, ctx: &ClientTx, resp: &Response) -> Option<TxId> {
        let password = self.cfg.password.clone()?;
        let username = self.cfg.auth_user.clone().unwrap_or_else(|| self.cfg.user.clone());
        let (challenge_name, answer_name) = answer_header(resp.status);
        let challenges: Vec<(Challenge, bool)> = resp
            .headers
            .extra
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(challenge_name))
            .filter_map(|(_, v)| Challenge::parse(v).ok())
            .collect();
        // One answer per realm: the first (most preferred) supported algorithm.
        let mut chosen: Vec<&(Challenge, bool)> = Vec::new();
        for c in &challenges {
            if !chosen.iter().any(|d| d.0.realm == c.0.realm) {
                chosen.push(c);
            }
        }
        if chosen.is_empty() {
            return None;
        }
        let mut auth = ctx.auth.clone();
        if chosen.iter().any(|(c, _)| auth.nonces.contains(&c.nonce)) {
            return None; // the same nonce again: our answer was refused
        }
        let stale = chosen.iter().all(|(c, _)| c.stale);
        if auth.retries >= 2 || (auth.retries == 1 && !stale) {
            return None;
        }
        auth.retries += 1;
        let mut req: Request = ctx.req.clone();
        req.headers.remove(answer_name);
        let uri = req.uri.to_string();
        for (c, qop) in chosen {
            auth.nonces.push(c.nonce.clone());
            let value = c.answer(*qop, &username, &password, req.method.as_str(), &uri, &random_token(16), 1);
            req.headers.push(answer_name, value);
        }
        req.headers.via = vec![self.via()];
        req.headers.cseq.seq = self.next_cseq(ctx.purpose, ctx.req.headers.cseq.seq);
        Some(self.send_request(now, req, ctx.dest, ctx.purpose, auth))
    }

    /// The CSeq for a retry: from the dialog for in-dialog requests, else one more.
    fn next_cseq(&mut self, purpose: Purpose, old: u32) -> u32 {
        match purpose {
            Purpose::Register => {
                self.reg.cseq += 1;
                self.reg.cseq
            }
            Purpose::Invite(_) | Purpose::Message(_) | Purpose::Fire => old.wrapping_add(1),
            p => match p.call().and_then(|c| self.calls.get_mut(&c)).and_then(|c| c.dialog.as_mut()) {
                Some(d) => {
                    d.local_seq = d.local_seq.wrapping_add(1);
                    d.local_seq
                }
                None => old.wrapping_add(1),
            },
        }
    }
}
