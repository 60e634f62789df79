//! The conference management REST API (`/rest/v1/uc/conferences`) over real HTTP against
//! the real server, with SIPp and pjsua2 in the rooms.
//!
//! | test | what |
//! |---|---|
//! | `every_endpoint_needs_the_token_and_docs_are_served` | 401 on every endpoint; no token = no HTTP off loopback; `/health`, `/openapi.json`, `/docs` |
//! | `errors_without_rooms` | exact 404 bodies, 400 for bad input, 405, 422 for an unroutable number; never 5xx |
//! | `rooms_lookup_list_options_kick_and_end` | SIPp callers in two rooms: lists and their options, LOOKUP by each key, script-mode paths, mute/deaf, kick (SIPp sees BYE), ended participants, end (BYE) |
//! | `dial_out_to_sipp_uas_then_kick` | dial-out with Idempotency-Key, read-your-writes, progress in `state`, kick (SIPp UAS sees BYE) |
//! | `end_conference_cancels_ringing_dial_out_and_byes_pjsua_clients` | DELETE while a dial-out rings: SIPp sees CANCEL, pjsua2 callers see BYE |
//! | `topology_change_heard_by_ear` | a rule posted over REST, checked with tones: who hears whom, continuously, before and after |
//! | `numbers_go_to_the_configured_gateway` | `[routing] gateway` from a config file; a bad gateway stops start-up |

mod support;

use std::time::Duration;
use support::*;

const TOKEN: &str = "conf-api-test-token";
const BASE: &str = "/rest/v1/uc/conferences";

// ---------------------------------------------------------------------------------------
// Auth, docs, errors: no rooms needed

#[test]
fn every_endpoint_needs_the_token_and_docs_are_served() {
    let env = TestEnv::new("conf_api_auth_and_docs");
    let server = start(&env, &[]);
    let c = format!("{BASE}/rCF-001-nosuch");
    let p = format!("{c}/participants/0000");
    let endpoints: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", BASE.to_string(), None),
        ("LOOKUP", BASE.to_string(), Some(r#"{"confroomnum":"1"}"#)),
        ("POST", format!("{BASE}/lookup"), Some(r#"{"confroomnum":"1"}"#)),
        ("GET", c.clone(), None),
        ("DELETE", c.clone(), None),
        ("GET", format!("{c}/participants"), None),
        ("POST", format!("{c}/participants"), Some(r#"{"to":"sip:x@127.0.0.1:9"}"#)),
        ("GET", p.clone(), None),
        ("DELETE", p.clone(), None),
        ("PATCH", p.clone(), Some(r#"{"muted":true}"#)),
        ("GET", format!("{c}/topology"), None),
        ("POST", format!("{c}/topology"), Some(r#"[{"from":"*","to":"*","enabled":true}]"#)),
        ("GET", "/v1/calls".to_string(), None),
    ];
    for (method, path, body) in &endpoints {
        for token in [None, Some("wrong-token")] {
            let resp = http_request(server.http, method, path, *body, token).unwrap();
            assert_eq!(resp.status, 401, "{method} {path} with token {token:?}: {resp:?}");
            assert_eq!(resp.json(), json!({"error_code": 1401, "error_message": "Missing or invalid bearer token"}));
        }
        // and with the token it is not a 401 (nor a 5xx)
        let resp = server.request(method, path, *body);
        assert!(resp.status != 401 && resp.status < 500, "{method} {path} with the token: {resp:?}");
    }

    // without a token the HTTP API is not served off loopback
    let open = run_cli(
        &env,
        "no_token_off_loopback",
        &["serve", "--http-listen", &format!("0.0.0.0:{}", env.ports.peer_sip(7)), "--sip-listen", &format!("127.0.0.1:{}", env.ports.peer_sip(6))],
        Duration::from_secs(10),
    );
    assert!(open.status.is_some_and(|s| !s.success()) && open.stderr.contains("without an API token"), "{}", open.stderr);

    let health = http_request(server.http, "GET", "/health", None, None).unwrap();
    assert_eq!(health.status, 200, "{health:?}");

    let spec = http_request(server.http, "GET", "/openapi.json", None, None).unwrap();
    assert_eq!(spec.status, 200, "{spec:?}");
    let spec = spec.json();
    assert!(spec["openapi"].as_str().unwrap_or("").starts_with("3.1"), "not OpenAPI 3.1: {}", spec["openapi"]);
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object(), "no bearer scheme");
    let documented = [
        ("/rest/v1/uc/conferences", "get"),
        ("/rest/v1/uc/conferences/lookup", "post"),
        ("/rest/v1/uc/conferences/{confid}", "get"),
        ("/rest/v1/uc/conferences/{confid}", "delete"),
        ("/rest/v1/uc/conferences/{confid}/participants", "get"),
        ("/rest/v1/uc/conferences/{confid}/participants", "post"),
        ("/rest/v1/uc/conferences/{confid}/participants/{participantid}", "get"),
        ("/rest/v1/uc/conferences/{confid}/participants/{participantid}", "delete"),
        ("/rest/v1/uc/conferences/{confid}/participants/{participantid}", "patch"),
        ("/rest/v1/uc/conferences/{confid}/topology", "get"),
        ("/rest/v1/uc/conferences/{confid}/topology", "post"),
    ];
    for (path, method) in documented {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} not in /openapi.json");
        assert!(op["responses"]["401"].is_object(), "{method} {path}: 401 not documented");
        if path != "/rest/v1/uc/conferences" {
            assert!(op["responses"]["404"].is_object(), "{method} {path}: 404 not documented");
        }
    }
    let list_params: Vec<&str> =
        spec["paths"][BASE]["get"]["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for name in ["filter", "mask", "offset", "limit", "order", "flat", "countonly"] {
        assert!(list_params.contains(&name), "list option {name} not documented: {list_params:?}");
    }
    for schema in ["Conference", "Participant", "TopologyRule", "LookupBody", "DialOutBody", "ErrorBody"] {
        assert!(spec["components"]["schemas"][schema].is_object(), "schema {schema} missing");
    }
    assert!(spec["info"]["description"].as_str().unwrap().contains("LOOKUP"), "LOOKUP verb not explained");

    let docs = http_request(server.http, "GET", "/docs/", None, None).unwrap();
    assert_eq!(docs.status, 200, "{docs:?}");
    assert!(docs.header("content-type").unwrap_or("").starts_with("text/html"), "{docs:?}");
    assert!(docs.body.contains("swagger"), "no Swagger UI in /docs/");
    let init = http_request(server.http, "GET", "/docs/swagger-initializer.js", None, None).unwrap();
    assert!(init.status == 200 && init.body.contains("/openapi.json"), "Swagger UI does not load /openapi.json: {init:?}");
}

#[test]
fn errors_without_rooms() {
    let env = TestEnv::new("conf_api_errors");
    let mut server = start(&env, &[]);
    let c = format!("{BASE}/rCF-001-nosuch");
    let conf_404 = json!({"error_code": 1404, "error_message": "Conference not found"});

    // 404 Conference not found, with the reference's exact body
    for (method, path, body) in [
        ("GET", c.clone(), None),
        ("DELETE", c.clone(), None),
        ("GET", format!("{c}/participants"), None),
        ("POST", format!("{c}/participants"), Some(r#"{"to":"sip:bob@127.0.0.1:9"}"#)),
        ("GET", format!("{c}/participants/p1"), None),
        ("DELETE", format!("{c}/participants/p1"), None),
        ("PATCH", format!("{c}/participants/p1"), Some(r#"{"deaf":true}"#)),
        ("GET", format!("{c}/topology"), None),
        ("POST", format!("{c}/topology"), Some(r#"[{"from":"*","to":"*","enabled":false}]"#)),
        ("LOOKUP", BASE.to_string(), Some(r#"{"confid":"rCF-001-nosuch"}"#)),
        ("POST", format!("{BASE}/lookup"), Some(r#"{"callid":"nobody@nowhere"}"#)),
        ("GET", format!("{BASE}/confroomnum=404"), None),
        ("GET", format!("{BASE}/callid=nobody%40nowhere/participants"), None),
    ] {
        let resp = server.request(method, &path, body);
        assert_eq!((resp.status, resp.json()), (404, conf_404.clone()), "{method} {path}");
    }

    // 400 for bad input, never a 5xx
    for (method, path, body, says) in [
        ("GET", format!("{BASE}?filter=%7B%22colour%22%3A1%7D"), None, "unknown field `colour` in filter"),
        ("GET", format!("{BASE}?filter=notjson"), None, "filter is not JSON"),
        ("GET", format!("{BASE}?order=-nosuch"), None, "unknown field `nosuch` in order"),
        ("GET", format!("{BASE}?offset=-3"), None, "offset must be an integer from 0 to"),
        ("GET", format!("{BASE}?flat=%20true"), None, "flat must be true or false"),
        ("GET", format!("{BASE}/confroomnum=1&callid=x"), None, "must be one key=value"),
        ("GET", "/v1/events?limit=10001".to_string(), None, "limit must be an integer from 0 to 10000"),
        ("GET", format!("{BASE}?countonly=maybe"), None, "countonly must be true or false"),
        ("GET", format!("{BASE}?fliter=x"), None, "unknown field `fliter`"),
        ("GET", format!("{c}/participants?filter=%7B%22age%22%3A3%7D"), None, "unknown field `age` in filter"),
        ("GET", format!("{c}?offset=1"), None, "unknown field `offset`"),
        ("LOOKUP", BASE.to_string(), Some("{not json"), ""),
        ("LOOKUP", BASE.to_string(), Some("{}"), "no lookup key"),
        ("POST", format!("{BASE}/lookup"), Some(r#"{"phone":"12"}"#), "unknown field `phone`"),
        ("POST", format!("{BASE}/lookup"), Some(r#"{"mode":"number"}"#), "together with `from`"),
        ("POST", format!("{BASE}/lookup"), Some(r#"{"from":"alice","mode":"number"}"#), "not a number"),
        ("GET", format!("{BASE}/nosuchkey=1"), None, "unknown field `nosuchkey`"),
        ("POST", format!("{c}/participants"), Some(r#"{"to":"sip:x@127.0.0.1:9""#), ""),
        ("POST", format!("{c}/participants"), Some(r#"{"to":"hello there"}"#), "neither a SIP URI nor a number"),
        ("POST", format!("{c}/participants"), Some(r#"{"to":"sip:x@127.0.0.1:9","via":"y"}"#), "unknown field `via`"),
        ("PATCH", format!("{c}/participants/p1"), Some("{}"), "nothing to change"),
        ("PATCH", format!("{c}/participants/p1"), Some(r#"{"loud":true}"#), "unknown field `loud`"),
        ("POST", format!("{c}/topology"), Some(r#"[{"from":"*","to":"*"}]"#), "topology change must be a list"),
        ("POST", format!("{c}/topology"), Some(r#"[{"from":"*","to":"*","enabled":true,"x":1}]"#), "topology change must be a list"),
    ] {
        let resp = server.request(method, &path, body);
        assert_eq!(resp.status, 400, "{method} {path} {body:?}: {resp:?}");
        let err = resp.json();
        assert_eq!(err["error_code"], 1400, "{method} {path}: {err}");
        assert!(err["error_message"].as_str().unwrap().contains(says), "{method} {path}: {err} should say {says:?}");
    }

    // a number with no gateway: a clear 422, saying what to configure
    let resp = server.post(&format!("{c}/participants"), &json!({"to": "2216"}));
    assert_eq!(resp.status, 422, "{resp:?}");
    assert_eq!(resp.json()["error_code"], 1422);
    assert!(resp.body.contains("[routing] gateway"), "{resp:?}");

    // methods: a custom verb other than LOOKUP, and known verbs where they do not apply
    for (method, path) in [("FOO", BASE.to_string()), ("PUT", BASE.to_string()), ("PUT", c.clone()), ("GET", format!("{BASE}/lookup"))] {
        let resp = server.request(method, &path, None);
        assert_eq!((resp.status, resp.json()["error_code"].clone()), (405, json!(1405)), "{method} {path}: {resp:?}");
    }
    let resp = server.get("/rest/v1/uc/nothing");
    assert_eq!((resp.status, resp.json()["error_code"].clone()), (404, json!(1404)), "{resp:?}");

    // empty lists are lists; countonly counts
    assert_eq!(ok(server.get(BASE), "list"), json!([]));
    assert_eq!(ok(server.get(&format!("{BASE}?countonly=true")), "count"), json!({"count": 0}));
    server.assert_alive();
}

// ---------------------------------------------------------------------------------------
// With SIPp callers in rooms

#[test]
fn rooms_lookup_list_options_kick_and_end() {
    let env = TestEnv::new("conf_api_rooms");
    let server = start(&env, &[]);
    // two callers in room 7 (slot 0 first, then slot 1), one in room 8
    let uac0 = join_with_sipp(&env, 0, "7", "uac7a");
    let room7 = wait_room(&server, "7");
    let p0 = wait_participant(&server, &room7, env.ports.peer_sip(0));
    let uac1 = join_with_sipp(&env, 1, "7", "uac7b");
    let p1 = wait_participant(&server, &room7, env.ports.peer_sip(1));
    let uac2 = join_with_sipp(&env, 2, "8", "uac8");
    let room8 = wait_room(&server, "8");
    let p2 = wait_participant(&server, &room8, env.ports.peer_sip(2));
    let (c7, c8) = (s(&room7["confid"]), s(&room8["confid"]));

    // -- conferences: fields, get, list options
    let keys: Vec<&String> = room7.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["confid", "confnumber", "confroomnum", "confuri", "site", "startts"], "conference fields");
    assert!(c7.contains(s(&room7["confnumber"])), "confnumber is inside confid: {room7}");
    assert_eq!(s(&room7["confuri"]), "<sip:conf-7@switchboard.test>");
    assert_eq!(ok(server.get(&format!("{BASE}/{c7}")), "get"), room7);
    assert_eq!(ok(server.get(&format!("{BASE}/{c7}?mask=confid,startts")), "get+mask"), json!({"confid": c7, "startts": room7["startts"]}));
    assert_eq!(ok(server.get(&format!("{BASE}/{c7}?flat=true")), "get+flat"), room7);
    let confids = |q: &str| -> Vec<String> {
        ok(server.get(&format!("{BASE}{q}")), q).as_array().unwrap().iter().map(|r| s(&r["confid"]).to_string()).collect()
    };
    assert_eq!(confids(""), [c7, c8], "oldest first");
    assert_eq!(confids("?order=-confroomnum"), [c8, c7]);
    assert_eq!(confids("?order=-startts"), [c8, c7]);
    assert_eq!(confids(&format!("?filter={}", enc(r#"{"confroomnum":8}"#))), [c8]);
    assert_eq!(confids(&format!("?filter={}", enc(r#"{"confroomnum":["7","8"]}"#))), [c7, c8]);
    assert_eq!(confids(&format!("?filter={}", enc(r#"{"site":"elsewhere"}"#))), Vec::<String>::new());
    assert_eq!(confids("?offset=1&limit=1"), [c8]);
    assert_eq!(confids("?limit=1"), [c7]);
    assert_eq!(ok(server.get(&format!("{BASE}?countonly=1")), "countonly"), json!({"count": 2}));
    assert_eq!(
        ok(server.get(&format!("{BASE}?mask=confroomnum&order=confroomnum&flat")), "mask"),
        json!([{"confroomnum": "7"}, {"confroomnum": "8"}])
    );

    // -- participants: join order, fields, options
    let parts = ok(server.get(&format!("{BASE}/{c7}/participants")), "participants");
    let ids: Vec<&str> = parts.as_array().unwrap().iter().map(|p| s(&p["participantid"])).collect();
    assert_eq!(ids, [s(&p0["participantid"]), s(&p1["participantid"])], "join order");
    let first_keys: Vec<&String> = parts[0].as_object().unwrap().keys().take(7).collect();
    assert_eq!(first_keys, ["participantid", "state", "callid", "luri", "ltag", "ruri", "rtag"], "reference fields first");
    for p in parts.as_array().unwrap() {
        assert_eq!(p["state"], "active", "{p}");
        assert_eq!(p["direction"], "inbound", "{p}");
        assert!(p["talking"].is_boolean() && p["muted"] == false && p["deaf"] == false, "{p}");
    }
    let pq = |q: &str| ok(server.get(&format!("{BASE}/{c7}/participants{q}")), q);
    assert_eq!(pq("?order=-joined_ms&mask=participantid"), json!([{"participantid": p1["participantid"]}, {"participantid": p0["participantid"]}]));
    assert_eq!(pq("?countonly=true"), json!({"count": 2}));
    assert_eq!(pq(&format!("?filter={}&countonly=true", enc(r#"{"state":"ended"}"#))), json!({"count": 0}));
    assert_eq!(pq(&format!("?filter={}&mask=callid", enc(&json!({"callid": p1["callid"]}).to_string()))), json!([{"callid": p1["callid"]}]));
    assert_eq!(pq("?offset=1&limit=5&mask=participantid"), json!([{"participantid": p1["participantid"]}]));
    let pid0 = s(&p0["participantid"]);
    assert_eq!(ok(server.get(&format!("{BASE}/{c7}/participants/{pid0}")), "participant")["callid"], p0["callid"]);
    assert_eq!(
        ok(server.get(&format!("{BASE}/{c7}/participants/{pid0}?mask=state,deaf")), "participant+mask"),
        json!({"state": "active", "deaf": false})
    );
    let resp = server.get(&format!("{BASE}/{c7}/participants/no-such-participant"));
    assert_eq!((resp.status, resp.json()), (404, json!({"error_code": 1404, "error_message": "Call/Participant not found"})));

    // -- LOOKUP by each key, with the custom verb and with POST .../lookup
    let sipp_uri = |slot: u16| format!("<sip:sipp@127.0.0.1:{}>", env.ports.peer_sip(slot));
    let cases = [
        (json!({"dialogid": p2["dialogid"]}), vec![c8]),
        (json!({"inviteid": p1["inviteid"]}), vec![c7]),
        (json!({"callid": p2["callid"]}), vec![c8]),
        (json!({"uri": sipp_uri(1)}), vec![c7]),
        (json!({"from": "sipp", "mode": "sipuser"}), vec![c7, c8]),
        (json!({"sipuserlogin": "sipp"}), vec![c7, c8]),
        (json!({"sipuserid": "sipp"}), vec![c7, c8]),
        (json!({"userid": "sipp"}), vec![c7, c8]),
        (json!({"confid": c8}), vec![c8]),
        (json!({"confuri": "<sip:conf-8@switchboard.test>"}), vec![c8]),
        (json!({"confroomnum": 7}), vec![c7]),
        (json!({"confnumber": room8["confnumber"]}), vec![c8]),
        // priority: callid outranks confroomnum
        (json!({"confroomnum": "7", "callid": p2["callid"]}), vec![c8]),
    ];
    for (body, want) in &cases {
        for (method, path) in [("LOOKUP", BASE.to_string()), ("POST", format!("{BASE}/lookup"))] {
            let resp = server.request(method, &path, Some(&body.to_string()));
            assert_eq!(resp.status, 200, "{method} {body}: {resp:?}");
            assert_eq!(resp.json(), json!(want), "{method} {body}");
        }
    }
    let resp = server.request("LOOKUP", BASE, Some(r#"{"from":"2999","mode":"number"}"#));
    assert_eq!((resp.status, resp.json()), (404, json!({"error_code": 1404, "error_message": "Conference not found"})));

    // -- "from a script": a lookup expression instead of the confid
    let by_callid = format!("{BASE}/callid={}", enc(s(&p2["callid"])));
    assert_eq!(ok(server.get(&by_callid), "script get")["confid"], c8);
    assert_eq!(ok(server.get(&format!("{by_callid}/participants?mask=participantid")), "script list"), json!([{"participantid": p2["participantid"]}]));
    assert_eq!(ok(server.get(&format!("{BASE}/confroomnum=7/topology")), "script topology"), json!([{"from": "*", "to": "*", "enabled": true}]));
    assert_eq!(ok(server.get(&format!("{BASE}/from=sipp&mode=sipuser")), "first match wins")["confid"], c7);

    // -- (ours) mute and deaf
    let pid1 = s(&p1["participantid"]);
    let patched = ok(server.request("PATCH", &format!("{BASE}/{c7}/participants/{pid1}"), Some(r#"{"muted":true}"#)), "mute");
    assert_eq!((&patched["muted"], &patched["deaf"]), (&json!(true), &json!(false)), "{patched}");
    let patched = ok(server.request("PATCH", &format!("{BASE}/{c7}/participants/{pid1}"), Some(r#"{"muted":false,"deaf":true}"#)), "deaf");
    assert_eq!((&patched["muted"], &patched["deaf"]), (&json!(false), &json!(true)), "{patched}");
    let got = ok(server.get(&format!("{BASE}/{c7}/participants/{pid1}?mask=muted,deaf")), "after patch");
    assert_eq!(got, json!({"muted": false, "deaf": true}));
    let resp = server.request("PATCH", &format!("{BASE}/{c7}/participants/nobody"), Some(r#"{"muted":true}"#));
    assert_eq!((resp.status, resp.json()["error_message"].clone()), (404, json!("Call/Participant not found")));

    // -- kick: SIPp sees BYE; the participant is then listed only as ended
    let resp = server.delete(&format!("{BASE}/{c7}/participants/{pid1}"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c7, "participantid": pid1})));
    let run = uac1.wait();
    run.assert_ok();
    assert_eq!(run.received("BYE ").len(), 1, "kicked caller got no BYE\n{}", run.report());
    let ended = poll(Duration::from_secs(5), "kicked participant ended", || {
        let l = ok(server.get(&format!("{BASE}/{c7}/participants?filter={}", enc(r#"{"state":"ended"}"#))), "ended");
        (l.as_array().unwrap().len() == 1).then_some(l)
    });
    assert_eq!(ended[0]["participantid"], pid1);
    assert!(ended[0]["ended_ms"].is_u64(), "{ended}");
    assert_eq!(pq("?mask=participantid"), json!([{"participantid": pid0}]), "default list hides ended");
    assert_eq!(ok(server.get(&format!("{BASE}/{c7}/participants/{pid1}")), "ended participant")["state"], "ended");
    let resp = server.request("LOOKUP", BASE, Some(&json!({"callid": p1["callid"]}).to_string()));
    assert_eq!(resp.status, 404, "ended legs are not looked up: {resp:?}");

    // -- end: by confid, and by a lookup expression; every caller sees BYE
    let resp = server.delete(&format!("{BASE}/{c7}"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c7})));
    let resp = server.delete(&format!("{BASE}/confroomnum=8"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c8})));
    for uac in [uac0, uac2] {
        let run = uac.wait();
        run.assert_ok();
        assert_eq!(run.received("BYE ").len(), 1, "{}", run.report());
    }
    poll(Duration::from_secs(5), "rooms gone", || {
        (server.get(&format!("{BASE}/{c7}")).status == 404 && ok(server.get(BASE), "list") == json!([])).then_some(())
    });
}

#[test]
fn dial_out_to_sipp_uas_then_kick() {
    let env = TestEnv::new("conf_api_dial_out_kick");
    let server = start(&env, &[]);
    let uac = join_with_sipp(&env, 0, "5", "uac");
    let room = wait_room(&server, "5");
    let c = s(&room["confid"]).to_string();
    let (uas, uas_uri) = spawn_uas(&env, 1, "uas_answer.xml", "uas");

    let dial = |key: &str, to: &str| {
        let body = json!({ "to": to }).to_string();
        let req = format!(
            "POST {BASE}/{c}/participants HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
             Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw_http(&server, &req)
    };
    let first = dial("dial-1", &uas_uri);
    assert_eq!(first.status, 200, "{first:?}");
    let reply = first.json();
    let pid = s(&reply["participantid"]).to_string();
    assert_eq!(reply["confid"], c.as_str());

    // read-your-writes: visible at once to get, list and lookup
    let p = ok(server.get(&format!("{BASE}/{c}/participants/{pid}")), "new participant");
    assert_eq!(p["direction"], "outbound", "{p}");
    assert!(["calling", "ringing", "active"].contains(&s(&p["state"])), "{p}");
    assert_eq!(p["ruri"].as_str().map(|r| r.contains(&format!("127.0.0.1:{}", env.ports.peer_sip(1)))), Some(true), "{p}");
    let listed = ok(server.get(&format!("{BASE}/{c}/participants?mask=participantid")), "list");
    assert!(listed.as_array().unwrap().contains(&json!({"participantid": pid})), "{listed}");
    let found = server.request("LOOKUP", BASE, Some(&json!({"callid": p["callid"]}).to_string()));
    assert_eq!((found.status, found.json()), (200, json!([c])), "lookup by the dial-out's callid");

    // the same Idempotency-Key replays the answer; with another body it is refused
    let again = dial("dial-1", &uas_uri);
    assert_eq!((again.status, again.json()), (200, reply.clone()), "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), Some("true"), "{again:?}");
    let other = dial("dial-1", "sip:someone-else@127.0.0.1:9");
    assert_eq!((other.status, other.json()["error_code"].clone()), (409, json!(1409)), "{other:?}");

    // progress shows in state
    poll(Duration::from_secs(10), "dial-out answered", || {
        (ok(server.get(&format!("{BASE}/{c}/participants/{pid}")), "poll")["state"] == "active").then_some(())
    });

    // kick: the UAS gets BYE
    let resp = server.delete(&format!("{BASE}/{c}/participants/{pid}"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c, "participantid": pid})));
    let run = uas.wait();
    run.assert_ok();
    let invites = run.received("INVITE ");
    assert_eq!(invites.len(), 1, "the retried dial-out must not place a second call\n{}", run.report());
    assert!(invites[0].header("From").unwrap_or("").contains("conf-5@"), "the room calls: {:?}", invites[0].header("From"));
    assert_eq!(run.received("BYE ").len(), 1, "{}", run.report());
    poll(Duration::from_secs(5), "kicked dial-out ended", || {
        (ok(server.get(&format!("{BASE}/{c}/participants/{pid}")), "poll")["state"] == "ended").then_some(())
    });
    let outbound = ok(
        server.get(&format!("{BASE}/{c}/participants?filter={}&countonly", enc(r#"{"direction":"outbound","state":["calling","ringing","active","held","ended"]}"#))),
        "outbound count",
    );
    assert_eq!(outbound, json!({"count": 1}), "one dial-out only");

    assert_eq!(server.delete(&format!("{BASE}/{c}")).status, 200);
    uac.wait().assert_ok();
}

#[test]
fn end_conference_cancels_ringing_dial_out_and_byes_pjsua_clients() {
    let env = TestEnv::new("conf_api_end_cancel_bye");
    let _media = env.media_lock();
    env.make_tones();
    let server = start(&env, &[]);
    let callers: Vec<PjPeer> = [(0u16, "2001"), (1, "2002")]
        .into_iter()
        .map(|(i, user)| join_with_pjsua(&env, &server, i, user, "6", &format!("pj{user}"), &[]))
        .collect();
    let room = wait_room(&server, "6");
    let c = s(&room["confid"]).to_string();
    poll(Duration::from_secs(15), "both pjsua2 callers active", || {
        let l = ok(server.get(&format!("{BASE}/{c}/participants?filter={}&countonly", enc(r#"{"state":"active"}"#))), "count");
        (l["count"] == 2).then_some(())
    });
    // numbers as SIP users: from+mode=number finds the room
    let found = server.request("LOOKUP", BASE, Some(r#"{"from":"2001","mode":"number"}"#));
    assert_eq!((found.status, found.json()), (200, json!([c])));

    let (uas, uas_uri) = spawn_uas(&env, 2, "uas_ring_cancel.xml", "uas_ring");
    let reply = ok(server.post(&format!("{BASE}/{c}/participants"), &json!({"to": uas_uri})), "dial-out");
    let pid = s(&reply["participantid"]).to_string();
    poll(Duration::from_secs(5), "dial-out ringing", || {
        (ok(server.get(&format!("{BASE}/{c}/participants/{pid}")), "poll")["state"] == "ringing").then_some(())
    });

    let resp = server.delete(&format!("{BASE}/{c}"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c})));

    let run = uas.wait();
    run.assert_ok();
    assert_eq!(run.received("CANCEL ").len(), 1, "ringing dial-out got no CANCEL\n{}", run.report());
    for peer in callers {
        let run = peer.wait();
        let result = run.result.clone().unwrap_or_else(|| panic!("pj_peer printed no RESULT: {}", run.stderr));
        let events = &result["events"];
        assert!(events.get("state_CONFIRMED").is_some(), "caller never connected: {result}");
        assert!(events.get("hangup_sent").is_none(), "caller hung up itself; the server should have: {result}");
        assert!(events.as_object().unwrap().keys().any(|k| k.starts_with("state_DISCONN")), "caller not disconnected: {result}");
        let log = std::fs::read_to_string(&run.log_file).unwrap_or_default();
        assert!(log.lines().any(|l| l.contains("Request msg BYE") && l.contains("RX")), "no BYE in {}", run.log_file.display());
    }
    poll(Duration::from_secs(5), "room gone", || (server.get(&format!("{BASE}/{c}")).status == 404).then_some(()));
}

#[test]
fn topology_change_heard_by_ear() {
    let env = TestEnv::new("conf_api_topology_by_ear");
    let _media = env.media_lock();
    env.make_tones();
    let server = start(&env, &[]);
    // A: SIPp streaming 440 Hz; B: pjsua2 listening; C: pjsua2 playing 1000 Hz and listening
    let a = join_with_sipp(&env, 0, "4", "a440");
    let room = wait_room(&server, "4");
    let c = s(&room["confid"]).to_string();
    let pa = wait_participant(&server, &room, env.ports.peer_sip(0));
    let b_wav = env.path("b_rx.wav");
    let c_wav = env.path("c_rx.wav");
    let b = join_with_pjsua(&env, &server, 0, "bob", "4", "b", &["--record".into(), b_wav.display().to_string(), "--duration".into(), "10".into()]);
    let cc = join_with_pjsua(
        &env,
        &server,
        1,
        "carol",
        "4",
        "c",
        &[
            "--record".into(),
            c_wav.display().to_string(),
            "--play".into(),
            env.path("tone1000.wav").display().to_string(),
            "--loop".into(),
            "--duration".into(),
            "10".into(),
        ],
    );
    let pb = wait_user(&server, &c, "bob");
    let pc = wait_user(&server, &c, "carol");
    // Recordings start as media does, within a few ms of joined_ms: time t of the call
    // is t - joined in a recording.
    let (jb, jc) = (pb["joined_ms"].as_u64().unwrap() as f64 / 1000.0, pc["joined_ms"].as_u64().unwrap() as f64 / 1000.0);
    let all_in = jb.max(jc);

    // B hears everyone for 2.5 s, then the rule: B no longer hears A
    std::thread::sleep(Duration::from_secs_f64((all_in + 2.5 - epoch_s()).max(0.0)));
    let rule = json!([{"from": pa["participantid"], "to": pb["participantid"], "enabled": false}]);
    let applied_at = epoch_s();
    let after = ok(server.post(&format!("{BASE}/{c}/topology"), &rule), "topology change");
    assert_eq!(after[0], json!({"from": "*", "to": "*", "enabled": true}), "fixed first rule: {after}");
    assert!(after.as_array().unwrap().contains(&rule[0]), "rule not in topology: {after}");
    assert_eq!(ok(server.get(&format!("{BASE}/{c}/topology")), "topology"), after);
    // a rule naming someone not in the room changes nothing
    let bad = server.post(&format!("{BASE}/{c}/topology"), &json!([{"from": "ghost", "to": "*", "enabled": false}]));
    assert_eq!((bad.status, bad.json()), (404, json!({"error_code": 1404, "error_message": "Call/Participant not found"})), "{bad:?}");
    assert_eq!(ok(server.get(&format!("{BASE}/{c}/topology")), "topology"), after);
    // the talking flag follows A's tone
    poll(Duration::from_secs(3), "A talking", || {
        (ok(server.get(&format!("{BASE}/{c}/participants/{}", s(&pa["participantid"]))), "poll")["talking"] == true).then_some(())
    });

    b.wait().assert_ok();
    cc.wait().assert_ok();
    drop(a);

    // B heard A (440) and C (1000) continuously before the rule, only C after it; C heard
    // A throughout and never itself. (A is SIPp: its rtp_stream paces in bursts, which the
    // server's jitter buffer must smooth out.)
    let (t0, t1) = (all_in + 0.8, applied_at - 0.1);
    tone_check(&b_wav).window(t0 - jb, Some(t1 - jb)).expect(&[440, 1000]).assert("B before the rule hears A and C");
    let (t0, t1) = (applied_at + 0.5, applied_at + 4.5);
    tone_check(&b_wav).window(t0 - jb, Some(t1 - jb)).expect(&[1000]).absent(&[440]).assert("B after the rule hears C but not A");
    tone_check(&c_wav).window(t0 - jc, Some(t1 - jc)).expect(&[440]).absent(&[1000]).assert("C still hears A, and not itself");
}

#[test]
fn numbers_go_to_the_configured_gateway() {
    let env = TestEnv::new("conf_api_gateway");
    let gw_port = env.ports.peer_sip(1);
    // a bad gateway stops start-up with the configuration exit code
    let bad = run_cli(&env, "bad_gateway", &["serve", "--gateway", "not a uri", "--http-listen", "127.0.0.1:1"], Duration::from_secs(10));
    assert_eq!(bad.status.and_then(|s| s.code()), Some(2), "bad gateway: {}", bad.stderr);
    assert!(bad.stderr.contains("routing gateway"), "{}", bad.stderr);

    let config = env.path("switchboard.toml");
    std::fs::write(&config, format!("[routing]\ngateway = \"sip:127.0.0.1:{gw_port}\"\n")).unwrap();
    let server = start(&env, &["--config".into(), config.display().to_string()]);
    let uac = join_with_sipp(&env, 0, "3", "uac");
    let room = wait_room(&server, "3");
    let c = s(&room["confid"]).to_string();
    let (uas, _) = spawn_uas(&env, 1, "uas_answer.xml", "gateway");

    let reply = ok(server.post(&format!("{BASE}/{c}/participants"), &json!({"to": "2216"})), "dial a number");
    let pid = s(&reply["participantid"]).to_string();
    poll(Duration::from_secs(10), "number answered", || {
        (ok(server.get(&format!("{BASE}/{c}/participants/{pid}")), "poll")["state"] == "active").then_some(())
    });
    assert_eq!(server.delete(&format!("{BASE}/{c}")).status, 200);
    let run = uas.wait();
    run.assert_ok();
    let invite = run.received("INVITE ");
    assert_eq!(invite.len(), 1, "{}", run.report());
    assert!(invite[0].first_line().starts_with(&format!("INVITE sip:2216@127.0.0.1:{gw_port}")), "{}", invite[0].first_line());
    assert_eq!(run.received("BYE ").len(), 1, "ending the room hangs up the gateway call\n{}", run.report());
    uac.wait().assert_ok();
}

// ---------------------------------------------------------------------------------------
// Helpers

fn start(env: &TestEnv, extra: &[String]) -> Server {
    Server::start_with(env, ServerOptions { api_token: Some(TOKEN.into()), extra_args: extra.to_vec(), ..Default::default() })
}

/// A SIPp caller (uac_wait_bye: streams 440 Hz until the server's BYE) in room `room`.
fn join_with_sipp(env: &TestEnv, slot: u16, room: &str, label: &str) -> SippChild {
    let server_sip = std::net::SocketAddr::from((LOCALHOST, env.ports.sip()));
    Sipp::new(env, "uac_wait_bye.xml", label).remote(server_sip).slot(slot).service(&format!("conf-{room}")).timeout_s(60).spawn()
}

/// A pjsua2 caller as `user` in room `room` for up to 30 s of media.
fn join_with_pjsua(env: &TestEnv, server: &Server, i: u16, user: &str, room: &str, label: &str, extra: &[String]) -> PjPeer {
    let mut args: Vec<String> = vec![
        "call".into(),
        format!("sip:conf-{room}@{}", server.sip),
        "--user".into(),
        user.into(),
        "--sip-port".into(),
        env.ports.peer_sip(3 + i).to_string(),
        "--rtp-port".into(),
        env.ports.pj_rtp(i).to_string(),
        "--rtp-range".into(),
        "10".into(),
        "--duration".into(),
        "30".into(),
        "--max-time".into(),
        "40".into(),
    ];
    args.extend_from_slice(extra); // a later --duration wins in argparse
    let mut peer = PjPeer::spawn(env, label, &args);
    peer.wait_ready(Duration::from_secs(15));
    peer
}

/// A SIPp UAS on `slot`, listening; returns it and its URI.
fn spawn_uas(env: &TestEnv, slot: u16, scenario: &str, label: &str) -> (SippChild, String) {
    let sipp = Sipp::new(env, scenario, label).slot(slot).timeout_s(60);
    let port = sipp.local_port();
    let child = sipp.spawn();
    wait_udp_bound(port, Duration::from_secs(5));
    (child, format!("sip:uas@127.0.0.1:{port}"))
}

/// Polls the list until room `n` exists.
fn wait_room(server: &Server, n: &str) -> serde_json::Value {
    poll(Duration::from_secs(10), &format!("room {n}"), || {
        let l = ok(server.get(&format!("{BASE}?filter={}", enc(&json!({ "confroomnum": n }).to_string()))), "rooms");
        l.as_array().unwrap().first().cloned()
    })
}

/// Polls until the caller on SIP port `port` is an active participant of `room`.
fn wait_participant(server: &Server, room: &Value, port: u16) -> Value {
    let c = s(&room["confid"]).to_string();
    poll(Duration::from_secs(10), &format!("participant on port {port}"), || {
        let l = ok(server.get(&format!("{BASE}/{c}/participants")), "participants");
        l.as_array().unwrap().iter().find(|p| p["state"] == "active" && s(&p["ruri"]).contains(&format!(":{port}"))).cloned()
    })
}

/// Polls until user `user` is an active participant of `confid`.
fn wait_user(server: &Server, confid: &str, user: &str) -> Value {
    poll(Duration::from_secs(15), &format!("participant {user}"), || {
        let l = ok(server.get(&format!("{BASE}/{confid}/participants")), "participants");
        l.as_array().unwrap().iter().find(|p| p["state"] == "active" && s(&p["ruri"]).contains(&format!("{user}@"))).cloned()
    })
}

/// The JSON body of a 200, or a failed test saying what was asked.
fn ok(resp: HttpResponse, what: &str) -> Value {
    assert_eq!(resp.status, 200, "{what}: {resp:?}");
    resp.json()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends a hand-written HTTP/1.1 request (for headers the support client does not set).
fn raw_http(server: &Server, request: &str) -> HttpResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.http).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    HttpResponse { status, headers, body: body.to_string(), bytes: body.as_bytes().to_vec() }
}

