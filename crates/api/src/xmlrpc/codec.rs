//! XML-RPC on the wire: reading a `<methodCall>`, writing a `<methodResponse>`.
//!
//! Hand-written rather than built on an XML crate: XML-RPC uses a small corner of XML
//! (elements and text; no namespaces, DTDs or meaningful attributes), and the reader
//! has to refuse what a client could make expensive (huge bodies, deep nesting, entity
//! expansion) whatever library sits underneath.
//!
//! The reader takes UTF-8 only, with an optional BOM and `<?xml …?>` declaration;
//! whitespace, comments and processing instructions between elements; the five
//! predefined entities, numeric character references and CDATA in text. Attributes
//! are read and ignored. A `<!DOCTYPE>` is refused, so no entity can be declared.
//! Line ends in text become `\n`, as every XML parser (and so Python's server) does.
//! Bodies are limited to [`MAX_BODY_BYTES`] and values nest at most [`MAX_DEPTH`]
//! deep: the parser recurses once per nested value, and nowhere else.
//!
//! The writer follows SEMS's xmlrpc2di (XmlRpc++ 0.8) where the reference notes say
//! how: strings as untyped `<value>text</value>`, integers as `<i4>`, an empty value
//! as `<i4>0</i4>`. The rest is as Python's `xmlrpc.client.dumps` writes it.

use base64::Engine as _;
use std::fmt::{self, Write};

/// The largest request body read. A webconference call is well under 4 KiB; a
/// `system.multicall` of a few hundred of them still fits.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How deeply values may nest (a parameter is depth 1; each array or struct adds one).
pub const MAX_DEPTH: usize = 64;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>` or `<i4>`; also `<i8>` when it fits, since no webconference argument
    /// needs more than SEMS's 32-bit integers and Python never sends `<i8>`.
    Int(i32),
    Boolean(bool),
    /// `<string>`, or a `<value>` holding only text (the spec's default type).
    String(String),
    Double(f64),
    /// `<dateTime.iso8601>`, its text as sent (the spec leaves the zone unstated, so
    /// there is nothing sound to convert it to).
    DateTime(String),
    /// `<base64>`, decoded.
    Base64(Vec<u8>),
    Array(Vec<Value>),
    /// Members in the order sent.
    Struct(Vec<(String, Value)>),
    /// `<nil/>`, sent by Python with `allow_none`. Written as `<i4>0</i4>`, which is
    /// how SEMS answers an empty value.
    Nil,
}

impl Value {
    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i32> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A struct's first member of that name.
    pub fn member(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A parsed request: the method's name and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method_name: String,
    pub params: Vec<Value>,
}

/// Why a request body is not a method call. Offsets are in bytes from the body's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlRpcError {
    TooLarge { bytes: usize, limit: usize },
    NotUtf8 { offset: usize },
    TooDeep { offset: usize, limit: usize },
    /// Not well-formed XML: unbalanced or truncated, a bad entity or character.
    Syntax { offset: usize, reason: String },
    /// Well-formed, but not a method call: wrong root, misplaced element, unknown type.
    Shape { offset: usize, reason: String },
    /// A scalar whose text does not fit its type (`<int>12x</int>`).
    BadScalar { offset: usize, reason: String },
}

impl fmt::Display for XmlRpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlRpcError::TooLarge { bytes, limit } => write!(f, "request body is {bytes} bytes; the limit is {limit}"),
            XmlRpcError::NotUtf8 { offset } => write!(f, "request body is not UTF-8 (byte {offset})"),
            XmlRpcError::TooDeep { offset, limit } => write!(f, "values nest deeper than {limit} levels (byte {offset})"),
            XmlRpcError::Syntax { offset, reason } => write!(f, "not well-formed XML at byte {offset}: {reason}"),
            XmlRpcError::Shape { offset, reason } => write!(f, "not an XML-RPC method call at byte {offset}: {reason}"),
            XmlRpcError::BadScalar { offset, reason } => write!(f, "bad value at byte {offset}: {reason}"),
        }
    }
}

impl std::error::Error for XmlRpcError {}

/// Reads a `<methodCall>` document.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, XmlRpcError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(XmlRpcError::TooLarge { bytes: body.len(), limit: MAX_BODY_BYTES });
    }
    let text = std::str::from_utf8(body).map_err(|e| XmlRpcError::NotUtf8 { offset: e.valid_up_to() })?;
    let mut parser = Parser { reader: Reader::new(text)?, depth: 0 };
    parser.method_call()
}

/// A successful reply carrying `value`.
pub fn write_response(value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("\n</param>\n</params>\n</methodResponse>\n");
    out
}

/// A fault reply: the struct of `faultCode` and `faultString` that `xmlrpc.client`
/// raises as `xmlrpc.client.Fault`.
pub fn write_fault(code: i32, message: &str) -> String {
    let fault = Value::Struct(vec![
        ("faultCode".to_owned(), Value::Int(code)),
        ("faultString".to_owned(), Value::string(message)),
    ]);
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodResponse>\n<fault>\n");
    write_value(&mut out, &fault);
    out.push_str("\n</fault>\n</methodResponse>\n");
    out
}

fn write_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Int(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Value::Nil => out.push_str("<i4>0</i4>"),
        Value::Boolean(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::String(s) => write_text(out, s),
        // Display never uses an exponent, which the spec forbids; Python also reads
        // the `inf` and `NaN` it writes for non-finite values.
        Value::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        Value::DateTime(t) => {
            out.push_str("<dateTime.iso8601>");
            write_text(out, t);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            out.push_str("<base64>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            out.push_str("</base64>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                write_value(out, item);
                out.push('\n');
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>\n");
            for (name, member) in members {
                out.push_str("<member>\n<name>");
                write_text(out, name);
                out.push_str("</name>\n");
                write_value(out, member);
                out.push_str("\n</member>\n");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Text content, escaped. A CR goes as a reference, or the client's parser would turn
/// it into LF. Characters XML 1.0 cannot carry at all (most C0 controls) become
/// U+FFFD: they can arrive in SIP display names, and one would spoil the whole reply.
fn write_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
}

/// XML 1.0's `Char` production (Rust strings hold no surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_blank(text: &str) -> bool {
    text.chars().all(is_xml_space)
}

/// One piece of the document, as the parser sees it.
#[derive(Debug)]
enum Token<'a> {
    /// `<name …>`
    Open(&'a str),
    /// `<name …/>`
    Empty(&'a str),
    /// `</name>`
    Close(&'a str),
    /// Character data, entities decoded; comments split it into several tokens.
    Text(String),
    End,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Token::Open(n) => format!("<{n}>"),
            Token::Empty(n) => format!("<{n}/>"),
            Token::Close(n) => format!("</{n}>"),
            Token::Text(t) => format!("text {:?}", t.chars().take(40).collect::<String>()),
            Token::End => "the end of the input".to_owned(),
        }
    }
}

/// The tokenizer. It checks that tags balance (keeping the names of open elements),
/// so the parser only has to check that the right elements come in the right order.
struct Reader<'a> {
    src: &'a str,
    pos: usize,
    open: Vec<&'a str>,
    root_seen: bool,
}

impl<'a> Reader<'a> {
    /// Starts after the BOM and the XML declaration, if any.
    fn new(src: &'a str) -> Result<Reader<'a>, XmlRpcError> {
        let mut reader = Reader { src, pos: 0, open: Vec::new(), root_seen: false };
        if src.starts_with('\u{feff}') {
            reader.pos = '\u{feff}'.len_utf8();
        }
        if reader.at_declaration() {
            let end = reader.find("?>").ok_or_else(|| reader.syntax("unterminated XML declaration"))?;
            let declaration = &src[reader.pos..end];
            if let Some(encoding) = pseudo_attribute(declaration, "encoding") {
                if !encoding.eq_ignore_ascii_case("utf-8") && !encoding.eq_ignore_ascii_case("us-ascii") {
                    return Err(reader.shape(format!("encoding {encoding:?} is not supported; send UTF-8")));
                }
            }
            reader.pos = end + 2;
        }
        Ok(reader)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_declaration(&self) -> bool {
        self.rest().strip_prefix("<?xml").is_some_and(|after| after.starts_with(|c: char| is_xml_space(c) || c == '?'))
    }

    /// Where `needle` next starts, as an absolute offset.
    fn find(&self, needle: &str) -> Option<usize> {
        self.rest().find(needle).map(|i| self.pos + i)
    }

    fn syntax(&self, reason: impl Into<String>) -> XmlRpcError {
        XmlRpcError::Syntax { offset: self.pos, reason: reason.into() }
    }

    fn shape(&self, reason: impl Into<String>) -> XmlRpcError {
        XmlRpcError::Shape { offset: self.pos, reason: reason.into() }
    }

    fn next_token(&mut self) -> Result<Token<'a>, XmlRpcError> {
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return match self.open.last() {
                    Some(name) => Err(self.syntax(format!("input ends inside <{name}>"))),
                    None => Ok(Token::End),
                };
            }
            if rest.starts_with("<!--") {
                let end = self.find("-->").ok_or_else(|| self.syntax("unterminated comment"))?;
                self.pos = end + 3;
            } else if rest.starts_with("<![CDATA[") {
                if self.open.is_empty() {
                    return Err(self.syntax("CDATA outside the root element"));
                }
                let start = self.pos + "<![CDATA[".len();
                let end = self.find("]]>").ok_or_else(|| self.syntax("unterminated CDATA section"))?;
                let text = decode_text(&self.src[start..end], start, false)?;
                self.pos = end + 3;
                return Ok(Token::Text(text));
            } else if rest.starts_with("<!") {
                return Err(self.shape("document type declarations are not accepted"));
            } else if rest.starts_with("<?") {
                if self.at_declaration() {
                    return Err(self.syntax("XML declaration after the start of the document"));
                }
                let end = self.find("?>").ok_or_else(|| self.syntax("unterminated processing instruction"))?;
                self.pos = end + 2;
            } else if let Some(after) = rest.strip_prefix("</") {
                let name = tag_name(after);
                let close = self.pos;
                self.pos += 2 + name.len();
                self.skip_space();
                if !self.rest().starts_with('>') {
                    return Err(self.tag_error(name));
                }
                self.pos += 1;
                return match self.open.pop() {
                    Some(open) if open == name => Ok(Token::Close(name)),
                    Some(open) => Err(XmlRpcError::Syntax { offset: close, reason: format!("</{name}> closes <{open}>") }),
                    None => Err(XmlRpcError::Syntax { offset: close, reason: format!("</{name}> closes nothing") }),
                };
            } else if let Some(after) = rest.strip_prefix('<') {
                let name = tag_name(after);
                if self.open.is_empty() && self.root_seen {
                    return Err(self.syntax(format!("a second root element <{name}>")));
                }
                self.pos += 1 + name.len();
                let empty = self.skip_attributes(name)?;
                self.root_seen = true;
                if empty {
                    return Ok(Token::Empty(name));
                }
                self.open.push(name);
                return Ok(Token::Open(name));
            } else {
                let start = self.pos;
                let end = self.find("<").unwrap_or(self.src.len());
                let text = decode_text(&self.src[start..end], start, true)?;
                if self.open.is_empty() && !is_blank(&text) {
                    return Err(XmlRpcError::Syntax { offset: start, reason: "text outside the root element".to_owned() });
                }
                self.pos = end;
                return Ok(Token::Text(text));
            }
        }
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_xml_space).len();
    }

    fn tag_error(&self, name: &str) -> XmlRpcError {
        if self.rest().is_empty() {
            self.syntax("input ends inside a tag")
        } else if name.is_empty() {
            self.syntax("a tag without a valid name")
        } else {
            self.syntax(format!("unexpected {:?} in tag <{name}>", self.rest().chars().next().unwrap_or(' ')))
        }
    }

    /// Reads past a start tag's attributes and its `>` or `/>`; true for `/>`.
    fn skip_attributes(&mut self, name: &str) -> Result<bool, XmlRpcError> {
        if name.is_empty() {
            return Err(self.tag_error(name));
        }
        loop {
            self.skip_space();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok(true);
            }
            if rest.starts_with('>') {
                self.pos += 1;
                return Ok(false);
            }
            let attribute = tag_name(rest);
            if attribute.is_empty() {
                return Err(self.tag_error(name));
            }
            self.pos += attribute.len();
            self.skip_space();
            if !self.rest().starts_with('=') {
                return Err(self.tag_error(name));
            }
            self.pos += 1;
            self.skip_space();
            let Some(quote) = self.rest().chars().next().filter(|c| *c == '"' || *c == '\'') else {
                return Err(self.tag_error(name));
            };
            let value_end = self.rest()[1..].find(quote).ok_or_else(|| self.syntax("input ends inside a tag"))?;
            if self.rest()[1..1 + value_end].contains('<') {
                return Err(self.syntax(format!("'<' in an attribute of <{name}>")));
            }
            self.pos += value_end + 2;
        }
    }
}

/// The XML name at the start of `s` (empty if there is none).
fn tag_name(s: &str) -> &str {
    if s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '.')) {
        return "";
    }
    let end = s.find(|c: char| is_xml_space(c) || matches!(c, '/' | '>' | '=' | '<' | '"' | '\'')).unwrap_or(s.len());
    &s[..end]
}

/// `key="value"` (or single-quoted) inside an XML declaration.
fn pseudo_attribute<'s>(declaration: &'s str, key: &str) -> Option<&'s str> {
    let after = declaration[declaration.find(key)? + key.len()..].trim_start_matches(is_xml_space);
    let after = after.strip_prefix('=')?.trim_start_matches(is_xml_space);
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after[1..];
    Some(&value[..value.find(quote)?])
}

/// Character data: line ends normalised; entities and character references decoded
/// unless the text is a CDATA section (`markup` false).
fn decode_text(raw: &str, offset: usize, markup: bool) -> Result<String, XmlRpcError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\r' => {
                chars.next_if(|(_, c)| *c == '\n');
                out.push('\n');
            }
            '&' if markup => {
                let reference = &raw[i + 1..];
                let end = reference.find(';').filter(|end| *end <= 10).ok_or_else(|| XmlRpcError::Syntax {
                    offset: offset + i,
                    reason: "'&' that starts no entity or character reference".to_owned(),
                })?;
                out.push(decode_reference(&reference[..end]).ok_or_else(|| XmlRpcError::Syntax {
                    offset: offset + i,
                    reason: format!("unknown or invalid reference &{};", &reference[..end]),
                })?);
                while chars.next_if(|(j, _)| *j <= i + 1 + end).is_some() {}
            }
            c if is_xml_char(c) => out.push(c),
            c => {
                return Err(XmlRpcError::Syntax {
                    offset: offset + i,
                    reason: format!("character U+{:04X} is not allowed in XML", u32::from(c)),
                })
            }
        }
    }
    Ok(out)
}

/// The character `&name;` stands for (`name` without `&` and `;`).
fn decode_reference(name: &str) -> Option<char> {
    let code = match name {
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "amp" => return Some('&'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            match number.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => u32::from_str_radix(hex, 16).ok()?,
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => number.parse().ok()?,
                _ => return None,
            }
        }
    };
    char::from_u32(code).filter(|c| is_xml_char(*c))
}

/// The parser proper: recursive descent over the tokens, one level per nested value.
struct Parser<'a> {
    reader: Reader<'a>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<(usize, Token<'a>), XmlRpcError> {
        let offset = self.reader.pos;
        Ok((offset, self.reader.next_token()?))
    }

    /// The next token that is not whitespace between elements.
    fn next_element(&mut self) -> Result<(usize, Token<'a>), XmlRpcError> {
        loop {
            match self.next()? {
                (_, Token::Text(t)) if is_blank(&t) => continue,
                (offset, Token::Text(t)) => {
                    return Err(XmlRpcError::Shape { offset, reason: format!("{} where an element belongs", Token::Text(t).describe()) })
                }
                other => return Ok(other),
            }
        }
    }

    /// `<name>` or `<name/>` next; true for the latter.
    fn expect_open(&mut self, name: &str) -> Result<bool, XmlRpcError> {
        match self.next_element()? {
            (_, Token::Open(n)) if n == name => Ok(false),
            (_, Token::Empty(n)) if n == name => Ok(true),
            (offset, other) => Err(unexpected(offset, &format!("<{name}>"), &other)),
        }
    }

    fn expect_close(&mut self, name: &str) -> Result<(), XmlRpcError> {
        match self.next_element()? {
            (_, Token::Close(n)) if n == name => Ok(()),
            (offset, other) => Err(unexpected(offset, &format!("</{name}>"), &other)),
        }
    }

    /// The text of an element that holds only text, up to its end tag.
    fn text_until_close(&mut self, name: &str) -> Result<String, XmlRpcError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                (_, Token::Text(t)) => text.push_str(&t),
                (_, Token::Close(n)) if n == name => return Ok(text),
                (offset, other) => {
                    return Err(XmlRpcError::Shape { offset, reason: format!("<{name}> holds only text, found {}", other.describe()) })
                }
            }
        }
    }

    fn method_call(&mut self) -> Result<MethodCall, XmlRpcError> {
        if self.expect_open("methodCall")? {
            return Err(self.reader.shape("<methodCall/> is empty"));
        }
        if self.expect_open("methodName")? {
            return Err(self.reader.shape("<methodName/> is empty"));
        }
        let method_name = self.text_until_close("methodName")?.trim_matches(is_xml_space).to_owned();
        if method_name.is_empty() {
            return Err(self.reader.shape("<methodName> is empty"));
        }
        let mut params = Vec::new();
        match self.next_element()? {
            (_, Token::Close("methodCall")) => return self.end(MethodCall { method_name, params }),
            (_, Token::Empty("params")) => {}
            (_, Token::Open("params")) => loop {
                match self.next_element()? {
                    (_, Token::Close("params")) => break,
                    (_, Token::Open("param")) => {
                        params.push(self.value_element()?);
                        self.expect_close("param")?;
                    }
                    (offset, other) => return Err(unexpected(offset, "<param> or </params>", &other)),
                }
            },
            (offset, other) => return Err(unexpected(offset, "<params> or </methodCall>", &other)),
        }
        self.expect_close("methodCall")?;
        self.end(MethodCall { method_name, params })
    }

    /// Only whitespace, comments and processing instructions may follow the root.
    fn end(&mut self, call: MethodCall) -> Result<MethodCall, XmlRpcError> {
        match self.next_element()? {
            (_, Token::End) => Ok(call),
            (offset, other) => Err(unexpected(offset, "the end after </methodCall>", &other)),
        }
    }

    /// A whole `<value>…</value>` (or `<value/>`, an empty string).
    fn value_element(&mut self) -> Result<Value, XmlRpcError> {
        if self.expect_open("value")? {
            Ok(Value::String(String::new()))
        } else {
            self.value()
        }
    }

    /// A value's content after its `<value>` tag, through `</value>`.
    fn value(&mut self) -> Result<Value, XmlRpcError> {
        if self.depth == MAX_DEPTH {
            return Err(XmlRpcError::TooDeep { offset: self.reader.pos, limit: MAX_DEPTH });
        }
        self.depth += 1;
        let mut text = String::new();
        let value = loop {
            match self.next()? {
                (_, Token::Text(t)) => text.push_str(&t),
                (_, Token::Close("value")) => break Value::String(text),
                (offset, Token::Open(name)) | (offset, Token::Empty(name)) if !is_blank(&text) => {
                    return Err(XmlRpcError::Shape { offset, reason: format!("text beside <{name}> in a <value>") })
                }
                (offset, Token::Open(name)) => {
                    let value = self.typed(name, false, offset)?;
                    self.expect_close("value")?;
                    break value;
                }
                (offset, Token::Empty(name)) => {
                    let value = self.typed(name, true, offset)?;
                    self.expect_close("value")?;
                    break value;
                }
                (offset, other) => return Err(unexpected(offset, "a type or text in <value>", &other)),
            }
        };
        self.depth -= 1;
        Ok(value)
    }

    /// A typed value whose start tag (`empty` if self-closing) has just been read.
    fn typed(&mut self, name: &'a str, empty: bool, offset: usize) -> Result<Value, XmlRpcError> {
        let text = |parser: &mut Parser<'a>| if empty { Ok(String::new()) } else { parser.text_until_close(name) };
        let bad = |reason: String| XmlRpcError::BadScalar { offset, reason };
        Ok(match name {
            "int" | "i4" => {
                let t = text(self)?;
                Value::Int(t.trim_matches(is_xml_space).parse().map_err(|_| bad(format!("<{name}> {t:?} is not a 32-bit integer")))?)
            }
            "i8" => {
                let t = text(self)?;
                let wide: i64 = t.trim_matches(is_xml_space).parse().map_err(|_| bad(format!("<i8> {t:?} is not a 64-bit integer")))?;
                Value::Int(i32::try_from(wide).map_err(|_| bad(format!("<i8> {t:?} is outside the 32-bit range this server takes")))?)
            }
            "boolean" => match text(self)?.trim_matches(is_xml_space) {
                "1" => Value::Boolean(true),
                "0" => Value::Boolean(false),
                t => return Err(bad(format!("<boolean> {t:?} is neither 0 nor 1"))),
            },
            "double" => {
                let t = text(self)?;
                Value::Double(t.trim_matches(is_xml_space).parse().map_err(|_| bad(format!("<double> {t:?} is not a number")))?)
            }
            "string" => Value::String(text(self)?),
            "dateTime.iso8601" => {
                let t = text(self)?.trim_matches(is_xml_space).to_owned();
                if t.is_empty() {
                    return Err(bad("<dateTime.iso8601> is empty".to_owned()));
                }
                Value::DateTime(t)
            }
            "base64" => {
                // Python breaks base64 into lines of 76.
                let t: String = text(self)?.chars().filter(|c| !is_xml_space(*c)).collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(&t).map_err(|e| bad(format!("<base64>: {e}")))?;
                Value::Base64(bytes)
            }
            "nil" => {
                if !empty && !is_blank(&self.text_until_close("nil")?) {
                    return Err(bad("<nil> holds text".to_owned()));
                }
                Value::Nil
            }
            "array" if empty => Value::Array(Vec::new()),
            "array" => Value::Array(self.array_items()?),
            "struct" if empty => Value::Struct(Vec::new()),
            "struct" => Value::Struct(self.struct_members()?),
            other => return Err(XmlRpcError::Shape { offset, reason: format!("unknown value type <{other}>") }),
        })
    }

    /// After `<array>`: `<data>` with its values, through `</array>`.
    fn array_items(&mut self) -> Result<Vec<Value>, XmlRpcError> {
        let mut items = Vec::new();
        match self.next_element()? {
            // The spec wants <data>; Python reads an array without it, so do we.
            (_, Token::Close("array")) => return Ok(items),
            (_, Token::Empty("data")) => {}
            (_, Token::Open("data")) => loop {
                match self.next_element()? {
                    (_, Token::Close("data")) => break,
                    (_, Token::Open("value")) => items.push(self.value()?),
                    (_, Token::Empty("value")) => items.push(Value::String(String::new())),
                    (offset, other) => return Err(unexpected(offset, "<value> or </data>", &other)),
                }
            },
            (offset, other) => return Err(unexpected(offset, "<data>", &other)),
        }
        self.expect_close("array")?;
        Ok(items)
    }

    /// After `<struct>`: its members, through `</struct>`.
    fn struct_members(&mut self) -> Result<Vec<(String, Value)>, XmlRpcError> {
        let mut members = Vec::new();
        loop {
            match self.next_element()? {
                (_, Token::Close("struct")) => return Ok(members),
                (_, Token::Open("member")) => {
                    let name = if self.expect_open("name")? { String::new() } else { self.text_until_close("name")? };
                    let value = self.value_element()?;
                    self.expect_close("member")?;
                    members.push((name, value));
                }
                (offset, other) => return Err(unexpected(offset, "<member> or </struct>", &other)),
            }
        }
    }
}

fn unexpected(offset: usize, wanted: &str, found: &Token<'_>) -> XmlRpcError {
    XmlRpcError::Shape { offset, reason: format!("expected {wanted}, found {}", found.describe()) }
}
