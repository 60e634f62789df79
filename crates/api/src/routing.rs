//! Where a dial-out goes. A SIP URI is called as given; a number (digits, optional
//! leading `+`, `*`, `#`) goes to the configured outbound gateway as
//! `sip:<number>@<gateway host:port>` until the user directory exists. A number with
//! no gateway configured has no route: 422 (code 1422), saying what to configure.
//! What a target may look like is [`formats::dial_target`] (also in `/openapi.json`);
//! anything else is a 400.

use crate::conferences::lookup::{is_number, parse_loose_uri};
use crate::error::ApiError;
use crate::formats;
use sip::uri::Scheme;
use sip::Uri;

/// Outbound routing settings (`[routing]` in the config).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// `[routing] gateway`: where numbers are sent.
    pub gateway: Option<Uri>,
}

impl Routing {
    /// Parses the configured gateway (`sip:host[:port]`, a user part is ignored).
    pub fn with_gateway(gateway: Option<&str>) -> Result<Routing, String> {
        let gateway = gateway
            .map(|g| {
                sip::parse::parse_uri(g.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme, Scheme::Sip | Scheme::Sips) && !u.host.is_empty())
                    .ok_or_else(|| format!("routing gateway `{g}` is not a SIP URI like sip:host:port"))
            })
            .transpose()?;
        Ok(Routing { gateway })
    }

    /// The URI to call for a dial-out target as the client wrote it.
    pub fn target(&self, to: &str) -> Result<Uri, ApiError> {
        if to.trim().is_empty() {
            return Err(ApiError::bad_request("`to` is empty: give a SIP URI or a number"));
        }
        if !formats::matches(&formats::dial_target(), to) {
            // Two near misses get their own reason.
            match parse_loose_uri(to.trim()) {
                Some(u) if u.scheme == Scheme::Sips => {
                    return Err(ApiError::bad_request(format!("`to` `{to}`: sips: needs TLS; only UDP and TCP are supported")))
                }
                Some(u) if u.scheme == Scheme::Sip && u.port == Some(0) => {
                    return Err(ApiError::bad_request(format!("`to` `{to}` has port 0")))
                }
                _ => {}
            }
            return Err(ApiError::bad_request(format!(
                "`to` `{to}` is neither a SIP URI nor a number (sip:user@host[:port], <sip:...>, user@host; digits, *, #, a leading +)"
            )));
        }
        let to = to.trim();
        let compact: String = to.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
        if is_number(&compact) {
            let gw = self.gateway.as_ref().ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "no route to number `{to}`: set [routing] gateway (SWITCHBOARD_ROUTING__GATEWAY, --gateway) or dial a SIP URI"
                ))
            })?;
            return Ok(Uri { user: Some(compact), password: None, params: gw.params.clone(), headers: Vec::new(), ..gw.clone() });
        }
        match parse_loose_uri(to) {
            Some(u) if matches!(u.scheme, Scheme::Sip | Scheme::Sips) && u.port == Some(0) => {
                Err(ApiError::bad_request(format!("`to` `{to}` has port 0")))
            }
            Some(u) if matches!(u.scheme, Scheme::Sip | Scheme::Sips) => Ok(u),
            Some(u) if u.scheme == Scheme::Tel => self.target(u.user.as_deref().unwrap_or("")),
            _ => Err(ApiError::bad_request(format!("`to` `{to}` is neither a SIP URI nor a number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_called_as_given() {
        let r = Routing::default();
        assert_eq!(r.target("sip:bob@127.0.0.1:5070").unwrap().to_string(), "sip:bob@127.0.0.1:5070");
        assert_eq!(r.target("<sip:bob@127.0.0.1:5070>").unwrap().to_string(), "sip:bob@127.0.0.1:5070");
        assert_eq!(r.target("bob@10.1.2.3").unwrap().to_string(), "sip:bob@10.1.2.3");
    }

    #[test]
    fn numbers_go_to_the_gateway() {
        let r = Routing::with_gateway(Some("sip:127.0.0.1:5099;transport=tcp")).unwrap();
        assert_eq!(r.target("2216").unwrap().to_string(), "sip:2216@127.0.0.1:5099;transport=tcp");
        assert_eq!(r.target("+1 (555) 010-0000").unwrap().to_string(), "sip:+15550100000@127.0.0.1:5099;transport=tcp");
        assert_eq!(r.target("tel:*99").unwrap().user.as_deref(), Some("*99"));
    }

    #[test]
    fn no_route_and_bad_targets() {
        let r = Routing::default();
        let e = r.target("2216").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, 1422));
        assert!(e.message.contains("[routing] gateway"));
        assert_eq!(r.target("hello world").unwrap_err().code, 1400);
        assert_eq!(r.target("").unwrap_err().code, 1400);
        assert_eq!(r.target("sip:bob@127.0.0.1:0").unwrap_err().code, 1400);
        assert_eq!(r.target("\"Bob\" <sip:bob@h>").unwrap_err().code, 1400);
        assert_eq!(r.target("tel:12-34").unwrap_err().code, 1400);
        assert!(Routing::with_gateway(Some("not a uri")).is_err());
        assert!(Routing::with_gateway(Some("http://x")).is_err());
    }
}
