//! The text formats of the API's string inputs, as regular expressions. Each one is both
//! what the server checks and what `/openapi.json` publishes (`pattern`), so the two
//! cannot drift: a string that matches is accepted, any other is a 400.
//!
//! The patterns use only syntax that ECMA-262 (JSON Schema), Rust's `regex` and Python's
//! `re` read alike: `^`/`$` around the whole, `(?:...)`, `|`, `*`/`+`/`?`/`{m,n}` and
//! explicit classes such as `[0-9]` (never `\d`, `\s` or `\w`, whose reach differs).
//!
//! | format | what | where |
//! |---|---|---|
//! | [`sip_uri`] | `sip:`/`sips:`, optional `user@`, host name, IPv4 or `[IPv6]`, optional `:port` and `;params` | inside the others |
//! | [`dial_target`] | a number (digits, `*`, `#`, optional leading `+`, separators ` ().-`), `tel:<number>`, a SIP URI, `<SIP URI>` or `user@host` | dial-out `to`, `POST /v1/calls` `to` |
//! | [`call_party`] | a login, or a [`dial_target`] | mid-call transfer and supervise `to` |
//! | [`DTMF_DIGITS`] | 1-64 of `0-9 * # A-D` | mid-call DTMF |
//! | [`lookup_uri`] | a SIP URI, `<SIP URI>` or `user@host` | LOOKUP `uri`, `confuri` |
//! | [`FROM_NUMBER`] | digits, `*`, `#`, optional leading `+` | LOOKUP `from` with `mode` `number` |
//! | [`conference_ref`] | a confid (no `=`), or a lookup expression `key=value` (`from=...&mode=...`) | `{confid}` path segments |
//! | [`order`] | `field,-field,...` over the item's fields | list option `order` |
//! | [`IDEMPOTENCY_KEY`] | 1-255 visible ASCII characters (inner spaces and tabs allowed) | `Idempotency-Key` header |
//! | [`FLAG_VALUES`] | `true`, `false`, `1`, `0` or empty | `flat`, `countonly` |
//! | [`DOMAIN_NAME`] | a hostname (labels of letters, digits, inner `-`), at most 253 characters | admin: domain names and aliases |
//! | [`LOGIN`] | 1-64 of letters, digits, `.`, `_`, `-` | admin: logins, client ids, key names |
//! | [`EXTENSION`], [`PHONE`], [`PIN`] | 1-16 digits; `+` and 1-20 digits; 1-32 digits | admin: users |
//! | [`WEBHOOK_URL`], [`EVENT_TYPE`] | `http(s)://host[:port][/path]`, up to 2000 characters; lowercase letters and `_` | webhooks |
//! | [`PERSON_NAME`], [`REALM`], [`EMAIL`] | printable ASCII (names up to 128, realm without quotes or backslashes, trimmed), `local@host` | admin |

use regex::Regex;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// User part of a SIP URI: RFC 3261 unreserved and user-unreserved characters, plus
/// `#` (feature codes); no `%` escapes, `:`, `;`, `?` or `&`.
const USER: &str = r"[A-Za-z0-9._~!$'()*+,=/#-]+";
const HOSTNAME: &str = r"[A-Za-z0-9._-]+";
/// The textual IPv6 forms without an embedded IPv4 address (RFC 4291 2.2, 1 and 2).
const IPV6: &str = concat!(
    r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}",
    r"|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}",
    r"|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}",
    r"|:(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:))",
);
/// 1-65535 (port 0 can be neither listened on nor called).
const PORT: &str = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
/// `;name` or `;name=value`, any number of them.
const PARAMS: &str = r"(?:;[A-Za-z0-9._~!$'()*+-]+(?:=[A-Za-z0-9._~!$'()*+:/-]*)?)*";

/// A number as dialled: digits, `*`, `#`, an optional leading `+`, and the separators
/// ` `, `(`, `)`, `.`, `-` anywhere (they are dropped).
const DIALLED_NUMBER: &str = r"[ ().-]*(?:\+[ ().-]*)?[0-9*#](?:[ ().-]*[0-9*#])*[ ().-]*";

/// LOOKUP `from` when `mode` is `number` (and numbers in `tel:` targets).
pub const FROM_NUMBER: &str = r"^\+?[0-9*#]+$";

/// `Idempotency-Key`: 1-255 visible ASCII characters; spaces and tabs only inside.
pub const IDEMPOTENCY_KEY: &str = r"^[!-~](?:[\t -~]{0,253}[!-~])?$";

/// DTMF digits to send: 1 to 64 of `0-9 * # A-D`.
pub const DTMF_DIGITS: &str = r"^[0-9*#A-Da-d]{1,64}$";

/// A live audio stream's receiver (`url`): `ws://` or `wss://`, then printable ASCII
/// only (no spaces, no control or non-ASCII characters; U+0085 is whitespace to Rust
/// but not to a pattern, so only ASCII ranges are named), at most 2048 characters.
pub const WS_URL: &str = r"^wss?://[!-~]{1,2040}$";

/// The values `flat` and `countonly` take (empty = true, as in `?flat`).
pub const FLAG_VALUES: [&str; 5] = ["true", "false", "1", "0", ""];

/// A domain name (or alias): a hostname; at most [`DOMAIN_NAME_MAX`] characters.
/// Letters of either case (stored lowercase).
pub const DOMAIN_NAME: &str = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
pub const DOMAIN_NAME_MAX: usize = 253;
/// Logins, OAuth2 client ids and API key names.
pub const LOGIN: &str = r"^[A-Za-z0-9._-]{1,64}$";
pub const EXTENSION: &str = r"^[0-9]{1,16}$";
/// Phone numbers (DID, cell, home): digits with an optional leading `+`, no punctuation.
pub const PHONE: &str = r"^\+?[0-9]{1,20}$";
pub const PIN: &str = r"^[0-9]{1,32}$";
/// Display, first and last names: printable ASCII, empty clears.
pub const PERSON_NAME: &str = r"^[ -~]{0,128}$";
/// A digest realm: printable ASCII without `"` and `\`, no spaces at either end.
pub const REALM: &str = r"^[!#-\[\]-~](?:[ !#-\[\]-~]{0,126}[!#-\[\]-~])?$";
/// An e-mail address: `local@host`, printable ASCII without spaces, at most 254 characters.
pub const EMAIL: &str = r"^[!-?A-~]{1,64}@[!-~]{1,189}$";
/// Passwords and app secrets: 1 to [`SECRET_MAX`] characters of any kind.
pub const SECRET_MAX: usize = 64;
/// A webhook's URL: `http://` or `https://`, a host name, IPv4 or `[IPv6]`, an optional
/// port, then an optional path and query of visible ASCII.
pub const WEBHOOK_URL: &str = r"^https?://(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(?:[/?][!-~]*)?$";
/// Longest webhook URL.
pub const WEBHOOK_URL_MAX: usize = 2000;
/// An event type (`leg_started`, `dtmf`, ...), in a webhook's filter.
pub const EVENT_TYPE: &str = r"^[a-z_]{1,64}$";
/// An instant message's media type: `type/subtype`, optionally `;` and parameters
/// (the engine checks SIP MESSAGEs' Content-Type the same way).
pub const CONTENT_TYPE: &str = r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}(?:;[ -~]{0,128})?$";
/// An instant message's sender: a name in the domain (a user's login or extension,
/// or any other name), or `sip:`/`sips:` name `@` host.
pub const MESSAGE_FROM: &str = r"^(?:[A-Za-z0-9._-]{1,64}|sips?:[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$";
/// An instant message's text: any but NUL.
pub const MESSAGE_BODY: &str = r"^[^\x00]*$";
/// Longest API message text, in characters (4 bytes each at most: the engine's
/// 64 KiB body limit holds).
pub const MESSAGE_BODY_MAX: usize = 16 * 1024;

/// The LOOKUP keys whose value is any text (no `&` in a path expression).
const TEXT_KEYS: &str =
    "dialogid|inviteid|callid|from|sipuserid|sipuserlogin|sipuserphonenumber|userid|confid|confroomnum|confnumber";

fn host() -> String {
    format!(r"(?:{HOSTNAME}|\[{IPV6}\])")
}

/// `user@host[:port][;params]` without a scheme.
fn bare_address() -> String {
    format!("{USER}@{}(?::{PORT})?{PARAMS}", host())
}

/// A URI of `scheme` (a regex), unanchored.
fn uri_of(scheme: &str) -> String {
    format!("{scheme}:(?:{USER}@)?{}(?::{PORT})?{PARAMS}", host())
}

/// A `sip:`/`sips:` URI (unanchored, for building the others).
pub fn sip_uri() -> String {
    uri_of("sips?")
}

/// Dial-out `to`. `sip:` only: we carry SIP over UDP and TCP, so a `sips:` target
/// (TLS) could never be called.
pub fn dial_target() -> String {
    let uri = uri_of("sip");
    format!(r"^(?:{DIALLED_NUMBER}|tel:\+?[0-9*#]+|<{uri}>|{uri}|{})$", bare_address())
}

/// Who to call into a call (transfer, supervise): a user's login (or extension or
/// number), or anything [`dial_target`] takes.
pub fn call_party() -> String {
    format!("^(?:[A-Za-z0-9._-]{{1,64}}|{})$", dial_target().trim_start_matches('^').trim_end_matches('$'))
}

/// LOOKUP `uri` and `confuri`, unanchored.
fn lookup_uri_part() -> String {
    let uri = sip_uri();
    format!("(?:<{uri}>|{uri}|{})", bare_address())
}

/// LOOKUP `uri` and `confuri`.
pub fn lookup_uri() -> String {
    format!("^{}$", lookup_uri_part())
}

/// A lookup expression standing for a confid in a path: one key, `key=value`; `from`
/// may come with `mode` (`from=2216&mode=number`, either order).
pub fn lookup_expression() -> String {
    let number = FROM_NUMBER.trim_start_matches('^').trim_end_matches('$');
    let uri = lookup_uri_part();
    format!(
        "(?:(?:{TEXT_KEYS})=[^&]*|(?:uri|confuri)={uri}\
         |from=[^&]*&mode=sipuser|mode=sipuser&from=[^&]*|from={number}&mode=number|mode=number&from={number})"
    )
}

/// A `{confid}` path segment: a confid (anything without `=`) or a lookup expression.
pub fn conference_ref() -> String {
    format!("^(?:[^=]+|{})$", lookup_expression())
}

/// List option `order` over `fields`: comma-separated, each optionally signed (`-`
/// descending, `+` ascending), spaces around items allowed, empty items ignored.
pub fn order(fields: &[&str]) -> String {
    let item = format!(" *(?:[+-]?(?:{}) *)?", fields.join("|"));
    format!("^{item}(?:,{item})*$")
}

/// A JSON number as a non-negative integer: `78` and `78.0` alike (JSON Schema's
/// `integer` admits both), below 2^64. None for fractions, negatives and larger values.
pub fn whole_u64(n: &serde_json::Number) -> Option<u64> {
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    // every whole f64 in [0, 2^64) converts exactly
    (f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f)).then_some(f as u64)
}

/// A JSON number as text for matching: whole numbers without a fraction (`9.0` is
/// `9`), others as serde_json prints them.
pub fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0 => {
            format!("{}", f as i128)
        }
        _ => n.to_string(),
    }
}

/// Whether `text` is in the format `pattern` (one of this module's).
pub fn matches(pattern: &str, text: &str) -> bool {
    static COMPILED: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Default::default);
    let mut cache = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).unwrap_or_else(|e| panic!("format pattern does not compile: {e}")));
    re.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conferences::lookup::parse_loose_uri;

    #[test]
    fn patterns_compile_in_rust() {
        for p in [dial_target(), lookup_uri(), conference_ref(), order(&["a", "b"])] {
            Regex::new(&p).unwrap();
        }
        Regex::new(FROM_NUMBER).unwrap();
        Regex::new(IDEMPOTENCY_KEY).unwrap();
    }

    #[test]
    fn sip_uris_that_match_parse() {
        let good = [
            "sip:bob@10.0.0.5:5070",
            "sip:bob@host",
            "sips:alice@example.com;transport=tcp",
            "sip:127.0.0.1:5060",
            "sip:+15550100@gw.example;user=phone",
            "sip:x@[::1]:5060",
            "sip:x@[2001:db8::7]",
            "sip:x@[1:2:3:4:5:6:7::]",
            "sip:*99#@h_1",
            "sip:a@b:1;lr",
            "sip:a@b:65535",
        ];
        for uri in good {
            assert!(matches(&lookup_uri(), uri), "{uri}");
            assert!(parse_loose_uri(uri).is_some(), "{uri} matches but does not parse");
            let bracketed = format!("<{uri}>");
            assert!(matches(&lookup_uri(), &bracketed) && parse_loose_uri(&bracketed).is_some(), "{bracketed}");
        }
        for bad in ["sip:", "sip:@h", "sip:a@b:65536", "sip:a@b:0", "sip:a@[::1", "sip:a b@c", "SIP:a@b", "http://x", "sip:a@b?x=y", "sip:a@b;", "<sip:a@b"] {
            assert!(!matches(&lookup_uri(), bad), "{bad} should not match");
        }
        assert!(matches(&lookup_uri(), "bob@10.0.0.1") && parse_loose_uri("bob@10.0.0.1").is_some());
    }

    #[test]
    fn dial_targets() {
        for ok in ["2216", "+1 (555) 010-0000", "*99#", "tel:+4930", "sip:bob@h", "<sip:bob@h:5070>", "bob@10.1.2.3", " 12 "] {
            assert!(matches(&dial_target(), ok), "{ok}");
        }
        for bad in ["", "+", "++1", "hello world", "tel:1-2", "\"Bob\" <sip:bob@h>", "12\n", "sip:bob@h\n", "sips:bob@h", "sip:bob@h:0"] {
            assert!(!matches(&dial_target(), bad), "{bad:?} should not match");
        }
    }

    #[test]
    fn conference_refs() {
        let p = conference_ref();
        for ok in [
            "rCF-001-PhKjyX",
            "anything & more",
            "confroomnum=9",
            "callid=a=b@host",
            "callid=",
            "from=sipp&mode=sipuser",
            "mode=number&from=+2216",
            "uri=<sip:alice@10.0.0.1:5060>",
            "confuri=sip:conf-9@sb.test",
        ] {
            assert!(matches(&p, ok), "{ok}");
        }
        for bad in ["bogus=1", "callid=1&confroomnum=2", "callid=1&callid=2", "mode=number", "from=alice&mode=number", "uri=not a uri", "=x", ""] {
            assert!(!matches(&p, bad), "{bad} should not match");
        }
    }

    #[test]
    fn json_numbers() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(whole_u64(&n("78")), Some(78));
        assert_eq!(whole_u64(&n("78.0")), Some(78));
        assert_eq!(whole_u64(&n("-0.0")), Some(0));
        assert_eq!(whole_u64(&n("18446744073709551615")), Some(u64::MAX));
        assert_eq!(whole_u64(&n("1.8446744073709552e19")), None);
        assert_eq!(whole_u64(&n("1.5")), None);
        assert_eq!(whole_u64(&n("-1")), None);
        assert_eq!(number_text(&n("9.0")), "9");
        assert_eq!(number_text(&n("-9.0")), "-9");
        assert_eq!(number_text(&n("9.5")), "9.5");
        assert_eq!(number_text(&n("1e300")), "1e+300");
        assert_eq!(number_text(&n("12")), "12");
    }

    #[test]
    fn order_and_keys() {
        let p = order(&["confid", "startts"]);
        for ok in ["", "confid", "-startts,confid", " +confid , -startts ", ",,confid,"] {
            assert!(matches(&p, ok), "{ok:?}");
        }
        for bad in ["nosuch", "--confid", "+-confid", "-", "confid\t", "con fid"] {
            assert!(!matches(&p, bad), "{bad:?} should not match");
        }
        for ok in ["k", "dial-1", "a b\tc", &"x".repeat(255)] {
            assert!(matches(IDEMPOTENCY_KEY, ok), "{ok:?}");
        }
        for bad in ["", " a", "a ", "é", &"x".repeat(256)] {
            assert!(!matches(IDEMPOTENCY_KEY, bad), "{bad:?} should not match");
        }
    }
}
