//! Transaction layer tests on a virtual clock: every timer, what is sent at each
//! instant, and the cross-transaction rules (CANCEL, ACK for 2xx, merging, rport).

use sip::parse::parse_datagram;
use sip::transaction::{Output, TimerConfig, TransactionLayer, TxEvent, TxId};
use sip::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

// --- fixtures ---

fn udp(a: &str) -> Peer {
    Peer {
        addr: a.parse().unwrap(),
        transport: Transport::Udp,
    }
}
fn tcp(a: &str) -> Peer {
    Peer {
        addr: a.parse().unwrap(),
        transport: Transport::Tcp,
    }
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

/// The far end, for server tests; and where client requests go.
const REMOTE: &str = "192.0.2.10:5060";

fn request(method: Method, branch: &str, transport: Transport) -> Request {
    Request {
        method: method.clone(),
        uri: Uri::sip(Some("bob"), "192.0.2.20", None),
        headers: Headers {
            via: vec![Via {
                transport,
                host: "192.0.2.10".into(),
                port: Some(5060),
                params: vec![Param::new("branch", Some(branch))],
            }],
            from: NameAddr::new(Uri::sip(Some("alice"), "example.com", None)).with_tag("a1"),
            to: NameAddr::new(Uri::sip(Some("bob"), "example.com", None)),
            call_id: "call-1@192.0.2.10".into(),
            cseq: CSeq { seq: 1, method },
            max_forwards: Some(70),
            contact: vec![NameAddr::new(Uri::sip(
                Some("alice"),
                "192.0.2.10",
                Some(5060),
            ))],
            route: vec![],
            record_route: vec![],
            content_type: None,
            extra: vec![],
        },
        body: vec![],
    }
}

fn invite(branch: &str) -> Request {
    request(Method::Invite, branch, Transport::Udp)
}

/// What came out of the layer, with sent bytes parsed back.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Sent(Peer, Message),
    Ev(TxEvent),
}

impl Out {
    fn sent(&self) -> Option<&Message> {
        match self {
            Out::Sent(_, m) => Some(m),
            Out::Ev(_) => None,
        }
    }
    fn status(&self) -> Option<u16> {
        match self.sent()? {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        }
    }
    fn method(&self) -> Option<Method> {
        match self.sent()? {
            Message::Request(r) => Some(r.method.clone()),
            Message::Response(_) => None,
        }
    }
}

struct Harness {
    layer: TransactionLayer,
    t0: Instant,
    /// Raw transmissions seen, for identity checks.
    raw: Vec<Arc<[u8]>>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            layer: TransactionLayer::new(TimerConfig::default()),
            t0: Instant::now(),
            raw: Vec::new(),
        }
    }
    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }
    fn drain(&mut self) -> Vec<Out> {
        let mut v = Vec::new();
        while let Some(o) = self.layer.poll_output() {
            v.push(match o {
                Output::Transmit { to, data } => {
                    let msg = parse_datagram(&data).expect("layer sent unparsable bytes");
                    self.raw.push(data);
                    Out::Sent(to, msg)
                }
                Output::Event(e) => Out::Ev(e),
            });
        }
        v
    }
    /// Fires timers up to and including `until`, returning (time since t0, output).
    fn run_until(&mut self, until: Duration) -> Vec<(Duration, Out)> {
        let mut v = Vec::new();
        while let Some(t) = self.layer.poll_timeout() {
            if t > self.at(until) {
                break;
            }
            self.layer.handle_timeout(t);
            for o in self.drain() {
                v.push((t - self.t0, o));
            }
        }
        v
    }
    fn recv(&mut self, d: Duration, msg: impl IntoMessage, from: Peer) -> Vec<Out> {
        self.layer
            .handle_message(self.at(d), msg.into_message(), from);
        self.drain()
    }
    fn send_response(&mut self, d: Duration, tx: TxId, resp: Response) -> Vec<Out> {
        self.layer.send_response(self.at(d), tx, resp);
        self.drain()
    }
    /// Receives a new request and returns its server transaction id.
    fn new_server_tx(&mut self, req: Request, from: Peer) -> (TxId, Vec<Out>) {
        let out = self.recv(Duration::ZERO, Message::Request(req), from);
        let tx = out
            .iter()
            .find_map(|o| match o {
                Out::Ev(TxEvent::Request { tx, .. }) => Some(*tx),
                _ => None,
            })
            .expect("no Request event");
        (tx, out)
    }
}

trait IntoMessage {
    fn into_message(self) -> Message;
}
impl IntoMessage for Request {
    fn into_message(self) -> Message {
        Message::Request(self)
    }
}
impl IntoMessage for Response {
    fn into_message(self) -> Message {
        Message::Response(self)
    }
}
impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

fn resp_of(req: &Request, status: u16, tag: Option<&str>) -> Response {
    req.response(status, tag)
}

fn times(timeline: &[(Duration, Out)], pred: impl Fn(&Out) -> bool) -> Vec<Duration> {
    timeline
        .iter()
        .filter(|(_, o)| pred(o))
        .map(|(t, _)| *t)
        .collect()
}

fn ladder(list: &[f64]) -> Vec<Duration> {
    list.iter().map(|&s| secs(s)).collect()
}

fn is_sent(o: &Out) -> bool {
    o.sent().is_some()
}

// --- client INVITE ---

#[test]
fn client_invite_udp_retransmits_with_timer_a_then_times_out_with_b() {
    let mut h = Harness::new();
    let tx = h
        .layer
        .send_request(h.t0, invite("z9hG4bKci1"), udp(REMOTE));
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0],
        Out::Sent(udp(REMOTE), Message::Request(invite("z9hG4bKci1")))
    );

    let tl = h.run_until(secs(100.0));
    assert_eq!(
        times(&tl, is_sent),
        ladder(&[0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    );
    assert!(tl
        .iter()
        .filter(|(_, o)| is_sent(o))
        .all(|(_, o)| o.method() == Some(Method::Invite)));
    let events: Vec<_> = tl.iter().filter(|(_, o)| !is_sent(o)).cloned().collect();
    assert_eq!(
        events,
        vec![
            (secs(32.0), Out::Ev(TxEvent::Timeout { tx })),
            (secs(32.0), Out::Ev(TxEvent::Terminated { tx }))
        ]
    );
    // Every retransmission is the very same buffer.
    assert!(h.raw.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn client_invite_tcp_has_no_retransmissions() {
    let mut h = Harness::new();
    let tx = h.layer.send_request(
        h.t0,
        request(Method::Invite, "z9hG4bKci2", Transport::Tcp),
        tcp(REMOTE),
    );
    assert_eq!(h.drain().len(), 1);
    assert_eq!(h.layer.poll_timeout(), Some(h.at(secs(32.0))));
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        tl,
        vec![
            (secs(32.0), Out::Ev(TxEvent::Timeout { tx })),
            (secs(32.0), Out::Ev(TxEvent::Terminated { tx }))
        ]
    );
}

#[test]
fn client_invite_provisional_stops_a_and_b() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKci3");
    let tx = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let ringing = resp_of(&req, 180, Some("b1"));
    let out = h.recv(ms(200), ringing.clone(), udp(REMOTE));
    assert_eq!(out, vec![Out::Ev(TxEvent::Response { tx, resp: ringing })]);
    assert_eq!(h.layer.poll_timeout(), None);
    assert!(h.run_until(secs(300.0)).is_empty());
    assert_eq!(h.layer.len(), 1, "Proceeding waits for a final or a CANCEL");
}

#[test]
fn client_invite_non_2xx_final_gets_ack_built_by_transaction() {
    let mut h = Harness::new();
    let mut req = invite("z9hG4bKci4");
    req.headers.via.push(Via {
        transport: Transport::Udp,
        host: "10.0.0.1".into(),
        port: None,
        params: vec![Param::new("branch", Some("z9hG4bKlower"))],
    });
    req.headers.route = vec![NameAddr::new(Uri::sip(None, "proxy.example.com", None))];
    req.headers.extra.push(("Subject".into(), "hi".into()));
    req.headers.content_type = Some("application/sdp".into());
    req.body = b"v=0\r\n".to_vec();
    let tx = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();

    let busy = resp_of(&req, 486, Some("uas-tag"));
    let out = h.recv(ms(700), busy.clone(), udp(REMOTE));
    assert_eq!(out.len(), 2);
    let Out::Sent(to, Message::Request(ack)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(*to, udp(REMOTE));
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, req.uri);
    assert_eq!(ack.headers.call_id, req.headers.call_id);
    assert_eq!(ack.headers.from, req.headers.from);
    assert_eq!(ack.headers.to.tag(), Some("uas-tag"));
    assert_eq!(ack.headers.to, busy.headers.to);
    assert_eq!(
        ack.headers.cseq,
        CSeq {
            seq: 1,
            method: Method::Ack
        }
    );
    assert_eq!(ack.headers.via, vec![req.headers.via[0].clone()]);
    assert_eq!(ack.headers.route, req.headers.route);
    assert!(ack.body.is_empty() && ack.headers.content_type.is_none());
    assert_eq!(ack.headers.get("Subject"), None);
    assert_eq!(
        out[1],
        Out::Ev(TxEvent::Response {
            tx,
            resp: busy.clone()
        })
    );

    // A retransmitted final: the ACK again, nothing to the TU.
    let again = h.recv(secs(1.0), busy.clone(), udp(REMOTE));
    assert_eq!(again, vec![out[0].clone()]);
    // Timer D: 32 s after the final.
    let tl = h.run_until(secs(100.0));
    assert_eq!(tl, vec![(ms(32_700), Out::Ev(TxEvent::Terminated { tx }))]);
    assert!(h.recv(secs(40.0), busy, udp(REMOTE)).is_empty());
}

#[test]
fn client_invite_timer_d_is_zero_over_tcp() {
    let mut h = Harness::new();
    let req = request(Method::Invite, "z9hG4bKci5", Transport::Tcp);
    let tx = h.layer.send_request(h.t0, req.clone(), tcp(REMOTE));
    h.drain();
    let out = h.recv(ms(100), resp_of(&req, 603, Some("t")), tcp(REMOTE));
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].method(), Some(Method::Ack));
    assert!(matches!(out[1], Out::Ev(TxEvent::Response { .. })));
    assert_eq!(out[2], Out::Ev(TxEvent::Terminated { tx }));
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn client_invite_2xx_enters_accepted_and_passes_every_2xx_until_m() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKci6");
    let tx = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let ok = resp_of(&req, 200, Some("b2"));
    assert_eq!(
        h.recv(secs(1.0), ok.clone(), udp(REMOTE)),
        vec![Out::Ev(TxEvent::Response {
            tx,
            resp: ok.clone()
        })]
    );
    assert_eq!(
        h.recv(secs(2.0), ok.clone(), udp(REMOTE)),
        vec![Out::Ev(TxEvent::Response {
            tx,
            resp: ok.clone()
        })]
    );
    // A stray non-2xx in Accepted is dropped.
    assert!(h
        .recv(secs(3.0), resp_of(&req, 500, Some("b3")), udp(REMOTE))
        .is_empty());
    let tl = h.run_until(secs(100.0));
    assert_eq!(tl, vec![(secs(33.0), Out::Ev(TxEvent::Terminated { tx }))]);
    assert!(h.recv(secs(40.0), ok, udp(REMOTE)).is_empty());
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKci7");
    h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let mut wrong_method = resp_of(&req, 180, None);
    wrong_method.headers.cseq.method = Method::Bye;
    assert!(h.recv(ms(10), wrong_method, udp(REMOTE)).is_empty());
    let mut wrong_branch = resp_of(&req, 180, None);
    wrong_branch.headers.via[0].set_param("branch", Some("z9hG4bKother"));
    assert!(h.recv(ms(10), wrong_branch, udp(REMOTE)).is_empty());
    let mut no_via = resp_of(&req, 180, None);
    no_via.headers.via.clear();
    assert!(h.recv(ms(10), no_via, udp(REMOTE)).is_empty());
}

// --- client non-INVITE ---

#[test]
fn client_non_invite_timer_e_caps_at_t2_and_f_times_out() {
    let mut h = Harness::new();
    let tx = h.layer.send_request(
        h.t0,
        request(Method::Options, "z9hG4bKcn1", Transport::Udp),
        udp(REMOTE),
    );
    assert_eq!(h.drain().len(), 1);
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        times(&tl, is_sent),
        ladder(&[0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(
        times(&tl, |o| *o == Out::Ev(TxEvent::Timeout { tx })),
        ladder(&[32.0])
    );
    assert_eq!(
        times(&tl, |o| *o == Out::Ev(TxEvent::Terminated { tx })),
        ladder(&[32.0])
    );
}

#[test]
fn client_non_invite_proceeding_resends_every_t2_then_k() {
    let mut h = Harness::new();
    let req = request(Method::Bye, "z9hG4bKcn2", Transport::Udp);
    let tx = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let trying = resp_of(&req, 100, None);
    assert_eq!(
        h.recv(ms(200), trying.clone(), udp(REMOTE)),
        vec![Out::Ev(TxEvent::Response { tx, resp: trying })]
    );
    let tl = h.run_until(secs(10.0));
    // E was armed for 0.5 s; in Proceeding it is re-armed at T2.
    assert_eq!(times(&tl, is_sent), ladder(&[0.5, 4.5, 8.5]));
    let ok = resp_of(&req, 200, Some("x"));
    assert_eq!(
        h.recv(secs(10.0), ok.clone(), udp(REMOTE)),
        vec![Out::Ev(TxEvent::Response {
            tx,
            resp: ok.clone()
        })]
    );
    // Retransmitted final absorbed in Completed.
    assert!(h.recv(secs(11.0), ok, udp(REMOTE)).is_empty());
    let tl = h.run_until(secs(100.0));
    assert_eq!(tl, vec![(secs(15.0), Out::Ev(TxEvent::Terminated { tx }))]);
}

#[test]
fn client_non_invite_timer_k_is_zero_over_tcp() {
    let mut h = Harness::new();
    let req = request(Method::Register, "z9hG4bKcn3", Transport::Tcp);
    let tx = h.layer.send_request(h.t0, req.clone(), tcp(REMOTE));
    h.drain();
    assert_eq!(
        h.layer.poll_timeout(),
        Some(h.at(secs(32.0))),
        "only F over TCP"
    );
    let ok = resp_of(&req, 200, Some("x"));
    let out = h.recv(ms(50), ok.clone(), tcp(REMOTE));
    assert_eq!(
        out,
        vec![
            Out::Ev(TxEvent::Response { tx, resp: ok }),
            Out::Ev(TxEvent::Terminated { tx })
        ]
    );
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}

// --- server INVITE ---

#[test]
fn server_invite_sends_100_at_once_and_answers_retransmissions_with_last_provisional() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsi1");
    let (tx, out) = h.new_server_tx(req.clone(), udp(REMOTE));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        Out::Sent(udp(REMOTE), Message::Response(resp_of(&req, 100, None)))
    );
    assert_eq!(
        out[1],
        Out::Ev(TxEvent::Request {
            tx,
            req: req.clone(),
            from: udp(REMOTE)
        })
    );
    assert_eq!(out[0].status(), Some(100));

    assert_eq!(
        h.recv(ms(500), req.clone(), udp(REMOTE)),
        vec![out[0].clone()]
    );
    let ringing = resp_of(&req, 180, Some("uas"));
    assert_eq!(
        h.send_response(ms(600), tx, ringing.clone()),
        vec![Out::Sent(udp(REMOTE), Message::Response(ringing.clone()))]
    );
    assert_eq!(
        h.recv(ms(1500), req, udp(REMOTE)),
        vec![Out::Sent(udp(REMOTE), Message::Response(ringing))]
    );
    assert_eq!(h.layer.poll_timeout(), None, "no timers in Proceeding");
}

#[test]
fn server_invite_final_retransmitted_by_g_until_ack_then_i() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsi2");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    let busy = resp_of(&req, 486, Some("uas"));
    let out = h.send_response(Duration::ZERO, tx, busy.clone());
    assert_eq!(
        out,
        vec![Out::Sent(udp(REMOTE), Message::Response(busy.clone()))]
    );
    let tl = h.run_until(secs(12.0));
    assert_eq!(
        times(&tl, |o| o.status() == Some(486)),
        ladder(&[0.5, 1.5, 3.5, 7.5, 11.5])
    );
    assert_eq!(tl.len(), 5);
    // INVITE retransmission in Completed: the final again.
    assert_eq!(h.recv(secs(12.0), req.clone(), udp(REMOTE)).len(), 1);

    // ACK for the 486: same branch, To tag of the response. Absorbed.
    let mut ack = request(Method::Ack, "z9hG4bKsi2", Transport::Udp);
    ack.headers.to = busy.headers.to.clone();
    assert!(h.recv(secs(12.0), ack.clone(), udp(REMOTE)).is_empty());
    // Confirmed: ACK retransmissions and INVITE retransmissions absorbed.
    assert!(h.recv(secs(13.0), ack, udp(REMOTE)).is_empty());
    assert!(h.recv(secs(13.0), req, udp(REMOTE)).is_empty());
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        tl,
        vec![(secs(17.0), Out::Ev(TxEvent::Terminated { tx }))],
        "I = T4 after the ACK"
    );
}

#[test]
fn server_invite_timer_h_without_ack() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsi3");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    h.send_response(Duration::ZERO, tx, resp_of(&req, 404, Some("uas")));
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        times(&tl, is_sent),
        ladder(&[0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(times(&tl, |o| !is_sent(o)), ladder(&[32.0]));
    assert_eq!(tl.last().unwrap().1, Out::Ev(TxEvent::Terminated { tx }));
}

#[test]
fn server_invite_over_tcp_no_g_and_timer_i_zero() {
    let mut h = Harness::new();
    let req = request(Method::Invite, "z9hG4bKsi4", Transport::Tcp);
    let from = tcp("192.0.2.10:40000");
    let (tx, out) = h.new_server_tx(req.clone(), from);
    assert_eq!(out[0].status(), Some(100));
    assert!(
        matches!(&out[0], Out::Sent(p, _) if *p == from),
        "back over the connection"
    );
    let busy = resp_of(&req, 486, Some("uas"));
    h.send_response(Duration::ZERO, tx, busy.clone());
    assert_eq!(h.layer.poll_timeout(), Some(h.at(secs(32.0))), "H only");
    let mut ack = request(Method::Ack, "z9hG4bKsi4", Transport::Tcp);
    ack.headers.to = busy.headers.to;
    assert_eq!(
        h.recv(secs(1.0), ack, from),
        vec![Out::Ev(TxEvent::Terminated { tx })]
    );
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.poll_timeout(), None);
}

fn ack_for_2xx(ok: &Response, branch: &str) -> Request {
    let mut ack = request(Method::Ack, branch, Transport::Udp);
    ack.headers.to = ok.headers.to.clone();
    ack
}

#[test]
fn server_invite_2xx_retransmitted_until_ack() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsi5");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    let ok = resp_of(&req, 200, Some("uas"));
    assert_eq!(h.send_response(Duration::ZERO, tx, ok.clone()).len(), 1);
    let tl = h.run_until(secs(4.0));
    assert_eq!(
        times(&tl, |o| o.status() == Some(200)),
        ladder(&[0.5, 1.5, 3.5])
    );
    // INVITE retransmission in Accepted: the 2xx again.
    assert_eq!(
        h.recv(secs(4.0), req.clone(), udp(REMOTE))
            .iter()
            .filter_map(Out::status)
            .collect::<Vec<_>>(),
        vec![200]
    );

    // The ACK for a 2xx has its own branch.
    let ack = ack_for_2xx(&ok, "z9hG4bKack1");
    let out = h.recv(secs(5.0), ack.clone(), udp(REMOTE));
    assert_eq!(
        out,
        vec![Out::Ev(TxEvent::Ack {
            tx: Some(tx),
            req: ack.clone(),
            from: udp(REMOTE)
        })]
    );
    // A retransmitted ACK still names the transaction while it lives.
    let out = h.recv(secs(6.0), ack.clone(), udp(REMOTE));
    assert_eq!(
        out,
        vec![Out::Ev(TxEvent::Ack {
            tx: Some(tx),
            req: ack.clone(),
            from: udp(REMOTE)
        })]
    );
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        tl,
        vec![(secs(32.0), Out::Ev(TxEvent::Terminated { tx }))],
        "L, no AckTimeout"
    );
    // After L, the ACK matches nothing but still goes up.
    let out = h.recv(secs(40.0), ack.clone(), udp(REMOTE));
    assert_eq!(
        out,
        vec![Out::Ev(TxEvent::Ack {
            tx: None,
            req: ack,
            from: udp(REMOTE)
        })]
    );
}

#[test]
fn server_invite_2xx_without_ack_gives_ack_timeout() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsi6");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    h.send_response(Duration::ZERO, tx, resp_of(&req, 200, Some("uas")));
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        times(&tl, |o| o.status() == Some(200)),
        ladder(&[0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    let events: Vec<_> = tl.into_iter().filter(|(_, o)| !is_sent(o)).collect();
    assert_eq!(
        events,
        vec![
            (secs(32.0), Out::Ev(TxEvent::AckTimeout { tx, req })),
            (secs(32.0), Out::Ev(TxEvent::Terminated { tx })),
        ]
    );
}

#[test]
fn server_invite_2xx_over_tcp_not_retransmitted() {
    let mut h = Harness::new();
    let req = request(Method::Invite, "z9hG4bKsi7", Transport::Tcp);
    let from = tcp("192.0.2.10:40000");
    let (tx, _) = h.new_server_tx(req.clone(), from);
    h.send_response(Duration::ZERO, tx, resp_of(&req, 200, Some("uas")));
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        tl,
        vec![
            (secs(32.0), Out::Ev(TxEvent::AckTimeout { tx, req })),
            (secs(32.0), Out::Ev(TxEvent::Terminated { tx })),
        ]
    );
}

#[test]
fn unmatched_ack_goes_up_with_no_tx() {
    let mut h = Harness::new();
    let ack = request(Method::Ack, "z9hG4bKnothing", Transport::Udp);
    let out = h.recv(Duration::ZERO, ack.clone(), udp(REMOTE));
    assert_eq!(
        out,
        vec![Out::Ev(TxEvent::Ack {
            tx: None,
            req: ack,
            from: udp(REMOTE)
        })]
    );
    assert_eq!(h.layer.len(), 0);
}

// --- CANCEL (server side) ---

#[test]
fn cancel_of_pending_invite_gets_200_and_487() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsc1");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    h.send_response(ms(100), tx, resp_of(&req, 180, Some("uas-tag")));
    let cancel = request(Method::Cancel, "z9hG4bKsc1", Transport::Udp);
    let out = h.recv(secs(1.0), cancel.clone(), udp(REMOTE));
    assert_eq!(out.len(), 3, "{out:?}");
    let Out::Sent(_, Message::Response(ok)) = &out[0] else {
        panic!()
    };
    assert_eq!((ok.status, &ok.headers.cseq.method), (200, &Method::Cancel));
    assert_eq!(ok.headers.to.tag(), Some("uas-tag"));
    let Out::Sent(_, Message::Response(terminated)) = &out[1] else {
        panic!()
    };
    assert_eq!(
        (terminated.status, &terminated.headers.cseq.method),
        (487, &Method::Invite)
    );
    assert_eq!(terminated.headers.to.tag(), Some("uas-tag"));
    assert_eq!(
        out[2],
        Out::Ev(TxEvent::Cancelled {
            invite_tx: tx,
            cancel: cancel.clone()
        })
    );

    // CANCEL retransmission: its 200 again. The TU's late 200 to the INVITE is dropped.
    let again = h.recv(secs(1.2), cancel, udp(REMOTE));
    assert_eq!(
        again.iter().filter_map(Out::status).collect::<Vec<_>>(),
        vec![200]
    );
    assert!(h
        .send_response(secs(1.3), tx, resp_of(&req, 200, Some("uas-tag")))
        .is_empty());
    // The 487 is retransmitted by G until the ACK.
    let tl = h.run_until(secs(1.5));
    assert_eq!(times(&tl, |o| o.status() == Some(487)), ladder(&[1.5]));
    let mut ack = request(Method::Ack, "z9hG4bKsc1", Transport::Udp);
    ack.headers.to = terminated.headers.to.clone();
    assert!(h.recv(secs(2.0), ack, udp(REMOTE)).is_empty());
    let tl = h.run_until(secs(100.0));
    assert_eq!(
        tl,
        vec![(secs(7.0), Out::Ev(TxEvent::Terminated { tx }))],
        "I; the internal CANCEL tx is silent"
    );
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn cancel_without_provisional_tag_generates_one() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsc2");
    h.new_server_tx(req, udp(REMOTE));
    let out = h.recv(
        secs(1.0),
        request(Method::Cancel, "z9hG4bKsc2", Transport::Udp),
        udp(REMOTE),
    );
    let tags: Vec<_> = out
        .iter()
        .filter_map(|o| match o.sent() {
            Some(Message::Response(r)) => r.headers.to.tag().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(tags.len(), 2);
    assert_eq!(
        tags[0], tags[1],
        "200 to CANCEL and 487 share the To tag (§9.2)"
    );
}

#[test]
fn cancel_for_unknown_gets_481() {
    let mut h = Harness::new();
    let cancel = request(Method::Cancel, "z9hG4bKnone", Transport::Udp);
    let out = h.recv(Duration::ZERO, cancel.clone(), udp(REMOTE));
    assert_eq!(
        out.iter().map(Out::status).collect::<Vec<_>>(),
        vec![Some(481)]
    );
    // Retransmission absorbed by the layer's own transaction: 481 again, nothing up.
    let out = h.recv(ms(500), cancel, udp(REMOTE));
    assert_eq!(
        out.iter().map(Out::status).collect::<Vec<_>>(),
        vec![Some(481)]
    );
    // Same branch but different sent-by: not the same INVITE.
    let req = invite("z9hG4bKsc3");
    h.new_server_tx(req, udp(REMOTE));
    let mut cancel = request(Method::Cancel, "z9hG4bKsc3", Transport::Udp);
    cancel.headers.via[0].host = "198.51.100.7".into();
    let out = h.recv(secs(1.0), cancel, udp(REMOTE));
    assert_eq!(
        out.iter().map(Out::status).collect::<Vec<_>>(),
        vec![Some(481)]
    );
}

#[test]
fn cancel_after_final_gets_200_only() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKsc4");
    let (tx, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    h.send_response(Duration::ZERO, tx, resp_of(&req, 200, Some("uas")));
    let out = h.recv(
        ms(100),
        request(Method::Cancel, "z9hG4bKsc4", Transport::Udp),
        udp(REMOTE),
    );
    assert_eq!(out.len(), 1);
    let Some(Message::Response(ok)) = out[0].sent() else {
        panic!()
    };
    assert_eq!((ok.status, &ok.headers.cseq.method), (200, &Method::Cancel));
    assert_eq!(ok.headers.to.tag(), Some("uas"));
}

// --- CANCEL (client side) ---

#[test]
fn client_cancel_before_provisional_waits_for_first_1xx() {
    let mut h = Harness::new();
    let mut req = invite("z9hG4bKcc1");
    req.headers.route = vec![NameAddr::new(Uri::sip(None, "proxy.example.com", None))];
    req.headers.via.push(Via {
        transport: Transport::Udp,
        host: "10.0.0.1".into(),
        port: None,
        params: vec![Param::new("branch", Some("z9hG4bKlower"))],
    });
    let inv = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let c = h
        .layer
        .cancel(h.at(ms(100)), inv)
        .expect("pending INVITE can be cancelled");
    assert!(h.drain().is_empty(), "nothing sent before a provisional");
    assert_eq!(h.layer.cancel(h.at(ms(150)), inv), Some(c), "idempotent");
    assert!(h.drain().is_empty());

    let ringing = resp_of(&req, 180, Some("b"));
    let out = h.recv(ms(200), ringing.clone(), udp(REMOTE));
    assert_eq!(
        out[0],
        Out::Ev(TxEvent::Response {
            tx: inv,
            resp: ringing
        })
    );
    let Out::Sent(to, Message::Request(cancel)) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(out.len(), 2);
    assert_eq!(*to, udp(REMOTE));
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, req.uri);
    assert_eq!(cancel.headers.call_id, req.headers.call_id);
    assert_eq!(cancel.headers.from, req.headers.from);
    assert_eq!(cancel.headers.to, req.headers.to);
    assert_eq!(
        cancel.headers.cseq,
        CSeq {
            seq: 1,
            method: Method::Cancel
        }
    );
    assert_eq!(cancel.headers.via, vec![req.headers.via[0].clone()]);
    assert_eq!(cancel.headers.route, req.headers.route);

    // The CANCEL is a client non-INVITE: E from when it was sent (0.2 s).
    let tl = h.run_until(ms(700));
    assert_eq!(
        times(&tl, |o| o.method() == Some(Method::Cancel)),
        vec![ms(700)]
    );
    let ok = resp_of(cancel, 200, Some("b"));
    assert_eq!(
        h.recv(ms(800), ok.clone(), udp(REMOTE)),
        vec![Out::Ev(TxEvent::Response { tx: c, resp: ok })]
    );
    let out = h.recv(ms(900), resp_of(&req, 487, Some("b")), udp(REMOTE));
    assert_eq!(out[0].method(), Some(Method::Ack));
    assert_eq!(out.len(), 2);
}

#[test]
fn client_cancel_after_provisional_is_sent_at_once() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKcc2");
    let inv = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.recv(ms(100), resp_of(&req, 183, Some("b")), udp(REMOTE));
    h.drain();
    let c = h.layer.cancel(h.at(ms(200)), inv).unwrap();
    assert_ne!(c, inv);
    let out = h.drain();
    assert_eq!(
        out.iter().filter_map(Out::method).collect::<Vec<_>>(),
        vec![Method::Cancel]
    );
    assert_eq!(h.layer.len(), 2);
}

#[test]
fn client_cancel_dropped_when_final_arrives_first() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKcc3");
    let inv = h.layer.send_request(h.t0, req.clone(), udp(REMOTE));
    h.drain();
    let c = h.layer.cancel(h.at(ms(100)), inv).unwrap();
    let out = h.recv(ms(200), resp_of(&req, 200, Some("b")), udp(REMOTE));
    assert!(
        out.iter().all(|o| o.method() != Some(Method::Cancel)),
        "{out:?}"
    );
    assert!(out.contains(&Out::Ev(TxEvent::Terminated { tx: c })));
    assert_eq!(h.layer.cancel(h.at(ms(300)), inv), None, "Accepted");
    assert_eq!(h.layer.cancel(h.at(ms(300)), c), None, "not an INVITE");
}

#[test]
fn client_cancel_dropped_when_invite_times_out() {
    let mut h = Harness::new();
    let inv = h
        .layer
        .send_request(h.t0, invite("z9hG4bKcc4"), udp(REMOTE));
    let c = h.layer.cancel(h.t0, inv).unwrap();
    h.drain();
    let tl = h.run_until(secs(100.0));
    let events: Vec<_> = tl
        .into_iter()
        .filter(|(_, o)| !is_sent(o))
        .map(|(_, o)| o)
        .collect();
    assert_eq!(
        events,
        vec![
            Out::Ev(TxEvent::Timeout { tx: inv }),
            Out::Ev(TxEvent::Terminated { tx: inv }),
            Out::Ev(TxEvent::Terminated { tx: c }),
        ]
    );
    assert_eq!(h.layer.len(), 0);
    assert_eq!(h.layer.cancel(h.at(secs(100.0)), inv), None, "unknown");
}

// --- server non-INVITE ---

#[test]
fn server_non_invite_absorbs_in_trying_resends_final_then_j() {
    let mut h = Harness::new();
    let req = request(Method::Options, "z9hG4bKsn1", Transport::Udp);
    let (tx, out) = h.new_server_tx(req.clone(), udp(REMOTE));
    assert_eq!(out.len(), 1, "no 100 for non-INVITE");
    assert!(
        h.recv(ms(500), req.clone(), udp(REMOTE)).is_empty(),
        "Trying absorbs"
    );
    let trying = resp_of(&req, 100, None);
    assert_eq!(h.send_response(ms(600), tx, trying).len(), 1);
    assert_eq!(
        h.recv(ms(700), req.clone(), udp(REMOTE))
            .iter()
            .filter_map(Out::status)
            .collect::<Vec<_>>(),
        vec![100]
    );
    let ok = resp_of(&req, 200, Some("x"));
    assert_eq!(h.send_response(secs(1.0), tx, ok.clone()).len(), 1);
    assert!(
        h.send_response(secs(1.1), tx, resp_of(&req, 500, Some("x")))
            .is_empty(),
        "second final dropped"
    );
    assert_eq!(
        h.recv(secs(2.0), req, udp(REMOTE)),
        vec![Out::Sent(udp(REMOTE), Message::Response(ok))]
    );
    assert_eq!(
        h.run_until(secs(100.0)),
        vec![(secs(33.0), Out::Ev(TxEvent::Terminated { tx }))]
    );
}

#[test]
fn server_non_invite_timer_j_is_zero_over_tcp() {
    let mut h = Harness::new();
    let req = request(Method::Bye, "z9hG4bKsn2", Transport::Tcp);
    let (tx, _) = h.new_server_tx(req.clone(), tcp("192.0.2.10:40000"));
    let out = h.send_response(Duration::ZERO, tx, resp_of(&req, 200, Some("x")));
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], Out::Ev(TxEvent::Terminated { tx }));
    assert_eq!(h.layer.len(), 0);
}

// --- merging, routing, legacy ---

#[test]
fn merged_request_gets_482() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKm1");
    let (tx, _) = h.new_server_tx(req, udp(REMOTE));
    // Same From tag, Call-ID and CSeq, no To tag, another branch: forked back to us.
    let mut merged = invite("z9hG4bKm2");
    merged.headers.via[0].host = "198.51.100.1".into();
    let from = udp("198.51.100.1:5060");
    let out = h.recv(ms(10), merged.clone(), from);
    assert_eq!(out.len(), 1, "{out:?}");
    let Out::Sent(to, Message::Response(r)) = &out[0] else {
        panic!()
    };
    assert_eq!((r.status, *to), (482, from));
    assert!(r.headers.to.tag().is_some());
    // Its retransmission is answered by the same internal transaction.
    let again = h.recv(ms(500), merged, from);
    assert_eq!(
        again.iter().filter_map(Out::status).collect::<Vec<_>>(),
        vec![482]
    );
    // The original still gets answers.
    assert_eq!(
        h.send_response(ms(600), tx, resp_of(&invite("z9hG4bKm1"), 180, Some("t")))
            .len(),
        1
    );
    // A request with a To tag (in-dialog) is never merged.
    let mut in_dialog = invite("z9hG4bKm3");
    in_dialog.headers.to.set_param("tag", Some("t"));
    let out = h.recv(ms(700), in_dialog, udp(REMOTE));
    assert!(
        out.iter()
            .any(|o| matches!(o, Out::Ev(TxEvent::Request { .. }))),
        "{out:?}"
    );
}

#[test]
fn rport_and_received_are_stamped_and_used() {
    let mut h = Harness::new();
    // NAT: Via says a private name, the packet came from elsewhere, rport asked.
    let mut req = invite("z9hG4bKr1");
    req.headers.via[0].host = "client.invalid".into();
    req.headers.via[0]
        .params
        .push(Param::new("rport", None::<&str>));
    let src = udp("203.0.113.5:40001");
    let (_, out) = h.new_server_tx(req, src);
    let Out::Sent(to, Message::Response(trying)) = &out[0] else {
        panic!()
    };
    assert_eq!(*to, src);
    assert_eq!(trying.headers.via[0].rport(), Some(Some(40001)));
    assert_eq!(trying.headers.via[0].received(), Some("203.0.113.5"));
    let Out::Ev(TxEvent::Request { req, .. }) = &out[1] else {
        panic!()
    };
    assert_eq!(
        req.top_via().unwrap().rport(),
        Some(Some(40001)),
        "TU sees the stamped Via"
    );

    // No rport: received + the Via's port.
    let mut req = invite("z9hG4bKr2");
    req.headers.via[0].host = "client.invalid".into();
    req.headers.via[0].port = Some(5070);
    req.headers.from.set_param("tag", Some("other"));
    let (_, out) = h.new_server_tx(req, udp("203.0.113.5:40002"));
    let Out::Sent(to, Message::Response(trying)) = &out[0] else {
        panic!()
    };
    assert_eq!(*to, udp("203.0.113.5:5070"));
    assert_eq!(trying.headers.via[0].received(), Some("203.0.113.5"));
    assert_eq!(trying.headers.via[0].rport(), None);

    // Sent-by is the source IP: nothing added, default port 5060.
    let mut req = request(Method::Options, "z9hG4bKr3", Transport::Udp);
    req.headers.via[0].port = None;
    let (tx, out) = h.new_server_tx(req.clone(), udp("192.0.2.10:6000"));
    let Out::Ev(TxEvent::Request { req: seen, .. }) = &out[0] else {
        panic!()
    };
    assert_eq!(seen.headers.via[0].received(), None);
    let out = h.send_response(Duration::ZERO, tx, resp_of(seen, 200, Some("x")));
    assert!(matches!(&out[0], Out::Sent(p, _) if *p == udp("192.0.2.10:5060")));
}

#[test]
fn rfc2543_requests_without_branch_match_by_fallback_key() {
    let mut h = Harness::new();
    let mut req = invite("ignored");
    req.headers.via[0].params.clear();
    let (tx, out) = h.new_server_tx(req.clone(), udp(REMOTE));
    assert_eq!(out[0].status(), Some(100));
    // Retransmission matches.
    assert_eq!(
        h.recv(ms(500), req.clone(), udp(REMOTE))
            .iter()
            .filter_map(Out::status)
            .collect::<Vec<_>>(),
        vec![100]
    );
    let busy = resp_of(&req, 486, Some("uas"));
    h.send_response(ms(600), tx, busy.clone());
    // ACK for the 486 (To tag added, no branch) matches and is absorbed.
    let mut ack = req.clone();
    ack.method = Method::Ack;
    ack.headers.cseq.method = Method::Ack;
    ack.headers.to = busy.headers.to;
    assert!(h.recv(secs(1.0), ack, udp(REMOTE)).is_empty());
    assert_eq!(
        h.run_until(secs(100.0)),
        vec![(secs(6.0), Out::Ev(TxEvent::Terminated { tx }))]
    );

    // A legacy branch without the magic cookie also works.
    let mut req = invite("1");
    req.headers.call_id = "legacy-2".into();
    let (_, _) = h.new_server_tx(req.clone(), udp(REMOTE));
    let cancel_out = {
        let mut c = req.clone();
        c.method = Method::Cancel;
        c.headers.cseq.method = Method::Cancel;
        h.recv(secs(101.0), c, udp(REMOTE))
    };
    assert_eq!(
        cancel_out
            .iter()
            .filter_map(Out::status)
            .collect::<Vec<_>>(),
        vec![200, 487]
    );
}

#[test]
fn malformed_but_parsed_messages_do_not_panic() {
    let mut h = Harness::new();
    let mut no_via = invite("z9hG4bKx");
    no_via.headers.via.clear();
    assert!(h
        .recv(Duration::ZERO, no_via.clone(), udp(REMOTE))
        .is_empty());
    let mut ack = no_via.clone();
    ack.method = Method::Ack;
    assert!(h.recv(Duration::ZERO, ack, udp(REMOTE)).is_empty());
    let mut no_branch_no_tags = invite("x");
    no_branch_no_tags.headers.via[0].params.clear();
    no_branch_no_tags.headers.from.params.clear();
    h.recv(Duration::ZERO, no_branch_no_tags, udp(REMOTE));
    // Client request without a Via: sent, times out, never matched. (Its bytes do not
    // parse back, so read the raw queue.)
    let tx = h.layer.send_request(h.t0, no_via, udp(REMOTE));
    let mut timed_out = false;
    loop {
        while let Some(o) = h.layer.poll_output() {
            timed_out |= o == Output::Event(TxEvent::Timeout { tx });
        }
        match h.layer.poll_timeout() {
            Some(t) => h.layer.handle_timeout(t),
            None => break,
        }
    }
    assert!(timed_out);
    // Responses on unknown or client transactions are dropped.
    h.layer
        .send_response(h.at(secs(41.0)), tx, resp_of(&invite("z"), 200, None));
    assert!(h.drain().is_empty());
    // An ACK through send_request goes out statelessly.
    let ack_tx = h.layer.send_request(
        h.at(secs(41.0)),
        request(Method::Ack, "z9hG4bKa", Transport::Udp),
        udp(REMOTE),
    );
    let out = h.drain();
    assert_eq!(out[0].method(), Some(Method::Ack));
    assert_eq!(out[1], Out::Ev(TxEvent::Terminated { tx: ack_tx }));
}

#[test]
fn stateless_send() {
    let mut h = Harness::new();
    let ack = request(Method::Ack, "z9hG4bKs", Transport::Udp);
    h.layer
        .send_stateless(&Message::Request(ack.clone()), udp(REMOTE));
    assert_eq!(
        h.drain(),
        vec![Out::Sent(udp(REMOTE), Message::Request(ack))]
    );
    assert_eq!(h.layer.len(), 0);
}

// --- scale ---

/// 10k concurrent calls each way; every transaction ends and the queue empties.
#[test]
fn ten_thousand_concurrent_transactions() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let n = 10_000;
    for i in 0..n {
        let mut req = invite(&format!("z9hG4bKbulk{i}"));
        req.headers.call_id = format!("bulk-{i}");
        let t = t0 + Duration::from_micros(i as u64 * 100);
        layer.handle_message(t, Message::Request(req.clone()), udp(REMOTE));
        let mut c = req;
        c.headers.via[0].set_param("branch", Some(&format!("z9hG4bKout{i}")));
        layer.send_request(t, c, udp("192.0.2.30:5060"));
    }
    let mut ids = Vec::new();
    while let Some(o) = layer.poll_output() {
        if let Output::Event(TxEvent::Request { tx, req, .. }) = o {
            ids.push((tx, req));
        }
    }
    assert_eq!(ids.len(), n);
    assert_eq!(layer.len(), 2 * n);
    for (tx, req) in &ids {
        layer.send_response(t0 + secs(1.0), *tx, req.response(486, Some("busy")));
    }
    while layer.poll_output().is_some() {}
    let mut sent = 0usize;
    while let Some(at) = layer.poll_timeout() {
        layer.handle_timeout(at);
        while let Some(o) = layer.poll_output() {
            sent += matches!(o, Output::Transmit { .. }) as usize;
        }
    }
    assert_eq!(layer.len(), 0);
    // Per call: 6 INVITE retransmits (A) + 10 final retransmits (G).
    assert_eq!(sent, n * 16);
}

/// Throughput of the layer alone for a UAS call setup and teardown (INVITE, 100, 180,
/// 200, ACK, BYE, 200), printer included, parser excluded. Run with
/// `cargo test --release -p sip --test transaction -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_call_setups() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let n: usize = std::env::var("TP_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let invites: Vec<Request> = (0..n)
        .map(|i| {
            let mut r = invite(&format!("z9hG4bKtp{i}"));
            r.headers.call_id = format!("tp-{i}");
            r
        })
        .collect();
    let started = Instant::now();
    let mut in_layer = Duration::ZERO;
    for (i, req) in invites.into_iter().enumerate() {
        let now = t0 + Duration::from_micros(i as u64 * 300);
        let ok_template = req.response(200, Some("uas"));
        let ringing = req.response(180, Some("uas"));
        let t = Instant::now();
        layer.handle_message(now, Message::Request(req), udp(REMOTE));
        in_layer += t.elapsed();
        let mut tx = None;
        while let Some(o) = layer.poll_output() {
            if let Output::Event(TxEvent::Request { tx: t, .. }) = o {
                tx = Some(t);
            }
        }
        let tx = tx.unwrap();
        let ok = ok_template.clone();
        let t = Instant::now();
        layer.send_response(now, tx, ringing);
        layer.send_response(now, tx, ok);
        in_layer += t.elapsed();
        let mut ack = request(Method::Ack, &format!("z9hG4bKtpa{i}"), Transport::Udp);
        ack.headers.call_id = ok_template.headers.call_id.clone();
        ack.headers.to = ok_template.headers.to.clone();
        let t = Instant::now();
        layer.handle_message(now, Message::Request(ack), udp(REMOTE));
        in_layer += t.elapsed();
        let mut bye = request(Method::Bye, &format!("z9hG4bKtpb{i}"), Transport::Udp);
        bye.headers.call_id = ok_template.headers.call_id.clone();
        bye.headers.to = ok_template.headers.to.clone();
        bye.headers.cseq.seq = 2;
        let t = Instant::now();
        layer.handle_message(now, Message::Request(bye), udp(REMOTE));
        in_layer += t.elapsed();
        let mut bye_tx = None;
        while let Some(o) = layer.poll_output() {
            if let Output::Event(TxEvent::Request { tx: t, req, .. }) = o {
                bye_tx = Some((t, req));
            }
        }
        let (bt, breq) = bye_tx.unwrap();
        let bye_ok = breq.response(200, None);
        let t = Instant::now();
        layer.send_response(now, bt, bye_ok);
        layer.handle_timeout(now);
        while layer.poll_output().is_some() {}
        in_layer += t.elapsed();
    }
    let elapsed = started.elapsed();
    let t = Instant::now();
    while let Some(at) = layer.poll_timeout() {
        layer.handle_timeout(at);
        while layer.poll_output().is_some() {}
    }
    in_layer += t.elapsed();
    assert_eq!(layer.len(), 0);
    println!(
        "{n} calls: {:.1} us/call in the layer (incl. expiry), {:.1} us/call with message building",
        in_layer.as_secs_f64() * 1e6 / n as f64,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
