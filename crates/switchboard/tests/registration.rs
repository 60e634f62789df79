//! Phone registration and SIP authentication against real peers: pjsua2 and SIPp
//! register with digest (MD5 and SHA-256, both challenge orders), wrong passwords are
//! locked out, bindings survive a restart, a replayed nonce-count is refused, and
//! sipvicious (svcrack, svwar) neither cracks a password nor learns which extensions
//! exist. Users are made with the store in the test's data dir before the server
//! starts.
//!
//! Bindings are read back over SIP itself: an authenticated REGISTER without Contact
//! is a query (RFC 3261 §10.2.3) whose 200 lists every current contact, sent by the
//! small raw-UDP client below (which also builds the replay the server must refuse).

mod support;

use sip::digest::{ha1, response_qop_auth, Algorithm};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const DOMAIN: &str = "alpha.test";
const PASSWORD: &str = "correct-horse-7";

/// A domain with user `alice` (extension 3044) and `bob` (3045), both with
/// [`PASSWORD`], written with the store into the test's data dir before the server
/// starts (the server loads the directory at start-up).
pub fn directory(env: &TestEnv, domain: &str) {
    let data = env.path("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = store::Store::open(&data).await.expect("open store");
        db.add_domain(domain, None).await.expect("add domain");
        for (login, ext) in [("alice", "3044"), ("bob", "3045")] {
            let user = store::NewUser { domain: domain.into(), login: login.into(), ext: Some(ext.into()), password: PASSWORD.into(), ..Default::default() };
            db.add_user(&user).await.expect("add user");
        }
        db.close().await;
    });
}

fn start(env: &TestEnv, extra: &[&str]) -> Server {
    Server::start_with(
        env,
        ServerOptions { t1_ms: Some(100), extra_args: extra.iter().map(|s| s.to_string()).collect(), ..Default::default() },
    )
}

fn server_config(env: &TestEnv, toml: &str) -> String {
    let path = env.path("switchboard.toml");
    std::fs::write(&path, toml).expect("write config");
    path.display().to_string()
}

// ---- a raw SIP client for REGISTER ---------------------------------------------------

/// Just enough of a UA to register by hand: one socket, digest by hand.
struct RawUa {
    sock: UdpSocket,
    server: SocketAddr,
    call_id: String,
    cseq: u32,
    user: String,
    domain: String,
}

struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn headers(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
            .collect()
    }
}

fn param(challenge: &str, name: &str) -> String {
    let at = challenge.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {challenge}")) + name.len() + 1;
    let rest = &challenge[at..];
    match rest.strip_prefix('"') {
        Some(r) => r[..r.find('"').expect("closing quote")].to_owned(),
        None => rest.split([',', ' ']).next().unwrap_or_default().to_owned(),
    }
}

impl RawUa {
    fn new(server: SocketAddr, port: u16, user: &str) -> RawUa {
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind raw UA");
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        RawUa { sock, server, call_id: format!("raw-{port}-{}", std::process::id()), cseq: 0, user: user.into(), domain: DOMAIN.into() }
    }

    fn in_domain(mut self, domain: &str) -> RawUa {
        self.domain = domain.into();
        self
    }

    /// Sends one REGISTER (`contact` None = a query) and returns the final response.
    fn send(&mut self, contact: Option<&str>, authorization: Option<&str>, user_agent: &str) -> Reply {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let contact = contact.map(|c| format!("Contact: {c}\r\n")).unwrap_or_default();
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let msg = format!(
            "REGISTER sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKraw{n}x{cid}\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{d}>;tag=raw{n}\r\nTo: <sip:{u}@{d}>\r\nCall-ID: {cid}\r\nCSeq: {n} REGISTER\r\n{contact}{auth}User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n",
            n = self.cseq,
            cid = self.call_id,
            u = self.user,
            d = self.domain,
        );
        self.sock.send_to(msg.as_bytes(), self.server).expect("send");
        let mut buf = [0u8; 8192];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("no answer to REGISTER: {e}"));
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if status >= 200 {
                return Reply { status, text };
            }
        }
    }

    /// The Authorization answering `challenge` with this nonce-count.
    fn authorization(&self, challenge: &str, password: &str, nc: u32) -> String {
        let alg = Algorithm::from_token(&param(challenge, "algorithm")).expect("known algorithm");
        let (realm, nonce) = (param(challenge, "realm"), param(challenge, "nonce"));
        let nc = format!("{nc:08x}");
        let uri = format!("sip:{}", self.domain);
        let h = ha1(alg, &self.user, &realm, password);
        let response = response_qop_auth(alg, &h, &nonce, &nc, "0a4f113b", "REGISTER", &uri);
        format!(r#"Digest username="{}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", algorithm={alg}, qop=auth, nc={nc}, cnonce="0a4f113b""#, self.user)
    }

    /// Challenge, answer: the final response and the Authorization that got it.
    fn register(&mut self, contact: Option<&str>, password: &str) -> (Reply, String) {
        let first = self.send(contact, None, "raw-ua");
        assert_eq!(first.status, 401, "expected a challenge:\n{}", first.text);
        let challenge = first.headers("WWW-Authenticate").remove(0);
        let auth = self.authorization(&challenge, password, 1);
        (self.send(contact, Some(&auth), "raw-ua"), auth)
    }

    /// The contacts currently registered for this user (an authenticated query).
    fn contacts(&mut self) -> Vec<String> {
        let (reply, _) = self.register(None, PASSWORD);
        assert_eq!(reply.status, 200, "binding query refused:\n{}", reply.text);
        reply.headers("Contact").into_iter().chain(reply.headers("m")).collect()
    }
}

fn pj_register_args(env: &TestEnv, server: &Server, slot: u16, user: &str, password: &str) -> Vec<String> {
    vec![
        "register".into(),
        // Outbound-proxy form: the Request-URI names the domain, a Route carries us.
        "--registrar".into(),
        format!("sip:{DOMAIN}"),
        "--proxy".into(),
        format!("sip:{};lr", server.sip),
        "--domain".into(),
        DOMAIN.into(),
        "--user".into(),
        user.into(),
        "--password".into(),
        password.into(),
        "--sip-port".into(),
        env.ports.peer_sip(slot).to_string(),
    ]
}

fn log_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).unwrap_or_default().contains(needle)
}

// ---- pjsua2 ---------------------------------------------------------------------------

#[test]
fn pjsua2_registers_and_a_second_device_is_listed_too() {
    let env = TestEnv::new("reg_pjsua2_two_devices");
    directory(&env, DOMAIN);
    let server = start(&env, &[]);
    let mut one = pj_register_args(&env, &server, 0, "alice", PASSWORD);
    one.extend(["--hold".into(), "20".into()]);
    let mut first = PjPeer::spawn(&env, "alice1", &one);
    first.wait_ready(Duration::from_secs(10));
    // The second device registers by extension, with the same password.
    let mut two = pj_register_args(&env, &server, 1, "3044", PASSWORD);
    two.extend(["--hold".into(), "20".into()]);
    let mut second = PjPeer::spawn(&env, "alice2", &two);
    second.wait_ready(Duration::from_secs(10));

    let mut q = RawUa::new(server.sip, env.ports.peer_sip(5), "alice");
    let contacts = poll(Duration::from_secs(15), "both pjsua2 contacts registered", || {
        let c = q.contacts();
        (c.len() == 2).then_some(c)
    });
    for slot in [0, 1] {
        let port = env.ports.peer_sip(slot);
        assert!(contacts.iter().any(|c| c.contains(&format!("127.0.0.1:{port}"))), "no contact on port {port}: {contacts:?}");
    }
    assert!(contacts.iter().all(|c| c.contains("expires=")), "{contacts:?}");
    // The admin API lists the same two bindings of alice, with where each came from.
    let regs = server.get("/v1/registrations");
    assert_eq!(regs.status, 200, "{}", regs.body);
    let regs = regs.json();
    let alice: Vec<&Value> = regs.as_array().expect("a list").iter().filter(|r| r["login"] == "alice").collect();
    assert_eq!(alice.len(), 2, "{regs}");
    for slot in [0, 1] {
        let port = env.ports.peer_sip(slot);
        assert!(alice.iter().any(|r| r["source"] == format!("127.0.0.1:{port}").as_str() && r["transport"] == "udp"), "{regs}");
    }
    drop((first, second));
}

#[test]
fn pjsua2_wrong_password_gets_401_then_403_once_locked_out() {
    let env = TestEnv::new("reg_pjsua2_lockout");
    directory(&env, DOMAIN);
    let server = start(&env, &[]);
    let mut args = pj_register_args(&env, &server, 0, "alice", "not-the-password");
    args.extend(["--attempts".into(), "6".into()]);
    let run = pj_peer(&env, "wrong", &args);
    let codes = run.result.as_ref().map(|r| r["codes"].to_string()).unwrap_or_default();
    assert!(codes.contains("403") && !codes.contains("200"), "pjsua2 ends refused: {codes}\n{}", run.stdout);
    // On the wire: pjsua2 answers each fresh challenge again, and each wrong answer
    // gets a 401 until the fifth failure, which gets the 403.
    let wire = std::fs::read_to_string(&run.log_file).unwrap_or_default();
    let finals: Vec<&str> = wire.lines().filter(|l| l.starts_with("SIP/2.0 401") || l.starts_with("SIP/2.0 403")).collect();
    let first_403 = finals.iter().position(|l| l.starts_with("SIP/2.0 403")).expect("a 403 on the wire");
    assert_eq!(first_403, 5, "the challenge and four wrong answers get 401, the fifth 403: {finals:?}");
    assert!(log_contains(&server.log, "username locked out"), "the lock-out is logged");
    // While locked, even the right password is refused.
    let right = pj_peer(&env, "right_while_locked", &pj_register_args(&env, &server, 1, "alice", PASSWORD));
    let codes = right.result.as_ref().map(|r| r["codes"].to_string()).unwrap_or_default();
    assert!(codes.contains("403") && !codes.contains("200"), "{codes}");
}

#[test]
fn binding_survives_a_server_restart() {
    let env = TestEnv::new("reg_restart");
    directory(&env, DOMAIN);
    let mut server = start(&env, &[]);
    // pjsua2 registers for 300 s and stays up (it refreshes only near the end, so after
    // the restart the binding can only have come from the store).
    let mut args = pj_register_args(&env, &server, 0, "bob", PASSWORD);
    args.extend(["--hold".into(), "40".into()]);
    let mut phone = PjPeer::spawn(&env, "bob", &args);
    phone.wait_ready(Duration::from_secs(10));
    let port = env.ports.peer_sip(0);
    let mut q = RawUa::new(server.sip, env.ports.peer_sip(5), "bob");
    poll(Duration::from_secs(10), "bob registered", || q.contacts().iter().any(|c| c.contains(&format!("127.0.0.1:{port}"))).then_some(()));
    drop(q);
    // A graceful stop drains the store's writer: the binding is on disk after it.
    assert!(server.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    let server = start(&env, &[]);
    let contacts = RawUa::new(server.sip, env.ports.peer_sip(6), "bob").contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(contacts[0].contains(&format!("127.0.0.1:{port}")), "{contacts:?}");
    drop(phone);
}

// ---- digest algorithms and their order ------------------------------------------------

#[test]
fn sipp_registers_with_md5_when_md5_is_challenged_first() {
    let env = TestEnv::new("reg_sipp_md5_first");
    directory(&env, DOMAIN);
    let server = start(&env, &[]); // default order: MD5, SHA-256
    let run = Sipp::new(&env, "uac_register.xml", "reg").remote(server.sip).service("alice").arg("-key").arg("domain").arg(DOMAIN).arg("-au").arg("alice").arg("-ap").arg(PASSWORD).run();
    run.assert_ok();
    let challenge = run.received("SIP/2.0 401").remove(0);
    assert!(challenge.header("WWW-Authenticate").is_some_and(|h| h.contains("algorithm=MD5")), "MD5 first");
    let mut q = RawUa::new(server.sip, env.ports.peer_sip(5), "alice");
    assert!(q.contacts().iter().any(|c| c.contains(&format!("127.0.0.1:{}", env.ports.peer_sip(0)))));
}

#[test]
fn pjsua2_registers_with_sha256_when_sha256_is_challenged_first() {
    let env = TestEnv::new("reg_pjsua2_sha256_first");
    directory(&env, DOMAIN);
    let cfg = server_config(&env, "[registrar]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n");
    let server = start(&env, &["--config", &cfg]);
    let run = pj_peer(&env, "sha", &pj_register_args(&env, &server, 0, "alice", PASSWORD));
    run.assert_ok();
    assert!(log_contains(&run.log_file, "algorithm=SHA-256"), "pjsua2 answered the SHA-256 challenge");
    assert!(!log_contains(&run.log_file, "algorithm=MD5,") || log_contains(&run.log_file, "algorithm=SHA-256"));
    // SIPp 3.6.1 reads only the first challenge and speaks only MD5: with SHA-256
    // first it cannot register, which is why MD5 comes first by default.
    let sipp = Sipp::new(&env, "uac_register.xml", "reg").slot(1).remote(server.sip).service("bob").arg("-key").arg("domain").arg(DOMAIN).arg("-au").arg("bob").arg("-ap").arg(PASSWORD).timeout_s(10).run();
    assert!(!sipp.success(), "SIPp should fail on a SHA-256-first challenge:\n{}", sipp.report());
}

#[test]
fn replayed_nonce_count_is_refused() {
    let env = TestEnv::new("reg_nc_replay");
    directory(&env, DOMAIN);
    let server = start(&env, &[]);
    let mut ua = RawUa::new(server.sip, env.ports.peer_sip(0), "alice");
    let contact = format!("<sip:alice@127.0.0.1:{}>", env.ports.peer_sip(0));
    let first = ua.send(Some(&contact), None, "raw-ua");
    let challenge = first.headers("WWW-Authenticate").remove(0);
    let auth1 = ua.authorization(&challenge, PASSWORD, 1);
    assert_eq!(ua.send(Some(&contact), Some(&auth1), "raw-ua").status, 200);
    // The same nonce-count again (a captured request replayed): refused, challenged anew.
    let replay = ua.send(Some(&contact), Some(&auth1), "raw-ua");
    assert_eq!(replay.status, 401, "{}", replay.text);
    assert!(log_contains(&server.log, "replayed nonce-count refused"));
    // The next count on the same nonce is fine.
    let auth2 = ua.authorization(&challenge, PASSWORD, 2);
    assert_eq!(ua.send(Some(&contact), Some(&auth2), "raw-ua").status, 200);
}

#[test]
fn unknown_users_and_domains_are_challenged_like_known_ones() {
    let env = TestEnv::new("reg_no_enumeration");
    directory(&env, DOMAIN);
    let server = start(&env, &[]);
    let strip = |r: &Reply| -> Vec<String> { r.headers("WWW-Authenticate").iter().map(|c| c.replace(&param(c, "nonce"), "N")).collect() };
    let known = RawUa::new(server.sip, env.ports.peer_sip(0), "alice").send(None, None, "raw-ua");
    let unknown = RawUa::new(server.sip, env.ports.peer_sip(1), "9999").send(None, None, "raw-ua");
    assert_eq!((known.status, unknown.status), (401, 401));
    assert_eq!(strip(&known), strip(&unknown));
    // A response for a user that does not exist fails like a wrong password.
    let (r, _) = RawUa::new(server.sip, env.ports.peer_sip(2), "9999").register(None, PASSWORD);
    assert_eq!(r.status, 401);
}

// ---- sipvicious -------------------------------------------------------------------------

fn sipvicious(env: &TestEnv, tool: &str, label: &str, args: &[String]) -> String {
    let out = Command::new(venv_bin(tool))
        .args(args)
        .current_dir(&env.work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e} (pip package sipvicious in the test venv; scripts/install-test-deps)"));
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(env.path(&format!("{label}.out")), &text).ok();
    text
}

#[test]
fn svcrack_is_locked_out_and_never_finds_the_password() {
    let env = TestEnv::new("reg_svcrack");
    // svcrack sends To: <user>@<target address>: the domain must answer to that name.
    directory(&env, "127.0.0.1");
    // Scanner User-Agents are dropped by default, which would stop svcrack before any
    // lock-out matters: clear the list so the lock-out is what stops it.
    let cfg = server_config(&env, "[security]\nscanner_user_agents = []\n");
    let server = start(&env, &["--config", &cfg]);
    let dict = env.path("dict.txt");
    let mut words: Vec<String> = (0..40).map(|i| format!("guess{i}")).collect();
    words.push(PASSWORD.into());
    std::fs::write(&dict, words.join("\n") + "\n").unwrap();
    let args: Vec<String> = vec![
        "-u".into(),
        "3044".into(),
        "-d".into(),
        dict.display().to_string(),
        "-p".into(),
        server.sip.port().to_string(),
        "-P".into(),
        env.ports.peer_sip(0).to_string(),
        "-b".into(),
        "127.0.0.1".into(),
        "--maximumtime".into(),
        "5".into(),
        "127.0.0.1".into(),
    ];
    let out = sipvicious(&env, "sipvicious_svcrack", "svcrack", &args);
    assert!(!out.contains(PASSWORD), "svcrack found the password:\n{out}");
    assert!(log_contains(&server.log, "username locked out"), "svcrack was locked out; its output:\n{out}");
    // The right password is refused for the rest of the lock-out.
    let mut ua = RawUa::new(server.sip, env.ports.peer_sip(1), "3044").in_domain("127.0.0.1");
    let r = ua.send(None, None, "raw-ua");
    let auth = ua.authorization(&r.headers("WWW-Authenticate").remove(0), PASSWORD, 1);
    let r = ua.send(None, Some(&auth), "raw-ua");
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn svwar_learns_no_extension() {
    let env = TestEnv::new("reg_svwar");
    directory(&env, "127.0.0.1");
    let base = |method: &str, port: u16| -> Vec<String> {
        vec![
            "-e".into(),
            "3040-3050".into(),
            "-m".into(),
            method.into(),
            "-p".into(),
            port.to_string(),
            "-b".into(),
            "127.0.0.1".into(),
            "-P".into(),
            "0".into(),
            "--maximumtime".into(),
            "3".into(),
            "127.0.0.1".into(),
        ]
    };
    let reported = |out: &str| ["3044", "3045"].iter().filter(|e| out.lines().any(|l| l.contains('|') && l.contains(*e))).count();
    {
        // Default: its User-Agent gives it away and it hears nothing at all.
        let server = start(&env, &[]);
        let out = sipvicious(&env, "sipvicious_svwar", "svwar_default", &base("REGISTER", server.sip.port()));
        assert_eq!(reported(&out), 0, "svwar listed extensions:\n{out}");
        assert!(out.contains("found nothing"), "{out}");
    }
    // With scanner detection off, every extension looks alike (REGISTER: 401 for all;
    // INVITE: 407 for all, From claims our domain).
    let cfg = server_config(&env, "[security]\nscanner_user_agents = []\n");
    let server = start(&env, &["--config", &cfg]);
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let mut args = base(method, server.sip.port());
        args.insert(0, "--force".into());
        let out = sipvicious(&env, "sipvicious_svwar", &format!("svwar_{method}"), &args);
        let n = reported(&out);
        let all = (3040..=3050).filter(|e| out.lines().any(|l| l.contains('|') && l.contains(&e.to_string()))).count();
        assert!(n == 0 || all == 11, "{method}: svwar told real extensions apart ({n} of 2 real, {all} of 11 listed):\n{out}");
    }
}

// ---- authenticated callers ----------------------------------------------------------------

/// Sends one INVITE (no SDP) from `from` to `to` and returns the final status.
fn raw_invite(server: SocketAddr, port: u16, from: &str, to: &str) -> u16 {
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let msg = format!(
        "INVITE sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKinv{port}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=i{port}\r\nTo: <sip:{to}>\r\nCall-ID: inv-{port}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), server).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the INVITE");
        let text = String::from_utf8_lossy(&buf[..n]);
        let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status >= 200 {
            if status == 407 {
                assert!(text.contains("Proxy-Authenticate: Digest realm=\"alpha.test\""), "{text}");
            }
            return status;
        }
    }
}

#[test]
fn invites_claiming_our_domain_are_challenged_and_extensions_hidden_from_anonymous_callers() {
    let env = TestEnv::new("auth_invite_raw");
    directory(&env, DOMAIN);
    {
        let server = start(&env, &[]);
        let p = |i| env.ports.peer_sip(i);
        // From one of our users (or a name in our domain that is nobody): 407.
        assert_eq!(raw_invite(server.sip, p(0), "alice@alpha.test", "echo@alpha.test"), 407);
        assert_eq!(raw_invite(server.sip, p(1), "nobody@alpha.test", "3044@alpha.test"), 407);
        // Anonymous callers: an existing extension and a missing one look the same.
        assert_eq!(raw_invite(server.sip, p(2), "x@elsewhere.test", "3044@alpha.test"), 404);
        assert_eq!(raw_invite(server.sip, p(3), "x@elsewhere.test", "9999@alpha.test"), 404);
    }
    // A trusted network (a gateway) skips the challenge; its calls may reach users.
    let cfg = server_config(&env, "[security]\ntrusted_networks = [\"127.0.0.0/8\"]\n");
    let server = start(&env, &["--config", &cfg]);
    assert_eq!(raw_invite(server.sip, env.ports.peer_sip(4), "alice@alpha.test", "3044@alpha.test"), 480);
    assert_eq!(raw_invite(server.sip, env.ports.peer_sip(5), "alice@alpha.test", "9999@alpha.test"), 404);
}

#[test]
fn pjsua2_caller_answers_the_407_and_reaches_echo_wrong_password_does_not() {
    let env = TestEnv::new("auth_invite_pjsua2");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env, DOMAIN);
    let server = start(&env, &[]);
    let call = |label: &str, slot: u16, password: &str| {
        pj_peer(
            &env,
            label,
            &[
                "call".to_string(),
                format!("sip:echo@{}", server.sip),
                "--user".into(),
                "alice".into(),
                "--domain".into(),
                DOMAIN.into(),
                "--password".into(),
                password.into(),
                "--sip-port".into(),
                env.ports.peer_sip(slot).to_string(),
                "--rtp-port".into(),
                env.ports.pj_rtp(slot).to_string(),
                "--rtp-range".into(),
                "10".into(),
                "--play".into(),
                env.path("tone440.wav").display().to_string(),
                "--duration".into(),
                "1".into(),
                "--max-time".into(),
                "15".into(),
            ],
        )
    };
    let ok = call("right", 0, PASSWORD);
    ok.assert_ok();
    assert!(log_contains(&ok.log_file, "SIP/2.0 407"), "the INVITE was challenged");
    assert!(log_contains(&server.log, "caller authenticated"));
    let bad = call("wrong", 1, "nope");
    assert!(!matches!(bad.status, Some(s) if s.success()), "a wrong password must not get through: {:?}", bad.result);
    let status = bad.result.as_ref().map(|r| r["final_status"].to_string()).unwrap_or_default();
    assert!(status.contains("407") || status.contains("403"), "{status}");
}
