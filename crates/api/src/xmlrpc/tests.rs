//! The codec against Python's `xmlrpc.client` (its requests embedded as fixtures, our
//! replies read back by it when python3 is installed), every refusal of the reader,
//! and the method forms.

use super::codec::{MAX_BODY_BYTES, MAX_DEPTH};
use super::*;

fn s(text: &str) -> Value {
    Value::string(text)
}

fn parse(body: &str) -> Result<MethodCall, XmlRpcError> {
    parse_call(body.as_bytes())
}

fn call(method_name: &str, params: Vec<Value>) -> MethodCall {
    MethodCall { method_name: method_name.to_owned(), params }
}

/// A call with one parameter whose `<value>` content is `value`.
fn one_param(value: &str) -> String {
    format!("<methodCall><methodName>m</methodName><params><param><value>{value}</value></param></params></methodCall>")
}

fn param_of(value: &str) -> Result<Value, XmlRpcError> {
    parse(&one_param(value)).map(|mut c| c.params.remove(0))
}

// `xmlrpc.client.dumps((1,'a&b',True,2.5,[1,2],{'k':None}),'roomInfo',allow_none=True)`
const PY_MIXED: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>roomInfo</methodName>\n<params>\n\
<param>\n<value><int>1</int></value>\n</param>\n<param>\n<value><string>a&amp;b</string></value>\n</param>\n\
<param>\n<value><boolean>1</boolean></value>\n</param>\n<param>\n<value><double>2.5</double></value>\n</param>\n\
<param>\n<value><array><data>\n<value><int>1</int></value>\n<value><int>2</int></value>\n</data></array></value>\n</param>\n\
<param>\n<value><struct>\n<member>\n<name>k</name>\n<value><nil/></value></member>\n</struct></value>\n</param>\n\
</params>\n</methodCall>\n";

// `dumps(("webconference","roomCreate","4711"),'di')`
const PY_DI: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>di</methodName>\n<params>\n\
<param>\n<value><string>webconference</string></value>\n</param>\n<param>\n<value><string>roomCreate</string></value>\n</param>\n\
<param>\n<value><string>4711</string></value>\n</param>\n</params>\n</methodCall>\n";

// `dumps((DateTime(datetime(2024,1,2,3,4,5)), Binary(b'\x00\x01\xffhello world, this is a long binary to get a line break'*2)),'x')`
const PY_DATE_AND_BINARY: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>x</methodName>\n<params>\n\
<param>\n<value><dateTime.iso8601>20240102T03:04:05</dateTime.iso8601></value>\n</param>\n<param>\n<value><base64>\n\
AAH/aGVsbG8gd29ybGQsIHRoaXMgaXMgYSBsb25nIGJpbmFyeSB0byBnZXQgYSBsaW5lIGJyZWFr\n\
AAH/aGVsbG8gd29ybGQsIHRoaXMgaXMgYSBsb25nIGJpbmFyeSB0byBnZXQgYSBsaW5lIGJyZWFr\n\
</base64></value>\n</param>\n</params>\n</methodCall>\n";

// `dumps(([{'methodName':'calls','params':[]},{'methodName':'di','params':['webconference','serverInfo']}],),'system.multicall')`
const PY_MULTICALL: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>system.multicall</methodName>\n<params>\n\
<param>\n<value><array><data>\n<value><struct>\n<member>\n<name>methodName</name>\n<value><string>calls</string></value>\n</member>\n\
<member>\n<name>params</name>\n<value><array><data>\n</data></array></value>\n</member>\n</struct></value>\n\
<value><struct>\n<member>\n<name>methodName</name>\n<value><string>di</string></value>\n</member>\n\
<member>\n<name>params</name>\n<value><array><data>\n<value><string>webconference</string></value>\n\
<value><string>serverInfo</string></value>\n</data></array></value>\n</member>\n</struct></value>\n\
</data></array></value>\n</param>\n</params>\n</methodCall>\n";

// `dumps((), 'calls')`
const PY_NO_PARAMS: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>calls</methodName>\n<params>\n</params>\n</methodCall>\n";

// `dumps(('<ü €\r\n\t"\'>', -2147483648, 2147483647, -0.0, 1e300, []), 'webconference.roomInfo')`
const PY_EDGES: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>webconference.roomInfo</methodName>\n<params>\n\
<param>\n<value><string>&lt;ü €\r\n\t\"'&gt;</string></value>\n</param>\n<param>\n<value><int>-2147483648</int></value>\n</param>\n\
<param>\n<value><int>2147483647</int></value>\n</param>\n<param>\n<value><double>-0.0</double></value>\n</param>\n\
<param>\n<value><double>1e+300</double></value>\n</param>\n<param>\n<value><array><data>\n</data></array></value>\n</param>\n\
</params>\n</methodCall>\n";

#[test]
fn python_request_of_every_common_type() {
    let parsed = parse(PY_MIXED).unwrap();
    assert_eq!(
        parsed,
        call(
            "roomInfo",
            vec![
                Value::Int(1),
                s("a&b"),
                Value::Boolean(true),
                Value::Double(2.5),
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Struct(vec![("k".to_owned(), Value::Nil)]),
            ]
        )
    );
}

#[test]
fn python_di_request() {
    assert_eq!(parse(PY_DI).unwrap(), call("di", vec![s("webconference"), s("roomCreate"), s("4711")]));
}

#[test]
fn python_date_and_multiline_base64() {
    let parsed = parse(PY_DATE_AND_BINARY).unwrap();
    let binary = b"\x00\x01\xffhello world, this is a long binary to get a line break".repeat(2);
    assert_eq!(parsed.params, vec![Value::DateTime("20240102T03:04:05".to_owned()), Value::Base64(binary)]);
}

#[test]
fn python_request_without_parameters() {
    assert_eq!(parse(PY_NO_PARAMS).unwrap(), call("calls", vec![]));
    assert_eq!(parse("<methodCall><methodName>calls</methodName><params/></methodCall>").unwrap(), call("calls", vec![]));
    assert_eq!(parse("<methodCall><methodName> calls\n</methodName></methodCall>").unwrap(), call("calls", vec![]));
}

#[test]
fn python_edge_values_and_line_end_normalisation() {
    let parsed = parse(PY_EDGES).unwrap();
    assert_eq!(parsed.method_name, "webconference.roomInfo");
    // The CR LF Python writes raw arrives as LF, as any XML parser reads it.
    assert_eq!(parsed.params[0], s("<ü €\n\t\"'>"));
    assert_eq!(parsed.params[1], Value::Int(i32::MIN));
    assert_eq!(parsed.params[2], Value::Int(i32::MAX));
    let Value::Double(negative_zero) = parsed.params[3] else { panic!("{:?}", parsed.params[3]) };
    assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
    assert_eq!(parsed.params[4], Value::Double(1e300));
    assert_eq!(parsed.params[5], Value::Array(vec![]));
}

#[test]
fn untyped_and_empty_values_are_strings() {
    assert_eq!(param_of(" room 4711 ").unwrap(), s(" room 4711 "));
    assert_eq!(param_of("").unwrap(), s(""));
    assert_eq!(param_of("<string/>").unwrap(), s(""));
    let with_empty_value = "<methodCall><methodName>m</methodName><params><param><value/></param></params></methodCall>";
    assert_eq!(parse(with_empty_value).unwrap().params, vec![s("")]);
    assert_eq!(param_of("<array><data><value/></data></array>").unwrap(), Value::Array(vec![s("")]));
}

#[test]
fn references_cdata_and_comments_in_text() {
    let text = "&#60;&#x3C;&#x3c;&quot;&apos;&amp;&gt;<![CDATA[<&amp;>]]>a<!-- not text -->b";
    assert_eq!(param_of(text).unwrap(), s("<<<\"'&><&amp;>ab"));
    assert_eq!(param_of("<string>x&#13;y\r\nz\rw</string>").unwrap(), s("x\ry\nz\nw"));
}

#[test]
fn prolog_whitespace_comments_and_attributes_are_accepted() {
    let body = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- a client's note -->\n<?pi ignored?>\
                <methodCall lang='en'>\n <methodName>calls</methodName>\n <params>\n <!-- none -->\n </params>\n</methodCall>\n<!-- end -->\n";
    assert_eq!(parse(body).unwrap(), call("calls", vec![]));
    assert_eq!(param_of("\n  <int> 42 </int>\n  ").unwrap(), Value::Int(42));
    assert_eq!(param_of("<i4>-7</i4>").unwrap(), Value::Int(-7));
    assert_eq!(param_of("<i8>+2147483647</i8>").unwrap(), Value::Int(i32::MAX));
    assert_eq!(param_of("<boolean>0</boolean>").unwrap(), Value::Boolean(false));
    assert_eq!(param_of("<nil></nil>").unwrap(), Value::Nil);
    assert_eq!(param_of("<array/>").unwrap(), Value::Array(vec![]));
    assert_eq!(param_of("<struct/>").unwrap(), Value::Struct(vec![]));
    let members = param_of("<struct><member><name>b</name><value>2</value></member><member><name>a</name><value><int>1</int></value></member></struct>").unwrap();
    assert_eq!(members, Value::Struct(vec![("b".to_owned(), s("2")), ("a".to_owned(), Value::Int(1))]));
    assert_eq!(members.member("a"), Some(&Value::Int(1)));
}

/// `depth` nested arrays around an int.
fn nested_arrays(depth: usize) -> String {
    let mut value = "<int>1</int>".to_owned();
    for _ in 1..depth {
        value = format!("<array><data><value>{value}</value></data></array>");
    }
    one_param(&value)
}

#[test]
fn nesting_is_bounded() {
    assert!(parse(&nested_arrays(MAX_DEPTH)).is_ok());
    assert!(matches!(parse(&nested_arrays(MAX_DEPTH + 1)), Err(XmlRpcError::TooDeep { limit: MAX_DEPTH, .. })));
    // Far deeper than any stack would take if the reader recursed per element.
    let deep = format!("<methodCall><methodName>m</methodName><params><param>{}", "<value><array><data>".repeat(50_000));
    assert!(matches!(parse(&deep), Err(XmlRpcError::TooDeep { .. })));
    let deep_structs = one_param(&"<struct><member><name>n</name><value>".repeat(100));
    assert!(matches!(parse(&deep_structs), Err(XmlRpcError::TooDeep { .. })));
}

#[test]
fn size_and_encoding_are_checked_first() {
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(parse_call(&huge), Err(XmlRpcError::TooLarge { bytes: MAX_BODY_BYTES + 1, limit: MAX_BODY_BYTES }));
    assert_eq!(parse_call(b"<methodCall>\xff</methodCall>"), Err(XmlRpcError::NotUtf8 { offset: 12 }));
    let latin1 = "<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>m</methodName></methodCall>";
    assert!(matches!(parse(latin1), Err(XmlRpcError::Shape { ref reason, .. }) if reason.contains("ISO-8859-1")));
}

#[test]
fn every_truncation_of_a_request_is_refused() {
    for fixture in [PY_MIXED, PY_DATE_AND_BINARY, PY_MULTICALL, PY_EDGES] {
        let complete = fixture.find("</methodCall>").unwrap() + "</methodCall>".len();
        for cut in 0..complete {
            let result = parse_call(&fixture.as_bytes()[..cut]);
            assert!(result.is_err(), "cut at {cut} parsed: {result:?}");
        }
    }
    let cut_in_tag = "<methodCall><methodName>m</methodName><params><param><value><in";
    assert!(matches!(parse(cut_in_tag), Err(XmlRpcError::Syntax { ref reason, .. }) if reason == "input ends inside a tag"));
    let cut_in_element = "<methodCall><methodName>m</methodName><params><param><value><int>1";
    assert!(matches!(parse(cut_in_element), Err(XmlRpcError::Syntax { ref reason, .. }) if reason == "input ends inside <int>"));
}

fn syntax_reason(body: &str) -> String {
    match parse(body) {
        Err(XmlRpcError::Syntax { reason, .. }) => reason,
        other => panic!("{body}: expected a syntax error, got {other:?}"),
    }
}

fn shape_reason(body: &str) -> String {
    match parse(body) {
        Err(XmlRpcError::Shape { reason, .. }) => reason,
        other => panic!("{body}: expected a shape error, got {other:?}"),
    }
}

#[test]
fn malformed_xml_is_a_syntax_error() {
    assert_eq!(syntax_reason("hello"), "text outside the root element");
    assert_eq!(syntax_reason(&one_param("<int>1</value>")), "</value> closes <int>");
    assert_eq!(syntax_reason("</methodCall>"), "</methodCall> closes nothing");
    assert_eq!(syntax_reason(&one_param("&foo;")), "unknown or invalid reference &foo;");
    assert_eq!(syntax_reason(&one_param("&#0;")), "unknown or invalid reference &#0;");
    assert_eq!(syntax_reason(&one_param("&#xD800;")), "unknown or invalid reference &#xD800;");
    assert_eq!(syntax_reason(&one_param("&#x;")), "unknown or invalid reference &#x;");
    assert_eq!(syntax_reason(&one_param("a & b")), "'&' that starts no entity or character reference");
    assert_eq!(syntax_reason(&one_param("a\u{1}b")), "character U+0001 is not allowed in XML");
    assert_eq!(syntax_reason(&one_param("<!-- open")), "unterminated comment");
    assert_eq!(syntax_reason(&one_param("<![CDATA[ open")), "unterminated CDATA section");
    assert_eq!(syntax_reason("<methodCall><methodName>m</methodName></methodCall><methodCall>"), "a second root element <methodCall>");
    assert_eq!(syntax_reason("<methodCall><methodName>m</methodName></methodCall> trailing"), "text outside the root element");
    assert_eq!(syntax_reason("<?xml version='1.0'"), "unterminated XML declaration");
    assert_eq!(syntax_reason(" <?xml version='1.0'?><methodCall/>"), "XML declaration after the start of the document");
    assert_eq!(syntax_reason("<methodCall a=1>"), "unexpected '1' in tag <methodCall>");
    assert_eq!(syntax_reason("<methodCall a='<'>"), "'<' in an attribute of <methodCall>");
}

#[test]
fn xml_that_is_not_a_method_call_is_a_shape_error() {
    assert_eq!(shape_reason(""), "expected <methodCall>, found the end of the input");
    let response = "<methodResponse><params><param><value>1</value></param></params></methodResponse>";
    assert_eq!(shape_reason(response), "expected <methodCall>, found <methodResponse>");
    assert_eq!(shape_reason("<!DOCTYPE x [<!ENTITY a 'b'>]><methodCall/>"), "document type declarations are not accepted");
    assert_eq!(shape_reason("<methodCall/>"), "<methodCall/> is empty");
    assert_eq!(shape_reason("<methodCall><methodName> </methodName></methodCall>"), "<methodName> is empty");
    assert_eq!(shape_reason("<methodCall><params/></methodCall>"), "expected <methodName>, found <params/>");
    assert_eq!(shape_reason(&one_param("<float>1</float>")), "unknown value type <float>");
    assert_eq!(shape_reason(&one_param("x<int>1</int>")), "text beside <int> in a <value>");
    assert_eq!(shape_reason(&one_param("<int>1</int><int>2</int>")), "expected </value>, found <int>");
    assert_eq!(shape_reason(&one_param("<int><b>1</b></int>")), "<int> holds only text, found <b>");
    assert_eq!(shape_reason(&one_param("<array><value>1</value></array>")), "expected <data>, found <value>");
    assert_eq!(shape_reason(&one_param("<struct><name>a</name></struct>")), "expected <member> or </struct>, found <name>");
    assert_eq!(shape_reason(&one_param("<struct><member><value>1</value></member></struct>")), "expected <name>, found <value>");
    let stray_text = "<methodCall><methodName>m</methodName>oops<params/></methodCall>";
    assert_eq!(shape_reason(stray_text), "text \"oops\" where an element belongs");
}

#[test]
fn scalars_that_do_not_fit_their_type() {
    for (value, reason) in [
        ("<int>12x</int>", "<int> \"12x\" is not a 32-bit integer"),
        ("<i4>2147483648</i4>", "<i4> \"2147483648\" is not a 32-bit integer"),
        ("<int/>", "<int> \"\" is not a 32-bit integer"),
        ("<i8>5000000000</i8>", "<i8> \"5000000000\" is outside the 32-bit range this server takes"),
        ("<i8>1.5</i8>", "<i8> \"1.5\" is not a 64-bit integer"),
        ("<boolean>true</boolean>", "<boolean> \"true\" is neither 0 nor 1"),
        ("<double>1,5</double>", "<double> \"1,5\" is not a number"),
        ("<dateTime.iso8601> </dateTime.iso8601>", "<dateTime.iso8601> is empty"),
        ("<nil>x</nil>", "<nil> holds text"),
    ] {
        assert_eq!(param_of(value), Err(XmlRpcError::BadScalar { offset: 60, reason: reason.to_owned() }), "{value}");
    }
    assert!(matches!(param_of("<base64>AA!=</base64>"), Err(XmlRpcError::BadScalar { .. })));
}

#[test]
fn errors_read_clearly() {
    let err = parse(&one_param("<int>12x</int>")).unwrap_err();
    assert_eq!(err.to_string(), "bad value at byte 60: <int> \"12x\" is not a 32-bit integer");
    let err = parse("<methodResponse/>").unwrap_err();
    assert_eq!(err.to_string(), "not an XML-RPC method call at byte 0: expected <methodCall>, found <methodResponse/>");
}

#[test]
fn responses_are_written_as_sems_writes_them() {
    let reply = write_response(&Value::Array(vec![Value::Int(0), s("OK & <done>"), Value::Nil, Value::Array(vec![])]));
    assert_eq!(
        reply,
        "<?xml version=\"1.0\"?>\n<methodResponse>\n<params>\n<param>\n\
         <value><array><data>\n<value><i4>0</i4></value>\n<value>OK &amp; &lt;done&gt;</value>\n\
         <value><i4>0</i4></value>\n<value><array><data>\n</data></array></value>\n</data></array></value>\n\
         </param>\n</params>\n</methodResponse>\n"
    );
    assert_eq!(
        write_fault(-1, "x: unknown method name"),
        "<?xml version=\"1.0\"?>\n<methodResponse>\n<fault>\n<value><struct>\n\
         <member>\n<name>faultCode</name>\n<value><i4>-1</i4></value>\n</member>\n\
         <member>\n<name>faultString</name>\n<value>x: unknown method name</value>\n</member>\n\
         </struct></value>\n</fault>\n</methodResponse>\n"
    );
}

#[test]
fn written_values_read_back_the_same() {
    let value = Value::Struct(vec![
        ("text".to_owned(), s("a\r\nb <&> ü")),
        ("flags".to_owned(), Value::Array(vec![Value::Boolean(true), Value::Boolean(false)])),
        ("double".to_owned(), Value::Double(-0.125)),
        ("when".to_owned(), Value::DateTime("20240102T03:04:05".to_owned())),
        ("bytes".to_owned(), Value::Base64(vec![0, 1, 254, 255])),
        ("int".to_owned(), Value::Int(i32::MIN)),
    ]);
    // Our reader takes a methodCall; put the written value inside one.
    let reply = write_response(&value);
    let written = &reply[reply.find("<value>").unwrap()..reply.rfind("</value>").unwrap() + "</value>".len()];
    let body = format!("<methodCall><methodName>m</methodName><params><param>{written}</param></params></methodCall>");
    assert_eq!(parse(&body).unwrap().params, vec![value]);
}

/// What Python's `xmlrpc.client.loads` makes of `reply` (`ascii()` of the params, or
/// `fault <code> <string>`); None when there is no python3 to ask.
fn python_reads(reply: &str) -> Option<String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let script = "import sys, xmlrpc.client as x\n\
                  try:\n    print(ascii(x.loads(sys.stdin.read(), use_builtin_types=True)))\n\
                  except x.Fault as f:\n    print('fault', f.faultCode, ascii(f.faultString))\n";
    let mut child = match Command::new("python3").args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("python3: {e}"),
    };
    child.stdin.take().unwrap().write_all(reply.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python3 failed on {reply}");
    Some(String::from_utf8(output.stdout).unwrap().trim_end().to_owned())
}

#[test]
fn python_reads_our_replies() {
    let participant = Value::Array(vec![s("a1b2-c3d4"), s("\"Bob\" <sip:bob@example.com>"), Value::Int(3), s("entered"), Value::Int(0), s("")]);
    let reply = write_response(&Value::Array(vec![
        Value::Int(0),
        s("OK"),
        Value::Array(vec![participant]),
        s("Server: x & y\r\n\u{1}é"),
        Value::Boolean(true),
        Value::Double(-2.5),
        Value::Nil,
        Value::Struct(vec![("k".to_owned(), Value::Int(7)), ("é<".to_owned(), Value::Array(vec![]))]),
        Value::Base64(vec![0, 255]),
        Value::DateTime("20240102T03:04:05".to_owned()),
        Value::Int(i32::MIN),
    ]));
    let Some(read) = python_reads(&reply) else {
        eprintln!("SKIPPED python_reads_our_replies: python3 is not installed");
        return;
    };
    assert_eq!(
        read,
        "(([0, 'OK', [['a1b2-c3d4', '\"Bob\" <sip:bob@example.com>', 3, 'entered', 0, '']], 'Server: x & y\\r\\n\\ufffd\\xe9', \
         True, -2.5, 0, {'k': 7, '\\xe9<': []}, b'\\x00\\xff', datetime.datetime(2024, 1, 2, 3, 4, 5), -2147483648],), None)"
    );
    assert_eq!(python_reads(&Fault::exception("a<b & c>").to_xml()).unwrap(), "fault 500 'Exception: a<b & c>'");
    assert_eq!(python_reads(&write_fault(-1, "")).unwrap(), "fault -1 ''");
}

// Method names.

fn resolved(method_name: &str, params: Vec<Value>) -> Result<Invocation, Fault> {
    resolve(call(method_name, params))
}

#[test]
fn the_three_forms_name_the_same_function() {
    let expected = Ok(Invocation::Webconference { function: Function::RoomInfo, args: vec![s("4711"), s("1234")] });
    assert_eq!(resolved("di", vec![s("webconference"), s("roomInfo"), s("4711"), s("1234")]), expected);
    assert_eq!(resolved("roomInfo", vec![s("4711"), s("1234")]), expected);
    assert_eq!(resolved("webconference.roomInfo", vec![s("4711"), s("1234")]), expected);
    assert_eq!(resolve(parse(PY_DI).unwrap()), Ok(Invocation::Webconference { function: Function::RoomCreate, args: vec![s("4711")] }));
}

#[test]
fn only_listed_functions_have_direct_names() {
    assert_eq!(Function::listed().len(), 15);
    for function in Function::ALL {
        assert_eq!(Function::from_name(function.name()), Some(function));
        let via_di = resolved("di", vec![s(FACTORY), s(function.name())]);
        assert_eq!(via_di, Ok(Invocation::Webconference { function, args: vec![] }));
        let listed = Function::listed().contains(&function);
        for direct in [function.name().to_owned(), format!("{FACTORY}.{}", function.name())] {
            let expected = if listed { Ok(Invocation::Webconference { function, args: vec![] }) } else { Err(Fault::unknown_method(&direct)) };
            assert_eq!(resolved(&direct, vec![]), expected, "{direct}");
        }
    }
    assert_eq!(resolved("webconference.addParticipant", vec![]), Err(Fault::new(-1, "webconference.addParticipant: unknown method name")));
}

#[test]
fn builtins_multicall_and_unknown_names() {
    assert_eq!(resolve(parse(PY_NO_PARAMS).unwrap()), Ok(Invocation::Builtin { builtin: Builtin::Calls, params: vec![] }));
    for builtin in Builtin::ALL {
        assert_eq!(resolved(builtin.name(), vec![Value::Int(1)]), Ok(Invocation::Builtin { builtin, params: vec![Value::Int(1)] }));
    }
    assert_eq!(resolved("system.multicall", vec![Value::Array(vec![])]), Ok(Invocation::Multicall(vec![Value::Array(vec![])])));
    for unknown in ["system.listMethods", "webconference.calls", "sbc.roomInfo", "RoomInfo", "webconference", "webconference."] {
        assert_eq!(resolved(unknown, vec![]), Err(Fault::unknown_method(unknown)));
    }
}

#[test]
fn di_faults_come_in_xmlrpc2di_order() {
    assert_eq!(resolved("di", vec![]), Err(Fault::missing_di_names()));
    assert_eq!(resolved("di", vec![s(FACTORY)]), Err(Fault::new(400, "need at least factory name and function name to call")));
    assert_eq!(resolved("di", vec![s("conference"), s("roomInfo")]), Err(Fault::new(500, "could not get factory")));
    assert_eq!(resolved("di", vec![Value::Int(1), s("roomInfo")]), Err(Fault::unknown_factory()));
    assert_eq!(resolved("di", vec![s(FACTORY), Value::Int(1)]), Err(Fault::unknown_factory()));
    assert_eq!(resolved("di", vec![s(FACTORY), s("roominfo")]), Err(Fault::new(504, "Exception: AmDynInvoke::NotImplemented: roominfo")));
    let date = Value::DateTime("20240102T03:04:05".to_owned());
    // The argument types are checked before the function is looked up.
    assert_eq!(resolved("di", vec![s(FACTORY), s("nosuch"), date.clone()]), Err(Fault::new(400, "unsupported parameter type")));
    let nested_binary = Value::Struct(vec![("k".to_owned(), Value::Array(vec![Value::Base64(vec![1])]))]);
    assert_eq!(resolved("di", vec![s(FACTORY), s("roomInfo"), s("r"), nested_binary.clone()]), Err(Fault::unsupported_type()));
    assert_eq!(resolved("webconference.roomInfo", vec![date]), Err(Fault::unsupported_type()));
    assert_eq!(resolved("roomInfo", vec![nested_binary]), Err(Fault::unsupported_type()));
}

/// A dispatch as the dialect's will be: resolve, then answer.
async fn answer(call: MethodCall) -> Result<Value, Fault> {
    match resolve(call)? {
        Invocation::Builtin { builtin: Builtin::Calls, .. } => Ok(Value::Int(2)),
        Invocation::Webconference { function: Function::ServerInfo, .. } => Ok(Value::Array(vec![s("info"), s("info")])),
        other => Err(Fault::exception(&format!("not in this test: {other:?}"))),
    }
}

#[tokio::test]
async fn python_multicall() {
    let Ok(Invocation::Multicall(params)) = resolve(parse(PY_MULTICALL).unwrap()) else { panic!("not a multicall") };
    let results = multicall(params, answer).await.unwrap();
    assert_eq!(
        results,
        Value::Array(vec![Value::Array(vec![Value::Int(2)]), Value::Array(vec![Value::Array(vec![s("info"), s("info")])])])
    );
    if let Some(read) = python_reads(&write_response(&results)) {
        assert_eq!(read, "(([[2], [['info', 'info']]],), None)");
    }
}

#[tokio::test]
async fn multicall_entries_fail_one_by_one() {
    let entry = |name: Value, params: Value| Value::Struct(vec![("methodName".to_owned(), name), ("params".to_owned(), params)]);
    let calls = Value::Array(vec![
        entry(s("calls"), Value::Array(vec![])),
        entry(s("nosuch"), Value::Array(vec![])),
        entry(s("calls"), s("not an array")),
        Value::Struct(vec![("methodName".to_owned(), s("calls"))]),
        s("calls"),
        entry(s("system.multicall"), Value::Array(vec![Value::Array(vec![])])),
    ]);
    let results = multicall(vec![calls], answer).await.unwrap();
    let Value::Array(results) = results else { panic!("{results:?}") };
    assert_eq!(results[0], Value::Array(vec![Value::Int(2)]));
    assert_eq!(results[1], Fault::unknown_method("nosuch").to_value());
    let malformed = Fault::new(-1, "system.multicall: each call is a struct of methodName (a string) and params (an array)").to_value();
    assert_eq!(&results[2..5], &[malformed.clone(), malformed.clone(), malformed]);
    assert_eq!(results[5], Fault::new(-1, "system.multicall: a call inside it cannot be system.multicall").to_value());
    assert_eq!(results.len(), 6);
}

#[tokio::test]
async fn multicall_takes_one_array() {
    let refused = Err(Fault::new(-1, "system.multicall: takes one parameter, an array of calls"));
    assert_eq!(multicall(vec![], answer).await, refused);
    assert_eq!(multicall(vec![s("calls")], answer).await, refused);
    assert_eq!(multicall(vec![Value::Array(vec![]), Value::Array(vec![])], answer).await, refused);
    assert_eq!(multicall(vec![Value::Array(vec![])], answer).await, Ok(Value::Array(vec![])));
}

#[test]
fn server_info_line() {
    let counters = CallCounters { active: 2, ended: 10, connected: 7, connected_seconds: 1919 };
    assert_eq!(
        server_info("1.6.0-dev", "x86_64/Linux", &counters),
        "Server: Sip Express Media Server (1.6.0-dev (x86_64/Linux)) calls: 2 active/10 total/7 connect/31 min"
    );
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn platform_as_uname_names_it() {
    assert_eq!(platform(), "x86_64/Linux");
}
