//! The query string of a request: every parameter with its default and its quirks
//! (reference 002 §1). Parsing never fails as such; the checks that answer an error
//! happen in the handler, in the reference's order.

use engine::apps::controller::SetupMethod;

/// Default ring time and record lifetime, seconds.
pub const DEFAULT_TIMEOUT_S: &str = "180";
pub const DEFAULT_CACHE_TIME_S: &str = "180";

/// The parameters as given: the first occurrence of each wins, values form-decoded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let pairs = query.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()).unwrap_or_default();
        Params { pairs }
    }

    /// The first value of `name` (names are case-sensitive, as in the reference).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `sipMethod` as given (default `refer`).
    pub fn sip_method_text(&self) -> &str {
        self.get("sipMethod").unwrap_or("refer")
    }

    /// `sipMethod`, case-insensitive; None = neither refer nor invite.
    pub fn sip_method(&self) -> Option<SetupMethod> {
        let m = self.sip_method_text();
        if m.eq_ignore_ascii_case("refer") {
            Some(SetupMethod::Refer)
        } else if m.eq_ignore_ascii_case("invite") {
            Some(SetupMethod::Invite)
        } else {
            None
        }
    }

    /// `action`, case-sensitive, default `call`.
    pub fn action(&self) -> &str {
        self.get("action").unwrap_or("call")
    }

    /// Only a case-insensitive `true` is true.
    pub fn forwarding_allowed(&self) -> bool {
        self.get("isForwardingAllowed").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Parses like Java's `Integer.parseInt`: an optional sign, ASCII digits, within i32.
/// The error is the text of the exception the reference answers with.
pub fn java_int(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| s.parse::<i32>().ok()).flatten() {
        Some(n) => Ok(n),
        None => Err(format!("java.lang.NumberFormatException: For input string: \"{s}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_wins_and_values_are_form_decoded() {
        let p = Params::parse(Some("subject=Hello+there%21&subject=second&agent=a%40b.test"));
        assert_eq!(p.get("subject"), Some("Hello there!"));
        assert_eq!(p.get("agent"), Some("a@b.test"));
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn defaults_and_case_rules() {
        let p = Params::parse(None);
        assert_eq!(p.sip_method(), Some(SetupMethod::Refer));
        assert_eq!(p.action(), "call");
        assert!(!p.forwarding_allowed());
        let p = Params::parse(Some("sipMethod=INVITE&action=Transfer&isForwardingAllowed=TRUE"));
        assert_eq!(p.sip_method(), Some(SetupMethod::Invite));
        assert_eq!(p.action(), "Transfer", "action is not folded");
        assert!(p.forwarding_allowed());
        assert_eq!(Params::parse(Some("sipMethod=options")).sip_method(), None);
        assert!(!Params::parse(Some("isForwardingAllowed=yes")).forwarding_allowed());
        // names are case-sensitive
        assert_eq!(Params::parse(Some("sipmethod=invite")).sip_method(), Some(SetupMethod::Refer));
    }

    #[test]
    fn integers_parse_like_java() {
        assert_eq!(java_int("180"), Ok(180));
        assert_eq!(java_int("-1"), Ok(-1));
        assert_eq!(java_int("+7"), Ok(7));
        assert_eq!(java_int("x"), Err("java.lang.NumberFormatException: For input string: \"x\"".into()));
        assert!(java_int("").is_err());
        assert!(java_int(" 5").is_err());
        assert!(java_int("1.5").is_err());
        assert!(java_int("2147483648").is_err());
        assert_eq!(java_int("-2147483648"), Ok(i32::MIN));
    }
}
