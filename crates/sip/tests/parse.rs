//! Parser and printer tests: RFC 4475-style valid and invalid messages, round trips,
//! stream framing, 400 salvage, and a randomized no-panic/round-trip sweep.

use sip::parse::*;
use sip::*;

/// Joins lines with CRLF, ends the header section, and appends `body` with a correct
/// Content-Length unless the headers already carry one (`{len}` is substituted).
fn msg(lines: &[&str], body: &str) -> Vec<u8> {
    let mut s = lines.join("\r\n").replace("{len}", &body.len().to_string());
    s.push_str("\r\n\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn request(buf: &[u8]) -> Request {
    match parse_datagram(buf) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected request, got {other:?}"),
    }
}

fn response(buf: &[u8]) -> Response {
    match parse_datagram(buf) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected response, got {other:?}"),
    }
}

fn err(buf: &[u8]) -> ParseError {
    match parse_datagram(buf) {
        Err(e) => e,
        Ok(m) => panic!("expected error, got {m:?}"),
    }
}

/// Parse → print → parse gives the same message, and printing is then stable.
fn assert_round_trip(m: &Message) {
    let wire = m.to_bytes();
    let again = parse_datagram(&wire)
        .unwrap_or_else(|e| panic!("reparse failed: {e:?}\n{}", String::from_utf8_lossy(&wire)));
    assert_eq!(
        &again,
        m,
        "round trip changed the message:\n{}",
        String::from_utf8_lossy(&wire)
    );
    assert_eq!(again.to_bytes(), wire);
    // The same bytes frame and parse identically on a stream.
    assert_eq!(frame_stream(&wire), Ok(Frame::Message(wire.len())));
    assert_eq!(parse_stream_message(&wire).as_ref(), Ok(m));
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn basic_invite() -> Vec<u8> {
    msg(
        &[
            "INVITE sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.example.com>",
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 INVITE",
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "User-Agent: test/1.0",
            "Content-Type: application/sdp",
            "Content-Length: {len}",
        ],
        SDP,
    )
}

// ---------------------------------------------------------------------------------
// Printer

#[test]
fn prints_request_in_documented_order() {
    let r = request(&basic_invite());
    let text = String::from_utf8(r.to_bytes()).unwrap();
    let expected = format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
         Max-Forwards: 70\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         To: Bob <sip:bob@biloxi.example.com>\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
         CSeq: 314159 INVITE\r\n\
         Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
         User-Agent: test/1.0\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    assert_eq!(text, expected);
    assert_eq!(r.to_string(), expected);
}

#[test]
fn prints_response_and_derives_content_length() {
    let req = request(&basic_invite());
    let mut resp = req.response(200, Some("as83kd9bs"));
    resp.body = b"\xff\x00binary".to_vec();
    let wire = resp.to_bytes();
    let text = String::from_utf8_lossy(&wire);
    assert!(text.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;"));
    assert!(text.contains("\r\nTo: Bob <sip:bob@biloxi.example.com>;tag=as83kd9bs\r\n"));
    assert!(text.contains("\r\nContent-Length: 8\r\n\r\n"));
    assert!(wire.ends_with(b"\xff\x00binary"));
    assert_eq!(response(&wire), resp);
}

#[test]
fn prints_uri_escapes() {
    let mut u = Uri::sip(Some("I have spaces@home"), "example.net", Some(5070));
    u.password = Some("p:w@d".into());
    u.params.push(Param::new("name", Some("va lue;x")));
    u.params.push(Param::new("lr", None::<String>));
    u.params.push(Param::new("maddr", Some("[2001:db8::1]")));
    u.headers.push(("Subject".into(), "hi there&=".into()));
    u.headers.push(("Route".into(), "<sip:x@y>".into()));
    let s = u.to_string();
    assert_eq!(
        s,
        "sip:I%20have%20spaces%40home:p%3Aw%40d@example.net:5070;name=va%20lue%3Bx;lr;\
         maddr=[2001:db8::1]?Subject=hi%20there%26%3D&Route=%3Csip:x%40y%3E"
    );
    assert_eq!(parse_uri(&s).unwrap(), u);

    // User-unreserved characters stay as they are; non-ASCII is escaped per byte.
    let u = Uri::sip(Some("+1;isub=2?/é"), "h", None);
    assert_eq!(u.to_string(), "sip:+1;isub=2?/%C3%A9@h");
    assert_eq!(parse_uri(&u.to_string()).unwrap(), u);

    let tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com").unwrap();
    assert_eq!(tel.scheme, Scheme::Tel);
    assert_eq!(tel.user.as_deref(), Some("+1-201-555-0123"));
    assert_eq!(
        tel.to_string(),
        "tel:+1-201-555-0123;phone-context=example.com"
    );
}

#[test]
fn prints_display_names_quoted_when_needed() {
    let mut na = NameAddr::new(Uri::sip(Some("a"), "h", None));
    na.display = Some("Alice Smith".into());
    assert_eq!(na.to_string(), "Alice Smith <sip:a@h>");
    na.display = Some("J \"R\" \\ O'Neil, Esq.".into());
    assert_eq!(na.to_string(), r#""J \"R\" \\ O'Neil, Esq." <sip:a@h>"#);
    assert_eq!(parse_name_addr(&na.to_string()).unwrap(), na);
    na.display = Some(String::new());
    assert_eq!(na.to_string(), r#""" <sip:a@h>"#);
    na.display = Some("evil\r\nVia: x".into());
    assert_eq!(na.to_string(), r#""evil  Via: x" <sip:a@h>"#);
    na.display = None;
    na.params.push(Param::new("tag", Some("x1")));
    na.params.push(Param::new("note", Some("has space")));
    na.params
        .push(Param::new("+sip.instance", Some("\"<urn:uuid:1>\"")));
    assert_eq!(
        na.to_string(),
        r#"<sip:a@h>;tag=x1;note="has space";+sip.instance="<urn:uuid:1>""#
    );
}

#[test]
fn printer_never_emits_injected_lines() {
    let mut r = request(&basic_invite());
    r.headers.call_id = "abc\r\nVia: SIP/2.0/UDP evil".into();
    r.headers.push("Subject", "x\ny");
    r.headers.from.uri.host = "h\r\nX: y".into();
    r.headers.push("content-length", "999");
    let wire = String::from_utf8(r.to_bytes()).unwrap();
    let head = wire.split("\r\n\r\n").next().unwrap();
    assert!(head
        .lines()
        .all(|l| !l.starts_with("Via: SIP/2.0/UDP evil") && !l.starts_with("X: y")));
    assert!(!head.replace("\r\n", "").contains(['\r', '\n']));
    assert_eq!(head.matches("Content-Length").count(), 1);
}

#[test]
fn prints_via() {
    let v =
        parse_via("SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;received=192.0.2.1;rport=5062")
            .unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        v[0].to_string(),
        "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;received=192.0.2.1;rport=5062"
    );
    assert_eq!(v[0].rport(), Some(Some(5062)));
}

// ---------------------------------------------------------------------------------
// Valid messages (modelled on RFC 4475 §3.1.1)

#[test]
fn basic_invite_fields() {
    let r = request(&basic_invite());
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, Uri::sip(Some("bob"), "biloxi.example.com", None));
    let h = &r.headers;
    assert_eq!(h.via.len(), 1);
    assert_eq!(h.via[0].transport, Transport::Udp);
    assert_eq!(h.via[0].branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(h.via[0].rport(), Some(None));
    assert!(h.via[0].has_rfc3261_branch());
    assert_eq!(h.max_forwards, Some(70));
    assert_eq!(h.to.display.as_deref(), Some("Bob"));
    assert_eq!(h.to.tag(), None);
    assert_eq!(h.from.tag(), Some("1928301774"));
    assert_eq!(h.call_id, "a84b4c76e66710@pc33.atlanta.example.com");
    assert_eq!(
        h.cseq,
        CSeq {
            seq: 314159,
            method: Method::Invite
        }
    );
    assert_eq!(h.contact.len(), 1);
    assert_eq!(h.content_type.as_deref(), Some("application/sdp"));
    assert_eq!(h.get("user-agent"), Some("test/1.0"));
    assert_eq!(r.body, SDP.as_bytes());
    assert_round_trip(&Message::Request(r));
}

/// RFC 4475 §3.1.1.1 "wsinv": odd whitespace, folding, case, and separators.
#[test]
fn short_tortuous_invite() {
    let buf = msg(
        &[
            "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
            "TO :",
            " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>",
            "  ;",
            "  tag = 98asjd8",
            "MaX-fOrWaRdS: 0068",
            "Call-ID: wsinv.ndaksdj@192.0.2.1",
            "Content-Length   : {len}",
            "cseq: 0009",
            "  INVITE",
            "Via  : SIP  /   2.0",
            " /UDP",
            "    192.0.2.2;branch=390skdjuw",
            "s :",
            "NewFangledHeader:   newfangled value",
            " continued newfangled value",
            "UnknownHeaderWithUnusualValue: ;;,,;;,;",
            "Content-Type: application/sdp",
            "Route:",
            " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
            "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
            "  branch  =   z9hG4bK9ikj8  ,",
            " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
            " z9hG4bK30239",
            "m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =",
            "      newvalue ;",
            "  secondparam ; q = 0.33",
        ],
        SDP,
    );
    let r = request(&buf);
    let h = &r.headers;
    assert_eq!(r.uri.param("unknownparam"), Some(None));
    assert_eq!(
        h.to.uri,
        Uri::sip(Some("vivekg"), "chair-dnrc.example.com", None)
    );
    assert_eq!(h.to.tag(), Some("1918181833n"));
    assert_eq!(h.from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(h.from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards, Some(68));
    assert_eq!(
        h.cseq,
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    assert_eq!(h.via.len(), 3);
    assert_eq!(
        (h.via[0].host.as_str(), h.via[0].branch()),
        ("192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(h.via[1].transport, Transport::Tcp);
    assert_eq!(
        (h.via[1].host.as_str(), h.via[1].branch()),
        ("spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(
        (h.via[2].host.as_str(), h.via[2].branch()),
        ("192.168.255.111", Some("z9hG4bK30239"))
    );
    assert_eq!(h.get("Subject"), Some(""));
    assert_eq!(
        h.get("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(h.get("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(h.route.len(), 1);
    assert!(h.route[0].uri.is_loose_route());
    assert_eq!(h.route[0].uri.param("unknownwith"), Some(Some("value")));
    assert_eq!(h.contact[0].display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(h.contact[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(h.contact[0].param("secondparam"), Some(None));
    assert_eq!(h.contact[0].param("q"), Some(Some("0.33")));
    assert_eq!(r.body, SDP.as_bytes());
    assert_round_trip(&Message::Request(r));
}

/// RFC 4475 §3.1.1.2/§3.1.1.3 "intmeth"/"esc01": escapes in URIs, compact headers.
#[test]
fn escaped_uris_and_compact_headers() {
    let buf = msg(
        &[
            "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
            "t: sip:%75se%72@example.com",
            "f: <sip:I%20have%20spaces@example.net>;tag=938",
            "Max-Forwards: 87",
            "i: esc01.239409asdfakjkn23onasd0-3234",
            "CSeq: 234234 INVITE",
            "v: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
            "C: application/sdp",
            "m:",
            "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
            "l: {len}",
            "s: compact subject",
            "k: timer, 100rel",
            "e: gzip",
            "o: presence",
            "r: <sip:c@d>",
            "b: <sip:e@f>",
            "u: dialog",
            "x: 1800;refresher=uac",
            "y: abc",
        ],
        SDP,
    );
    let r = request(&buf);
    let h = &r.headers;
    assert_eq!(r.uri.user.as_deref(), Some("sips:user@example.com"));
    assert_eq!(r.uri.host, "example.net");
    assert_eq!(h.to.uri.user.as_deref(), Some("user"));
    assert_eq!(h.from.uri.user.as_deref(), Some("I have spaces"));
    assert_eq!(h.call_id, "esc01.239409asdfakjkn23onasd0-3234");
    assert_eq!(h.content_type.as_deref(), Some("application/sdp"));
    let c = &h.contact[0].uri;
    assert_eq!(c.user.as_deref(), Some("caller"));
    assert!(c.is_loose_route());
    assert_eq!(c.param("name"), Some(Some("value%41")));
    let names: Vec<&str> = h.extra.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Subject",
            "Supported",
            "Content-Encoding",
            "Event",
            "Refer-To",
            "Referred-By",
            "Allow-Events",
            "Session-Expires",
            "Identity"
        ]
    );
    assert_eq!(h.get("supported"), Some("timer, 100rel"));
    let wire = String::from_utf8(r.to_bytes()).unwrap();
    assert!(wire.starts_with("INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"));
    assert!(wire.contains("\r\nContact: <sip:caller@host5.example.net;lr;name=value%2541>\r\n"));
    assert_round_trip(&Message::Request(r));
}

/// RFC 4475 §3.1.1.4 "escnull" and §3.1.1.10 "semiuri".
#[test]
fn escaped_null_and_semicolon_user() {
    let buf = msg(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:null-%00-null@example.com",
            "From: sip:null-%00-null@example.com;tag=839923423",
            "Max-Forwards: 70",
            "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
            "CSeq: 14398234 REGISTER",
            "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
            "Contact: <sip:%00@host5.example.com>",
            "Contact: <sip:%00%00@host5.example.com>",
            "L:0",
        ],
        "",
    );
    let r = request(&buf);
    assert_eq!(r.headers.to.uri.user.as_deref(), Some("null-\0-null"));
    assert_eq!(r.headers.from.tag(), Some("839923423"));
    assert!(r.headers.from.uri.params.is_empty());
    assert_eq!(r.headers.contact.len(), 2);
    assert_eq!(r.headers.contact[1].uri.user.as_deref(), Some("\0\0"));
    assert_round_trip(&Message::Request(r));

    let buf = msg(
        &[
            "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
            "To: sip:j_user@example.com",
            "From: sip:caller@example.org;tag=33242",
            "Max-Forwards: 3",
            "Call-ID: semiuri.0ha0isndaksdj",
            "CSeq: 8 OPTIONS",
            "Accept: application/sdp, application/pkcs7-mime,",
            "        multipart/mixed, multipart/signed,",
            "        message/sip, message/sipfrag",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
            "l: 0",
        ],
        "",
    );
    let r = request(&buf);
    assert_eq!(r.uri.user.as_deref(), Some("user;par=u@example.net"));
    assert_eq!(r.uri.host, "example.com");
    assert!(r.uri.params.is_empty());
    assert_eq!(
        r.headers.get("Accept"),
        Some("application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag")
    );
    assert_round_trip(&Message::Request(r));
}

#[test]
fn multiple_vias_routes_and_contacts() {
    let buf = msg(
        &[
            "BYE sip:bob@192.0.2.4:5080;transport=tcp SIP/2.0",
            "Via: SIP/2.0/UDP proxy2.example.com:5060;branch=z9hG4bK721e4.1;received=192.0.2.3",
            "Via: SIP/2.0/TCP proxy1.example.com;branch=z9hG4bK2d4790.1, SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8;rport=5066;received=192.0.2.101",
            "Max-Forwards: 68",
            "Route: <sip:p1.example.com;lr>, \"Proxy, Two\" <sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>",
            "Record-Route: <sip:rr1.example.com;lr>,<sip:rr2.example.com;lr>",
            "From: <sip:alice@example.com>;tag=9fxced76sl",
            "To: \"Bob, Jr.\" <sip:bob@example.com>;tag=8321234356",
            "Call-ID: 3848276298220188511@example.com",
            "CSeq: 2 BYE",
            "Contact: <sip:a@x>;q=0.7, <sip:b@y>;q=0.3;expires=3600, sip:c@z",
            "Allow: INVITE, ACK",
            "Allow: BYE",
            "Content-Length: 0",
        ],
        "",
    );
    let r = request(&buf);
    let h = &r.headers;
    assert_eq!(r.uri.port, Some(5080));
    assert_eq!(r.uri.transport().as_deref(), Some("tcp"));
    assert_eq!(h.via.len(), 3);
    assert_eq!(h.via[0].port, Some(5060));
    assert_eq!(h.via[0].received(), Some("192.0.2.3"));
    assert_eq!(h.via[2].rport(), Some(Some(5066)));
    assert_eq!(h.route.len(), 3);
    assert_eq!(h.route[1].display.as_deref(), Some("Proxy, Two"));
    assert_eq!(h.route[2].uri.host, "p3.example.com");
    assert_eq!(h.record_route.len(), 2);
    assert_eq!(h.to.display.as_deref(), Some("Bob, Jr."));
    assert_eq!(h.contact.len(), 3);
    assert_eq!(h.contact[1].param("expires"), Some(Some("3600")));
    assert_eq!(h.contact[2].uri.host, "z");
    let allows: Vec<&str> = h
        .extra
        .iter()
        .filter(|(n, _)| n == "Allow")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(allows, ["INVITE, ACK", "BYE"]);
    assert!(r.body.is_empty());
    assert_round_trip(&Message::Request(r));
}

/// RFC 4475 §3.1.1.8/§4.1-style IPv6 references in URIs, Via and parameters.
#[test]
fn ipv6_everywhere() {
    let buf = msg(
        &[
            "REGISTER sip:[2001:db8::10]:5070 SIP/2.0",
            "To: sip:user@[2001:db8::10]",
            "From: sip:user@example.com;tag=81x2",
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=2001:db8::9:255",
            "Call-ID: SSG9559905523997077@hlau_4100",
            "Max-Forwards: 70",
            "Contact: \"Caller\" <sip:caller@[2001:db8::1];maddr=[2001:db8::1]>",
            "CSeq: 98176 REGISTER",
            "Content-Length: 0",
        ],
        "",
    );
    let r = request(&buf);
    assert_eq!(r.uri.host, "[2001:db8::10]");
    assert_eq!(r.uri.port, Some(5070));
    assert_eq!(r.headers.via[0].host, "[2001:db8::9:1]");
    assert_eq!(r.headers.via[0].received(), Some("2001:db8::9:255"));
    assert_eq!(
        r.headers.contact[0].uri.param("maddr"),
        Some(Some("[2001:db8::1]"))
    );
    assert_round_trip(&Message::Request(r));

    assert!(parse_uri("sip:[2001:db8:::192.0.2.1]").is_err());
    assert!(parse_uri("sip:user@[2001:db8::10").is_err());
    assert!(parse_uri("sip:user@2001:db8::10").is_err());
}

#[test]
fn responses() {
    let buf = msg(
        &[
            "SIP/2.0 180 Ringing – ça sonne",
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
            "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710",
            "CSeq: 314159 INVITE",
            "Contact: <sip:bob@192.0.2.4>",
            "Record-Route: <sip:p1.example.com;lr>",
        ],
        "",
    );
    let r = response(&buf);
    assert_eq!(r.status, 180);
    assert_eq!(r.reason, "Ringing – ça sonne");
    assert!(r.is_provisional());
    assert_eq!(r.headers.max_forwards, None);
    assert_round_trip(&Message::Response(r));

    let r = response(&msg(
        &[
            "SIP/2.0 200",
            "v: SIP/2.0/TCP h;branch=z9hG4bK1",
            "t: <sip:b@h>;tag=1",
            "f: <sip:a@h>;tag=2",
            "i: x",
            "CSeq: 1 OPTIONS",
            "l: 0",
        ],
        "",
    ));
    assert_eq!((r.status, r.reason.as_str()), (200, ""));
    assert_round_trip(&Message::Response(r));
}

#[test]
fn datagram_body_rules() {
    let base = [
        "MESSAGE sip:u@h SIP/2.0",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "From: <sip:a@h>;tag=1",
        "To: <sip:u@h>",
        "Call-ID: body",
        "CSeq: 1 MESSAGE",
    ];
    // No Content-Length on UDP: the rest of the datagram is the body.
    let r = request(&msg(&base, "hello\r\n"));
    assert_eq!(r.body, b"hello\r\n");
    // A smaller Content-Length truncates the body.
    let mut lines = base.to_vec();
    lines.push("Content-Length: 3");
    let r = request(&msg(&lines, "hello"));
    assert_eq!(r.body, b"hel");
    // Binary, non-UTF-8 bodies survive.
    let mut buf = msg(&base, "");
    buf.extend_from_slice(&[0xff, 0xfe, 0, 0x80]);
    let r = request(&buf);
    assert_eq!(r.body, [0xff, 0xfe, 0, 0x80]);
    assert_round_trip(&Message::Request(r));
    // Leading CRLFs are ignored; bare LF line ends are tolerated.
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend(msg(&base, "x"));
    assert_eq!(request(&buf).body, b"x");
    let lf = msg(&base, "x")
        .iter()
        .copied()
        .filter(|&b| b != b'\r')
        .collect::<Vec<_>>();
    assert_eq!(request(&lf).headers.call_id, "body");
}

#[test]
fn contact_star_is_kept_as_extra() {
    let r = request(&msg(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
            "From: <sip:a@example.com>;tag=1",
            "To: <sip:a@example.com>",
            "Call-ID: star",
            "CSeq: 2 REGISTER",
            "Contact: *",
            "Expires: 0",
            "l: 0",
        ],
        "",
    ));
    assert!(r.headers.contact.is_empty());
    assert_eq!(r.headers.get("Contact"), Some("*"));
    assert_round_trip(&Message::Request(r));
}

#[test]
fn uri_and_name_addr_api() {
    let u = parse_uri("SIPS:alice:secret@Atlanta.example.com:5061;transport=TLS;lr?subject=project%20x&priority=urgent")
        .unwrap();
    assert_eq!(u.scheme, Scheme::Sips);
    assert_eq!(u.user.as_deref(), Some("alice"));
    assert_eq!(u.password.as_deref(), Some("secret"));
    assert_eq!(u.host, "Atlanta.example.com");
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.transport().as_deref(), Some("tls"));
    assert!(u.is_loose_route());
    assert_eq!(
        u.headers,
        [
            ("subject".into(), "project x".into()),
            ("priority".into(), "urgent".into())
        ]
    );

    let na = parse_name_addr("sip:alice@example.com;tag=abc;lr").unwrap();
    assert!(
        na.uri.params.is_empty(),
        "addr-spec params belong to the header"
    );
    assert_eq!(na.tag(), Some("abc"));
    let na = parse_name_addr("<sip:alice@example.com;lr>;tag=abc").unwrap();
    assert!(na.uri.is_loose_route());
    // RFC 4475 §3.1.1.5 "lwsdisp": no LWS between display name and `<`.
    let na = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
    assert_eq!(
        (na.display.as_deref(), na.tag()),
        (Some("caller"), Some("323"))
    );
    let na = parse_name_addr("Mr. J. User <sip:j.user@example.com>").unwrap();
    assert_eq!(na.display.as_deref(), Some("Mr. J. User"));
    let na = parse_name_addr("\"\"<tel:+15551234;phone-context=x>").unwrap();
    assert_eq!(na.display.as_deref(), Some(""));
    assert_eq!(na.uri.scheme, Scheme::Tel);

    for bad in [
        "\"Mr. J. User <sip:j.user@example.com>",
        "<sip:a@b",
        "sip:a@b>",
        "Bad \"Display\" <sip:a@b>",
        "<sip:a@b> junk",
        "<sip:a@b>;",
        "<http://example.com>",
        "",
    ] {
        assert!(parse_name_addr(bad).is_err(), "{bad:?} should be rejected");
    }
    for bad in [
        "sip:",
        "sip:@h",
        "sip:h:99999",
        "sip:h:+5",
        "sip:h;",
        "sip:h?",
        "sip:a b@h",
        "sip:u%4@h",
        "mailto:a@b",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad:?} should be rejected");
    }
}

// ---------------------------------------------------------------------------------
// Invalid messages (modelled on RFC 4475 §3.1.2) and 400 salvage

fn broken_request(cseq: &str, extra: &[&str]) -> Vec<u8> {
    let mut lines = vec![
        "INVITE sip:user@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "v: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2",
        "Max-Forwards: 70",
        "From: \"Caller\" <sip:caller@example.com>;tag=1",
        "To: <sip:user@example.com>",
        "Call-ID: broken.1",
        cseq,
    ];
    lines.extend_from_slice(extra);
    msg(&lines, "")
}

#[test]
fn bad_cseq_is_salvaged() {
    for cseq in [
        "CSeq: 8 OPTIONS",
        "CSeq: 36893488147419103232 INVITE",
        "CSeq: INVITE",
        "CSeq: -1 INVITE",
    ] {
        let e = err(&broken_request(cseq, &[]));
        let s = e.salvage.expect("salvage for a request");
        assert_eq!(s.cseq, &cseq[6..]);
        assert_eq!(
            s.via,
            [
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
                "SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2"
            ]
        );
        let answer = String::from_utf8(s.bad_request(&e.reason, "srv1")).unwrap();
        assert_eq!(
            answer,
            format!(
                "SIP/2.0 400 {}\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2\r\n\
                 From: \"Caller\" <sip:caller@example.com>;tag=1\r\n\
                 To: <sip:user@example.com>;tag=srv1\r\n\
                 Call-ID: broken.1\r\n\
                 {cseq}\r\n\
                 Content-Length: 0\r\n\r\n",
                e.reason
            )
        );
    }
    // With a well-formed CSeq the 400 is itself a parseable response.
    let e = err(&broken_request("CSeq: 8 OPTIONS", &[]));
    let answer = e.salvage.unwrap().bad_request(&e.reason, "srv1");
    let r = response(&answer);
    assert_eq!((r.status, r.reason.as_str()), (400, "CSeq Method Mismatch"));
    assert_eq!(r.headers.via.len(), 2);
    assert_eq!(r.headers.to.tag(), Some("srv1"));
}

#[test]
fn bad_request_sanitizes_and_keeps_existing_tag() {
    let s = Salvage {
        via: vec!["SIP/2.0/UDP h;branch=z9hG4bK1".into()],
        from: "<sip:a@h>;tag=1".into(),
        to: "<sip:b@h>;TAG=x".into(),
        call_id: "c\r\nX: y".into(),
        cseq: "1 INVITE".into(),
    };
    let out = String::from_utf8(s.bad_request("Bad\r\nHeader: é", "new")).unwrap();
    assert!(out.starts_with("SIP/2.0 400 BadHeader:\r\n"));
    assert!(out.contains("\r\nTo: <sip:b@h>;TAG=x\r\n"));
    assert!(out.contains("\r\nCall-ID: c  X: y\r\n"));
    let out = String::from_utf8(s.bad_request("\r\n", "new")).unwrap();
    assert!(out.starts_with("SIP/2.0 400 Bad Request\r\n"));
    // A To that does not even parse still gets its tag detected or added.
    let s = Salvage {
        to: "<sip:b@h;tag=uri> junk".into(),
        ..s
    };
    let out = String::from_utf8(s.bad_request("x", "new")).unwrap();
    assert!(out.contains("\r\nTo: <sip:b@h;tag=uri> junk;tag=new\r\n"));
}

#[test]
fn missing_headers() {
    let full = [
        "OPTIONS sip:u@h SIP/2.0",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "From: <sip:a@h>;tag=1",
        "To: <sip:u@h>",
        "Call-ID: m",
        "CSeq: 1 OPTIONS",
    ];
    for (skip, reason) in [
        (1, "Missing Via"),
        (2, "Missing From"),
        (3, "Missing To"),
        (4, "Missing Call-ID"),
        (5, "Missing CSeq"),
    ] {
        let lines: Vec<&str> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let e = err(&msg(&lines, ""));
        assert_eq!(e.reason, reason);
        assert!(e.salvage.is_none(), "nothing to salvage without {reason}");
    }
    // Responses are never salvaged.
    let e = err(&msg(
        &[
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP h",
            "From: <sip:a@h>",
            "To: <sip:b@h>",
            "CSeq: 1 BYE",
        ],
        "",
    ));
    assert_eq!(e.reason, "Missing Call-ID");
    assert!(e.salvage.is_none());
}

#[test]
fn invalid_messages() {
    let cases: &[(&[u8], &str)] = &[
        (&broken_request("CSeq: 1 INVITE", &["Content-Length: 9999"]), "Content-Length Too Big"),
        (&broken_request("CSeq: 1 INVITE", &["Content-Length: 99999999999999999999999"]), "Bad Content-Length"),
        (&broken_request("CSeq: 1 INVITE", &["Content-Length: 1", "l: 1"]), "Duplicate Content-Length"),
        (&broken_request("CSeq: 1 INVITE", &["From: <sip:b@h>"]), "Duplicate From"),
        (&broken_request("CSeq: 1 INVITE", &["Max-Forwards: 1"]), "Duplicate Max-Forwards"),
        (&broken_request("CSeq: 1 INVITE", &["Max-Forwards: ten"]), "Bad Max-Forwards"),
        (&broken_request("CSeq: 1 INVITE", &["Via: SIP/2.0/FOO h"]), "Bad Via Transport"),
        (&broken_request("CSeq: 1 INVITE", &["Via: SIP/3.0/UDP h"]), "Bad Via"),
        (&broken_request("CSeq: 1 INVITE", &["Via: SIP/2.0/UDP"]), "Bad Via Sent-By"),
        (&broken_request("CSeq: 1 INVITE", &["Contact: <sip:a@b"]), "Bad Contact"),
        (&broken_request("CSeq: 1 INVITE", &["Route: <mailto:a@b>"]), "Bad Route"),
        (&broken_request("CSeq: 1 INVITE", &["No colon here"]), "Malformed Header Line"),
        (&broken_request("CSeq: 1 INVITE", &["Bad Name: x"]), "Malformed Header Name"),
        (&broken_request("CSeq: 1 INVITE", &["Via: SIP/2.0/UDP 192.0.2.15;;,;,,"]), "Bad Via Parameter"),
        (&broken_request("CSeq: 1 INVITE", &["Content-Length: -999"]), "Bad Content-Length"),
        (&broken_request("CSeq: 1 INVITE", &["Call-ID:"]), "Bad Call-ID"),
        (&broken_request("CSeq: 1 INVITE", &["Record-Route: sip:user@example.org>"]), "Bad Record-Route"),
        (b"INVITE sip:user@example.com SIP/7.0\r\nVia: SIP/2.0/UDP h\r\n\r\n", "Version Not Supported"),
        (b"NEWMETHOD sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 NEWMETHOD2\r\n\r\n", "CSeq Method Mismatch"),
        (b"SIP/2.0 4294967301 Huge\r\n\r\n", "Bad Status Code"),
        (b"INVITE sip:user@example.com; lr SIP/2.0\r\n\r\n", "Bad Request-Line"),
        (b"INVITE soap.beep://192.0.2.103:3002 SIP/2.0\r\n\r\n", "Unsupported URI Scheme"),
        (b"INVITE <sip:user@example.com> SIP/2.0\r\n\r\n", "Bad Request-URI"),
        (b"SIP/2.0 99 Too Low\r\n\r\n", "Bad Status Code"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "Bad Status Code"),
        (b"SIP/1.0 200 OK\r\n\r\n", "Version Not Supported"),
        (b"INVITE sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>\r\n", "Incomplete Header Section"),
        (b"INVITE sip:u@h SIP/2.0\r\nSubject: a\rb\r\n\r\n", "Stray CR In Header"),
        (b"INVITE sip:u@h SIP/2.0\r\nSubject: \xff\xfe\r\n\r\n", "Header Section Not UTF-8"),
        (b"hello world\r\n\r\n", "Bad Request-Line"),
        (b"\x00\x01\x02\x03\xff\r\n\r\n", "Header Section Not UTF-8"),
        (b"", "Empty Message"),
        (b"\r\n\r\n", "Empty Message"),
    ];
    for (buf, reason) in cases {
        let e = err(buf);
        assert_eq!(&e.reason, reason, "for {:?}", String::from_utf8_lossy(buf));
    }
    // A bad body length in an otherwise complete request is still answerable.
    assert!(err(cases[0].0).salvage.is_some());
    // Non-UTF-8 junk in an unrelated header: salvage from the lossy text.
    let mut buf = broken_request("CSeq: 1 INVITE", &[]);
    buf.truncate(buf.len() - 2);
    buf.extend_from_slice(b"Subject: \xff\r\n\r\n");
    let e = err(&buf);
    assert_eq!(e.reason, "Header Section Not UTF-8");
    assert_eq!(e.salvage.unwrap().call_id, "broken.1");
    // Oversized datagram.
    let mut big = broken_request("CSeq: 1 INVITE", &[]);
    big.resize(MAX_MESSAGE_SIZE + 1, b'x');
    let e = err(&big);
    assert_eq!(e.reason, "Message Too Large");
    assert!(e.salvage.is_some());
}

// ---------------------------------------------------------------------------------
// Stream framing

#[test]
fn stream_framing() {
    let one = basic_invite();
    // Every strict prefix is incomplete.
    for n in 0..one.len() {
        assert_eq!(frame_stream(&one[..n]), Ok(Frame::Incomplete), "prefix {n}");
    }
    assert_eq!(frame_stream(&one), Ok(Frame::Message(one.len())));

    // Keep-alives, then two messages back to back.
    let two = response(&msg(
        &[
            "SIP/2.0 100 Trying",
            "Via: SIP/2.0/TCP h;branch=z9hG4bK1",
            "From: <sip:a@h>;tag=1",
            "To: <sip:b@h>",
            "Call-ID: x",
            "CSeq: 1 INVITE",
        ],
        "",
    ))
    .to_bytes();
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend_from_slice(&one);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(&two);
    let mut at = 0;
    let mut got = Vec::new();
    while at < buf.len() {
        match frame_stream(&buf[at..]).unwrap() {
            Frame::KeepAlive(n) => at += n,
            Frame::Message(n) => {
                got.push(parse_stream_message(&buf[at..at + n]).unwrap());
                at += n;
            }
            Frame::Incomplete => panic!("complete buffer reported incomplete"),
        }
    }
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Message::Request(r) if r.body == SDP.as_bytes()));
    assert!(matches!(&got[1], Message::Response(r) if r.status == 100));
    assert_eq!(frame_stream(b"\r\n"), Ok(Frame::KeepAlive(2)));
    assert_eq!(frame_stream(b""), Ok(Frame::Incomplete));
}

#[test]
fn stream_requires_content_length() {
    let buf = broken_request("CSeq: 1 INVITE", &[]);
    let e = frame_stream(&buf).unwrap_err();
    assert_eq!(e.reason, "Missing Content-Length");
    assert!(e.salvage.is_some());
    assert_eq!(
        parse_stream_message(&buf).unwrap_err().reason,
        "Missing Content-Length"
    );

    let buf = broken_request("CSeq: 1 INVITE", &["Content-Length: 70000"]);
    assert_eq!(frame_stream(&buf).unwrap_err().reason, "Message Too Large");
    let buf = broken_request("CSeq: 1 INVITE", &["l: 12x"]);
    assert_eq!(frame_stream(&buf).unwrap_err().reason, "Bad Content-Length");
    let buf = broken_request("CSeq: 1 INVITE", &["l: 1", "Content-Length: 2"]);
    assert_eq!(
        frame_stream(&buf).unwrap_err().reason,
        "Conflicting Content-Length"
    );
    // A continuation line is part of the header above it, not a Content-Length.
    let buf = broken_request("CSeq: 1 INVITE", &["Subject: x", " Content-Length: 5"]);
    assert_eq!(
        frame_stream(&buf).unwrap_err().reason,
        "Missing Content-Length"
    );
    // An unknown method is fine when CSeq agrees.
    let buf = msg(
        &[
            "PING sip:u@h SIP/2.0",
            "Via: SIP/2.0/TCP h;branch=z9hG4bK1",
            "From: <sip:a@h>;tag=1",
            "To: <sip:u@h>",
            "Call-ID: p",
            "CSeq: 5 PING",
            "l: {len}",
        ],
        "ab",
    );
    assert_eq!(frame_stream(&buf), Ok(Frame::Message(buf.len())));
    match parse_stream_message(&buf).unwrap() {
        Message::Request(r) => assert_eq!(
            (r.method, r.body),
            (Method::Other("PING".into()), b"ab".to_vec())
        ),
        m => panic!("{m:?}"),
    }
    // No end of headers within the size limit.
    let junk = vec![b'a'; MAX_MESSAGE_SIZE + 1];
    assert_eq!(frame_stream(&junk).unwrap_err().reason, "Message Too Large");
    assert_eq!(frame_stream(&junk[..1000]), Ok(Frame::Incomplete));
}

// ---------------------------------------------------------------------------------
// Randomized sweep: no panics, and every accepted message round-trips.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPLICES: &[&[u8]] = &[
    b"\r\n",
    b"\r\n ",
    b"\n",
    b"\r",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b"%4",
    b"%ff",
    b"@",
    b" ",
    b"\t",
    b"[",
    b"]",
    b"[::1]",
    b"=",
    b"?",
    b"&",
    b"/",
    b"sip:",
    b"tel:",
    b"SIP/2.0",
    b"\r\n\r\n",
    b"Content-Length: 5\r\n",
    b"l: 0\r\n",
    b"Via: SIP/2.0/UDP a\r\n",
    b";tag=",
    b"\xc3\xa9",
    b"\xff",
    b"\0",
    b"99999999999999999999",
    b"Contact: *\r\n",
    b"CSeq: 1 INVITE\r\n",
    b"m: \"\\\"\" <sip:a@b>\r\n",
];

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let s = SPLICES[rng.below(SPLICES.len())];
                v.splice(at..at, s.iter().copied());
            }
            2 => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32)).min(v.len());
                let dup = v[at..end].to_vec();
                v.splice(at..at, dup);
            }
            4 => v.truncate(at),
            _ => {
                let s = SPLICES[rng.below(SPLICES.len())];
                let end = (at + s.len()).min(v.len());
                v.splice(at..end, s.iter().copied());
            }
        }
    }
    v
}

fn check_no_panic_and_round_trip(input: &[u8]) {
    match parse_datagram(input) {
        Ok(m) => assert_round_trip(&m),
        Err(e) => {
            if let Some(s) = e.salvage {
                let out = s.bad_request(&e.reason, "t1");
                assert!(out.starts_with(b"SIP/2.0 400 ") && out.ends_with(b"\r\n\r\n"));
            }
        }
    }
    if let Ok(Frame::Message(n)) = frame_stream(input) {
        if let Ok(m) = parse_stream_message(&input[..n]) {
            assert_round_trip(&m);
        }
    }
    if let Ok(s) = std::str::from_utf8(input) {
        for line in s.lines().take(4) {
            let value = line.split_once(':').map_or(line, |(_, v)| v);
            if let Ok(u) = parse_uri(line) {
                assert_eq!(parse_uri(&u.to_string()), Ok(u));
            }
            if let Ok(na) = parse_name_addr(value) {
                assert_eq!(parse_name_addr(&na.to_string()), Ok(na));
            }
            if let Ok(vias) = parse_via(value) {
                for v in vias {
                    assert_eq!(parse_via(&v.to_string()), Ok(vec![v]));
                }
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        basic_invite(),
        broken_request(
            "CSeq: 1 INVITE",
            &[
                "Contact: <sip:a@[::1]:5;x=%41>;q=1, \"A, B\" <sip:b@c>",
                "l: 0",
            ],
        ),
        msg(
            &[
                "SIP/2.0 200 OK",
                "v: SIP / 2.0 / TCP h:1 ; branch = z9hG4bK ; rport ; received=1.2.3.4",
                "f: \"x\\\"y\" <sips:u:p@h?a=b&c=d>;tag=1",
                "t: tel:+123;tag=2",
                "i: r",
                "CSeq: 7 BYE",
                "Record-Route: <sip:r@h;lr>,<sip:s@h;lr>",
            ],
            "body",
        ),
        b"sip:user;par=u%40example.net@example.com:5060;maddr=[::1]?h=v\r\n".to_vec(),
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for seed in &seeds {
        check_no_panic_and_round_trip(seed);
    }
    for _ in 0..30_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        check_no_panic_and_round_trip(&input);
    }
    // Pure noise, biased towards SIP-ish bytes.
    for _ in 0..5_000 {
        let len = rng.below(200);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                const SIPISH: &[u8] = b"SIP/:; <>\"\r\n,@%";
                if r & 3 == 0 {
                    SIPISH[(r >> 8) as usize % SIPISH.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect();
        check_no_panic_and_round_trip(&input);
    }
}

// ---------------------------------------------------------------------------------
// SIP over WebSocket (RFC 7118): what JsSIP and SIP.js send

#[test]
fn parses_a_websocket_register_with_an_invalid_host_and_no_content_length() {
    // One message per WebSocket frame: JsSIP writes Content-Length, but RFC 7118 §5
    // lets the frame delimit the message, so a frame without it must parse too.
    let buf = msg(
        &[
            "REGISTER sip:switchboard.test SIP/2.0",
            "Via: SIP/2.0/WS 9k2v1rl6q5ug.invalid;branch=z9hG4bK3946372",
            "Max-Forwards: 69",
            "To: <sip:alice@switchboard.test>",
            "From: <sip:alice@switchboard.test>;tag=qmcuu8ieec",
            "Call-ID: ansp6ud2fkm1k5hu0i6ar7",
            "CSeq: 1 REGISTER",
            "Contact: <sip:j5v7ld8g@9k2v1rl6q5ug.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:1f8f9b1e-6fa0-4d38-a3a3-36b3f2d6b1c4>\";expires=600",
            "Expires: 600",
            "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
            "Supported: path,gruu,outbound",
            "User-Agent: JsSIP 3.12.0",
        ],
        "",
    );
    let r = request(&buf);
    let via = r.top_via().expect("a Via");
    assert_eq!(via.transport, Transport::Ws);
    assert!(via.host.ends_with(".invalid"), "{}", via.host);
    assert_eq!(r.headers.contact[0].uri.transport().as_deref(), Some("ws"));
    assert_eq!(r.headers.contact[0].uri.host, "9k2v1rl6q5ug.invalid");
    assert_round_trip(&Message::Request(r.clone()));
    // The answer goes back with the WS Via untouched.
    let resp = String::from_utf8(r.response(401, Some("t")).to_bytes()).unwrap();
    assert!(resp.contains("Via: SIP/2.0/WS 9k2v1rl6q5ug.invalid;branch=z9hG4bK3946372"), "{resp}");
    let wss = String::from_utf8(buf).unwrap().replace("SIP/2.0/WS ", "SIP/2.0/WSS ");
    assert_eq!(request(wss.as_bytes()).top_via().unwrap().transport, Transport::Wss);
}
