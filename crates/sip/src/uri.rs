//! SIP/SIPS URIs (RFC 3261 §19.1) and name-addr values (`"Bob" <sip:bob@host>;tag=x`).
//!
//! Fields hold *unescaped* text; the printer escapes what the grammar requires, so a
//! round trip through parse and print is stable.

use std::fmt;

/// One `;name=value` or `;name` parameter, in the order it appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        Param { name: name.into(), value: value.map(Into::into) }
    }
}

/// Parameter list helpers shared by URIs, name-addrs and Via.
pub trait Params {
    fn params(&self) -> &[Param];
    fn params_mut(&mut self) -> &mut Vec<Param>;

    /// The value of parameter `name` (case-insensitive name). `Some(None)` for a flag.
    fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }
    /// Sets (replacing) parameter `name`.
    fn set_param(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(str::to_owned);
        let ps = self.params_mut();
        match ps.iter_mut().find(|p| p.name.eq_ignore_ascii_case(name)) {
            Some(p) => p.value = v,
            None => ps.push(Param { name: name.to_owned(), value: v }),
        }
    }
    fn remove_param(&mut self, name: &str) {
        self.params_mut().retain(|p| !p.name.eq_ignore_ascii_case(name));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// `sip:user:password@host:port;params?headers`.
///
/// For `tel:` URIs the number is in `user` and `host` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IPv4 literal, or IPv6 reference *with* its brackets (`[::1]`).
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// `?name=value&...` URI headers, unescaped.
    pub headers: Vec<(String, String)>,
}

impl Uri {
    /// `sip:user@host[:port]`, the common case.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            password: None,
            host: host.to_owned(),
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// `transport` parameter, lower-cased, if present.
    pub fn transport(&self) -> Option<String> {
        self.param("transport").flatten().map(|t| t.to_ascii_lowercase())
    }

    /// Whether the URI carries the `lr` flag (loose routing, RFC 3261 §16.12).
    pub fn is_loose_route(&self) -> bool {
        self.param("lr").is_some()
    }
}

impl Params for Uri {
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Vec<Param> {
        &mut self.params
    }
}

/// A name-addr or addr-spec with header parameters: the value of From, To, Contact,
/// Route and Record-Route. `params` are the header parameters (after `>`), not the
/// URI's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        NameAddr { display: None, uri, params: Vec::new() }
    }
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.set_param("tag", Some(tag));
        self
    }
}

impl Params for NameAddr {
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Vec<Param> {
        &mut self.params
    }
}

// Display impls (the printer) live in `parse.rs`'s sibling `print` section below.
pub(crate) fn _assert_display()
where
    Uri: fmt::Display,
    NameAddr: fmt::Display,
{
}
