//! The SEMS webconference dialect over XML-RPC (reference 003) against the real
//! server, driven by Python's standard `xmlrpc.client` (`tests/kit/xmlrpc/wc_call.py`,
//! one call per run) as SEMS's own tools and GUI drive SEMS.
//!
//! | test | what |
//! |---|---|
//! | `rooms_pins_and_faults` | no SIP: `calls`, roomCreate, the adminpin rule, the three method forms, built-ins, faults, multicall, master functions, feedback file lines, roomDelete, the room in the REST list, a raw non-XML POST |
//! | `dialout_mute_kick` | two pjsua2 phones dialled out into a room: status 3 `200 OK`; mute → the other stops hearing it (FFT), unmute → hears again; kickout → BYE; roomDelete → BYE; serverInfo counts the ended calls |
//! | `dialout_with_credentials` | a SIPp UAS challenges the INVITE (401, qop auth): the dial-out answers with the credentials given to `dialout` and carries its extra headers |

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::*;

const MASTER: &str = "master-secret-9";

/// A server with the dialect on its own port (peer slot 7's number, over TCP).
struct Conf {
    server: Server,
    url: String,
    feedback: PathBuf,
}

fn start(env: &TestEnv) -> Conf {
    let port = env.ports.peer_sip(7);
    let feedback = env.path("feedback.txt");
    let cfg = env.path("switchboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mx]\nadmin_listen = \"\"\n\n[xmlrpc]\nmaster_password = \"{MASTER}\"\nfeedback_file = \"{}\"\nparticipants_expire_delay = 2\n",
            feedback.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        env,
        ServerOptions {
            t1_ms: Some(100),
            extra_args: vec!["--config".into(), cfg.display().to_string(), "--xmlrpc-listen".into(), format!("127.0.0.1:{port}")],
            ..Default::default()
        },
    );
    Conf { server, url: format!("http://127.0.0.1:{port}/RPC2"), feedback }
}

impl Conf {
    /// One call; `Ok(result)` or `Err((code, string))` for a fault.
    fn call(&self, method: &str, args: Value) -> Result<Value, (i64, String)> {
        let out = Command::new(venv_python())
            .arg(kit_dir().join("xmlrpc/wc_call.py"))
            .arg(&self.url)
            .arg(method)
            .arg(args.to_string())
            .output()
            .expect("run wc_call.py");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{method} {args}: no JSON ({e}): {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        match v.get("fault") {
            Some(f) => Err((f[0].as_i64().unwrap(), f[1].as_str().unwrap().to_owned())),
            None => Ok(v["result"].clone()),
        }
    }

    /// `di("webconference", function, args…)`, which must not fault.
    fn wc(&self, function: &str, args: Value) -> Vec<Value> {
        let mut all = vec![json!("webconference"), json!(function)];
        all.extend(args.as_array().unwrap().iter().cloned());
        match self.call("di", Value::Array(all)) {
            Ok(Value::Array(v)) => v,
            other => panic!("{function}: {other:?}"),
        }
    }
}

/// Checks the serverInfo tail and returns its numbers (active, total, connect, min).
fn info_numbers(v: &Value) -> [u64; 4] {
    let line = v.as_str().unwrap_or_else(|| panic!("info is not a string: {v}"));
    let rest = line.strip_prefix("Server: Sip Express Media Server (").unwrap_or_else(|| panic!("{line}"));
    let (version, counts) = rest.split_once(")) calls: ").unwrap_or_else(|| panic!("{line}"));
    assert!(version.starts_with("switchboard-") && version.ends_with(&format!(" ({}/Linux", std::env::consts::ARCH)), "{line}");
    let parts: Vec<&str> = counts.split('/').collect();
    assert_eq!(parts.len(), 4, "{line}");
    let num = |s: &str, suffix: &str| s.strip_suffix(suffix).unwrap_or_else(|| panic!("{line}")).parse::<u64>().unwrap();
    [num(parts[0], " active"), num(parts[1], " total"), num(parts[2], " connect"), num(parts[3], " min")]
}

/// The last element is the serverInfo line; returns the rest.
fn body(mut v: Vec<Value>) -> Vec<Value> {
    let info = v.pop().expect("empty result");
    info_numbers(&info);
    v
}

const WRONG: &str = "wrong adminpin or inexisting room";

#[test]
fn rooms_pins_and_faults() {
    let env = TestEnv::new("xmlrpc_rooms");
    let c = start(&env);

    assert_eq!(c.call("calls", json!([])), Ok(json!(0)), "calls() first, as the tools do");

    // roomCreate: a six-digit pin; again: already opened
    let created = body(c.wc("roomCreate", json!(["4711"])));
    assert_eq!(created.len(), 3);
    assert_eq!((&created[0], &created[1]), (&json!(0), &json!("OK")));
    let pin = created[2].as_str().unwrap().to_owned();
    assert!(pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()), "pin {pin}");
    assert_eq!(body(c.wc("roomCreate", json!(["4711"]))), vec![json!(1), json!("room already opened"), json!("")]);
    // a string where the timeout goes is an exception
    assert_eq!(c.call("di", json!(["webconference", "roomCreate", "4712", "ten"])).unwrap_err().0, 500);

    // the room is the engine's: the REST API lists it, empty
    let rest = c.server.get("/rest/v1/uc/conferences").json();
    assert!(rest.as_array().unwrap().iter().any(|r| r["confroomnum"] == "4711"), "{rest}");

    // roomInfo: right pin, wrong pin
    assert_eq!(body(c.wc("roomInfo", json!(["4711", pin]))), vec![json!(0), json!("OK"), json!([])]);
    assert_eq!(body(c.wc("roomInfo", json!(["4711", "000000"]))), vec![json!(1), json!(WRONG), json!([])]);
    // an unknown room is created with the pin given; an empty pin is taken by the first caller
    assert_eq!(body(c.wc("roomInfo", json!(["777", "1234"]))), vec![json!(0), json!("OK"), json!([])]);
    assert_eq!(body(c.wc("roomInfo", json!(["777", "4321"])))[0], json!(1));
    assert_eq!(body(c.wc("roomInfo", json!(["555", ""])))[0], json!(0));
    assert_eq!(body(c.wc("roomInfo", json!(["555", "9999"])))[0], json!(0), "first caller wins");
    assert_eq!(body(c.wc("roomInfo", json!(["555", "8888"])))[0], json!(1));

    // the three forms give the same answer
    let di = c.wc("roomInfo", json!(["4711", pin]));
    assert_eq!(c.call("roomInfo", json!(["4711", pin])), Ok(Value::Array(di.clone())));
    assert_eq!(c.call("webconference.roomInfo", json!(["4711", pin])), Ok(Value::Array(di)));
    // only _list's functions have the short forms
    assert_eq!(c.call("help", json!([])), Err((-1, "help: unknown method name".into())));
    assert_eq!(body(c.wc("help", json!([]))), vec![json!("help text goes here")]);
    assert_eq!(c.wc("_list", json!([])).len(), 15, "_list has no info line");

    // faults, in SEMS's codes and words
    assert_eq!(c.call("nope", json!([])), Err((-1, "nope: unknown method name".into())));
    assert_eq!(c.call("di", json!(["webconference"])), Err((400, "need at least factory name and function name to call".into())));
    assert_eq!(c.call("di", json!(["conference", "roomInfo"])), Err((500, "could not get factory".into())));
    assert_eq!(c.call("di", json!(["webconference", "roomExplode"])), Err((504, "Exception: AmDynInvoke::NotImplemented: roomExplode".into())));
    assert_eq!(c.call("roomInfo", json!([4711, pin])), Err((300, "Exception: Type mismatch in arguments.".into())));
    assert_eq!(c.call("roomInfo", json!(["4711"])), Err((300, "Exception: AmArg out of bounds - parameter number mismatch.".into())));

    // built-ins
    assert_eq!(c.call("set_loglevel", json!([3])), Ok(json!("200 OK")));
    assert_eq!(c.call("get_loglevel", json!([])), Ok(json!(3)));
    assert_eq!(c.call("set_cpslimit", json!([40])), Ok(json!("200 OK")));
    assert_eq!(c.call("get_cpslimit", json!([])), Ok(json!("40 0")));
    assert_eq!(c.call("get_shutdownmode", json!([])), Ok(json!(false)));
    for getter in ["get_callsavg", "get_callsmax", "get_cpsavg", "get_cpsmax"] {
        assert_eq!(c.call(getter, json!([])), Ok(json!(0)), "{getter} on an idle server");
    }

    // system.multicall: values wrapped in one-element arrays, faults as structs
    let multi = c
        .call("system.multicall", json!([[{"methodName": "calls", "params": []}, {"methodName": "webconference.roomInfo", "params": ["4711", "bad"]}, {"methodName": "nope", "params": []}]]))
        .expect("multicall");
    assert_eq!(multi[0], json!([0]));
    assert_eq!(multi[1][0].as_array().unwrap()[0..3], [json!(1), json!(WRONG), json!([])]);
    info_numbers(&multi[1][0][3]);
    assert_eq!(multi[2], json!({"faultCode": -1, "faultString": "nope: unknown method name"}));

    // changeRoomAdminpin
    assert_eq!(body(c.wc("changeRoomAdminpin", json!(["4711", pin, "4242"]))), vec![json!(0), json!("OK")]);
    assert_eq!(body(c.wc("roomInfo", json!(["4711", pin])))[0], json!(1), "the old pin is refused");
    assert_eq!(body(c.wc("changeRoomAdminpin", json!(["4711", pin, "1"])))[0], json!(1));

    // master functions
    assert_eq!(body(c.wc("getRoomPassword", json!(["guess", "4711"]))), vec![json!(403), json!("Wrong Master Password.")]);
    assert_eq!(body(c.wc("getRoomPassword", json!([MASTER, "4711"]))), vec![json!(0), json!("4242")]);
    assert_eq!(body(c.wc("getRoomPassword", json!([MASTER, "9"]))), vec![json!(404), json!("Room does not exist.")]);
    assert_eq!(body(c.wc("listRooms", json!([MASTER]))), vec![json!(200), json!(["4711", "555", "777"])]);
    assert_eq!(body(c.wc("listRooms", json!(["guess"]))), vec![json!(407), json!(["Wrong Master Password."])]);

    // invited participants
    assert_eq!(body(c.wc("addParticipant", json!(["777", "p-42", "sip:bob@example.org"]))), vec![json!(200), json!("OK")]);
    assert_eq!(body(c.wc("roomInfo", json!(["777", "1234"])))[2], json!([["", "sip:bob@example.org", 0, "", 0, "p-42"]]));
    assert_eq!(body(c.wc("findParticipant", json!(["p-42"]))), vec![json!(["777"])]);
    assert_eq!(body(c.wc("kickout", json!(["777", "1234", ""]))), vec![json!(0), json!("OK")], "an invited entry: 0");
    assert_eq!(body(c.wc("kickout", json!(["777", "1234", "no-such-tag"]))), vec![json!(2), json!("call does not exist")]);

    // feedback: exact lines, written when flushed
    let t0 = epoch_s() as u64;
    assert_eq!(body(c.wc("vqRoomFeedback", json!(["4711", "4242", 5]))), vec![json!(0), json!("OK")]);
    assert_eq!(body(c.wc("vqCallFeedback", json!(["4711", "4242", "tag-1", 3]))), vec![json!(0), json!("OK")]);
    assert_eq!(body(c.wc("vqConferenceFeedback", json!(["4711", "4242", "bob", "fine call", 4]))), vec![json!(0), json!("OK")]);
    assert_eq!(c.call("di", json!(["webconference", "vqRoomFeedback", "4711", "4242", "five"])).unwrap_err().0, 300);
    assert_eq!(body(c.wc("flushFeedback", json!([]))), Vec::<Value>::new());
    let t1 = epoch_s() as u64;
    let text = std::fs::read_to_string(&c.feedback).expect("feedback file");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    let ts_of = |line: &str| -> u64 { line.trim_end_matches("|||\n").rsplit("|||").next().unwrap().parse().unwrap() };
    for line in &lines {
        assert!((t0..=t1).contains(&ts_of(line)), "timestamp of {line:?} not within [{t0}, {t1}]");
    }
    let ts = ts_of(lines[0]);
    assert_eq!(lines[0], format!("RO 4711|||4242|||5|||{ts}|||\n"));
    assert_eq!(lines[1], format!("CA|||4711|||4242|||tag-1|||3|||{}|||\n", ts_of(lines[1])));
    assert_eq!(lines[2], format!("CO|||4711|||4242|||4|||bob|||fine call|||{}|||\n", ts_of(lines[2])));
    assert_eq!(body(c.wc("resetFeedback", json!([""]))), vec![json!(-2), json!("no filename given")]);
    assert_eq!(body(c.wc("resetFeedback", json!(["/nonexistent-dir/fb.txt"]))), vec![json!(-1), json!("error opening new feedback file")]);
    assert_eq!(body(c.wc("resetFeedback", json!([c.feedback.display().to_string()]))), vec![json!(0), json!("OK")]);
    assert_eq!(std::fs::read_to_string(&c.feedback).unwrap(), "", "reset truncates");

    // serverInfo: the line twice
    let si = c.wc("serverInfo", json!([]));
    assert_eq!(si.len(), 2);
    assert_eq!(si[0], si[1]);
    assert_eq!(info_numbers(&si[0]), [0, 0, 0, 0]);

    // roomDelete: pin checked, then gone for both APIs
    assert_eq!(body(c.wc("roomDelete", json!(["4711", "0"]))), vec![json!(1), json!(WRONG)]);
    assert_eq!(body(c.wc("roomDelete", json!(["4711", "4242"]))), vec![json!(0), json!("OK")]);
    assert_eq!(body(c.wc("roomDelete", json!(["4711", "4242"]))), vec![json!(2), json!("room does not exist\n")]);
    let rest = c.server.get("/rest/v1/uc/conferences").json();
    assert!(!rest.as_array().unwrap().iter().any(|r| r["confroomnum"] == "4711"), "{rest}");

    // raw HTTP: any path; junk is a fault in a 200, with XmlRpc++'s headers
    let addr = c.url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
    let raw = http_request(addr, "POST", "/control", Some("<methodCall><methodName>calls"), None).expect("raw POST");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("server"), Some("XMLRPC++ 0.8"));
    assert_eq!(raw.header("content-type"), Some("text/xml"));
    assert!(raw.body.contains("<name>faultCode</name>") && raw.body.contains("<i4>-1</i4>"), "{}", raw.body);
    let ok = http_request(addr, "POST", "/", Some("<?xml version=\"1.0\"?><methodCall><methodName>calls</methodName></methodCall>"), None).unwrap();
    assert!(ok.body.contains("<value><i4>0</i4></value>"), "{}", ok.body);
}

/// A pjsua2 phone that answers one call, plays `hz` and records what it hears.
fn phone(env: &TestEnv, i: u16, user: &str, hz: u32) -> (PjPeer, PathBuf) {
    let rec = env.path(&format!("{user}_rx.wav"));
    env.report_on_failure(&rec);
    let args: Vec<String> = vec![
        "answer".into(),
        "--user".into(),
        user.into(),
        "--sip-port".into(),
        env.ports.peer_sip(i).to_string(),
        "--rtp-port".into(),
        env.ports.pj_rtp(i).to_string(),
        "--rtp-range".into(),
        "10".into(),
        "--play".into(),
        room_tone(env, hz).display().to_string(),
        "--loop".into(),
        "--record".into(),
        rec.display().to_string(),
        "--codec".into(),
        "PCMU/8000".into(),
        "--max-time".into(),
        "60".into(),
    ];
    let mut p = PjPeer::spawn(env, user, &args);
    p.wait_ready(Duration::from_secs(20));
    (p, rec)
}

/// The participant tuple with call tag `tag` in a roomInfo result.
fn tuple(info: &[Value], tag: &str) -> Option<Value> {
    info[2].as_array()?.iter().find(|t| t[0] == tag).cloned()
}

#[test]
fn dialout_mute_kick() {
    let env = TestEnv::new("xmlrpc_dialout");
    let _media = env.media_lock();
    let c = start(&env);
    let (alice, alice_rec) = phone(&env, 0, "alice", 440);
    let (bob, bob_rec) = phone(&env, 1, "bob", 1000);
    let pin = body(c.wc("roomCreate", json!(["4711"])))[2].as_str().unwrap().to_owned();

    let dial = |user: &str, i: u16, pid: &str| -> String {
        let callee_domain = format!("127.0.0.1:{}", env.ports.peer_sip(i));
        let r = body(c.wc("dialout", json!(["4711", pin, user, "conf", "voip.example", "", "", "", callee_domain, pid])));
        assert_eq!((&r[0], &r[1]), (&json!(0), &json!("OK")), "{r:?}");
        r[2].as_str().unwrap().to_owned()
    };
    let a_tag = dial("alice", 0, "p-alice");
    let b_tag = dial("bob", 1, "");
    assert_ne!(a_tag, b_tag);
    assert_eq!(body(c.wc("dialout", json!(["4711", "bad", "x", "conf", "voip.example", "", ""]))), vec![json!(1), json!(WRONG), json!("")]);

    let connected_at = poll(Duration::from_secs(15), "both dial-outs connected", || {
        let info = body(c.wc("roomInfo", json!(["4711", pin])));
        let a = tuple(&info, &a_tag)?;
        let b = tuple(&info, &b_tag)?;
        (a[2] == 3 && b[2] == 3).then(|| (a, b, epoch_s()))
    });
    let (a, b, t_connected) = connected_at;
    assert_eq!(a, json!([a_tag, format!("sip:alice@127.0.0.1:{}", env.ports.peer_sip(0)), 3, "200 OK", 0, "p-alice"]));
    assert_eq!(b, json!([b_tag, format!("sip:bob@127.0.0.1:{}", env.ports.peer_sip(1)), 3, "200 OK", 0, ""]));
    assert_eq!(info_numbers(&c.wc("serverInfo", json!([]))[0])[0], 2, "two active calls");
    assert_eq!(c.call("calls", json!([])), Ok(json!(2)));

    // bob hears alice; mute alice for 4 s; then again
    std::thread::sleep(Duration::from_secs(3));
    let t_mute = epoch_s();
    assert_eq!(body(c.wc("mute", json!(["4711", pin, a_tag]))), vec![json!(0), json!("OK")]);
    assert_eq!(tuple(&body(c.wc("roomInfo", json!(["4711", pin]))), &a_tag).unwrap()[4], json!(1), "muted shows");
    std::thread::sleep(Duration::from_secs(4));
    let t_unmute = epoch_s();
    assert_eq!(body(c.wc("unmute", json!(["4711", pin, a_tag]))), vec![json!(0), json!("OK")]);
    assert_eq!(tuple(&body(c.wc("roomInfo", json!(["4711", pin]))), &a_tag).unwrap()[4], json!(0));
    std::thread::sleep(Duration::from_secs(3));
    let t_kick = epoch_s();

    // kick alice: she gets a BYE; her entry goes 4/5 and is dropped after 2 s
    assert_eq!(body(c.wc("kickout", json!(["4711", pin, a_tag]))), vec![json!(0), json!("OK")]);
    let run = alice.wait();
    run.assert_ok();
    assert_eq!(run.result.as_ref().unwrap()["final_status"][0], json!(200), "ended by our BYE: {:?}", run.result);
    let after = tuple(&body(c.wc("roomInfo", json!(["4711", pin]))), &a_tag);
    assert!(after.as_ref().is_some_and(|t| t[2] == 4 || t[2] == 5), "{after:?}");
    poll(Duration::from_secs(8), "kicked entry pruned", || tuple(&body(c.wc("roomInfo", json!(["4711", pin]))), &a_tag).is_none().then_some(()));
    assert_eq!(body(c.wc("kickout", json!(["4711", pin, "nobody"]))), vec![json!(2), json!("call does not exist")]);

    // the room is deleted: bob gets a BYE
    assert_eq!(body(c.wc("roomDelete", json!(["4711", pin]))), vec![json!(0), json!("OK")]);
    bob.wait().assert_ok();
    let counts = poll(Duration::from_secs(5), "both calls counted", || {
        let n = info_numbers(&c.wc("serverInfo", json!([]))[0]);
        (n[1] == 2).then_some(n)
    });
    assert_eq!(counts, [0, 2, 2, 0], "active/total/connect/min");

    // what bob heard, in his recording's time (it starts as his call connects)
    let rel = |t: f64| t - t_connected;
    tone_check(&bob_rec).expect(&[440]).window(1.0, Some(rel(t_mute) - 0.5)).assert("bob hears alice");
    tone_check(&bob_rec).absent(&[440]).window(rel(t_mute) + 1.0, Some(rel(t_unmute) - 0.5)).allow_silent("alice muted: bob may hear nothing at all").assert("bob does not hear muted alice");
    tone_check(&bob_rec).expect(&[440]).window(rel(t_unmute) + 1.0, Some(rel(t_kick) - 0.5)).assert("bob hears alice again");
    // alice never stopped hearing bob
    tone_check(&alice_rec).expect(&[1000]).window(1.0, Some(rel(t_kick) - 0.5)).assert("alice hears bob throughout");
}

#[test]
fn dialout_with_credentials() {
    let env = TestEnv::new("xmlrpc_dialout_auth");
    let c = start(&env);
    let uas = Sipp::new(&env, "uas_auth.xml", "uas").slot(2).timeout_s(40);
    let uas_port = uas.local_port();
    let uas = uas.spawn();
    wait_udp_bound(uas_port, Duration::from_secs(5));
    let r = body(c.wc(
        "dialout",
        json!(["4711", "77", "carol", "alice", "voip.example", "alice", "s3cret", "X-Conf: 4711|X-Tag: one|", format!("127.0.0.1:{uas_port}")]),
    ));
    assert_eq!((&r[0], &r[1]), (&json!(0), &json!("OK")), "{r:?}");
    let tag = r[2].as_str().unwrap().to_owned();
    let t = poll(Duration::from_secs(10), "authenticated dial-out connected", || {
        let t = tuple(&body(c.wc("roomInfo", json!(["4711", "77"]))), &tag)?;
        (t[2] == 3).then_some(t)
    });
    assert_eq!(t, json!([tag, format!("sip:carol@127.0.0.1:{uas_port}"), 3, "200 OK", 0, ""]));
    assert_eq!(body(c.wc("roomDelete", json!(["4711", "77"]))), vec![json!(0), json!("OK")]);
    let run = uas.wait();
    run.assert_ok();
    let invites = run.received("INVITE ");
    assert_eq!(invites.len(), 2, "{}", run.report());
    let second = &invites[1];
    assert_eq!(second.header("From").map(|f| f.contains("<sip:alice@voip.example>")), Some(true), "{:?}", second.header("From"));
    assert!(second.header("Authorization").is_some_and(|a| a.contains("username=\"alice\"")));
    assert_eq!(invites[0].header("Call-ID"), second.header("Call-ID"));
}
