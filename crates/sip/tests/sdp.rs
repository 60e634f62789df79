//! SDP parsing/printing against descriptions modelled on what real clients send, and
//! RFC 3264 offer/answer decisions, plus a no-panic mutation test.

use sip::sdp::*;
use std::net::SocketAddr;

// ---------------------------------------------------------------------------------------
// Samples. Written with LF here; `crlf` turns them into what goes on the wire.

/// pjsua 2.x: opus first, telephone-event at both 48000 and 8000, a=rtcp, a=ssrc.
const PJSUA: &str = "\
v=0
o=- 3906187473 3906187473 IN IP4 192.168.1.20
s=pjmedia
b=AS:117
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 96 9 8 0 101 102
c=IN IP4 192.168.1.20
b=TIAS:96000
a=rtcp:4001 IN IP4 192.168.1.20
a=sendrecv
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/48000
a=fmtp:101 0-16
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-16
a=ssrc:2072354421 cname:4e9a3e2b1c5d7f60
";

/// SIPp's built-in uac scenario: PCMU only, no telephone-event.
const SIPP_PCMU: &str = "\
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
";

/// SIPp's uac_pcap scenario: PCMA plus telephone-event.
const SIPP_PCMA: &str = "\
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
";

/// baresip: audio and video, rtcp-mux, explicit channel counts.
const BARESIP: &str = "\
v=0
o=- 1853960245 3274183637 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 10942 RTP/AVP 96 9 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1;useinbandfec=1
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000/1
a=rtpmap:8 PCMA/8000/1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=ptime:20
a=sendrecv
a=label:1
a=ssrc:3297536104 cname:11ee8b2c-6a4f-4a1c-b3e2-5f0a6b7c8d9e
m=video 10944 RTP/AVP 102 103
b=AS:1000
a=rtpmap:102 H264/90000
a=fmtp:102 packetization-mode=0;profile-level-id=42e01f
a=rtpmap:103 VP8/90000
a=rtcp-fb:* nack pli
a=rtcp-mux
a=sendrecv
a=label:2
";

/// Linphone: ICE at session level, speex, telephone-event at three clock rates, video.
const LINPHONE: &str = "\
v=0
o=alice 2463 1870 IN IP4 192.168.1.42
s=Talk
c=IN IP4 192.168.1.42
t=0 0
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b
a=ice-ufrag:70a1fb1d
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.1.42 7078 typ host
a=candidate:1 2 UDP 2130706430 192.168.1.42 7079 typ host
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
a=rtcp-fb:97 nack pli
";

/// Asterisk (chan_pjsip): G.711 and GSM, ptime and maxptime.
const ASTERISK: &str = "\
v=0
o=- 1683299474 1683299476 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 14562 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

/// FreeSWITCH: opus on 102, comfort noise, a=rtcp after the direction.
const FREESWITCH: &str = "\
v=0
o=FreeSWITCH 1683270015 1683270016 IN IP4 198.51.100.7
s=FreeSWITCH
c=IN IP4 198.51.100.7
t=0 0
m=audio 24524 RTP/AVP 102 9 0 8 101 13
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
a=rtcp:24525 IN IP4 198.51.100.7
";

/// A desk phone: G.722 first, G.729, telephone-event on 96, 30 ms packets, version 0.
const DESK_PHONE: &str = "\
v=0
o=- 20518 0 IN IP4 192.0.2.55
s=SDP data
c=IN IP4 192.0.2.55
t=0 0
m=audio 11800 RTP/AVP 9 0 8 18 96
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=ptime:30
a=sendrecv
";

/// An RFC 2543-style hold: c=0.0.0.0 and no direction attribute.
const HOLD_ZERO_ADDR: &str = "\
v=0
o=- 3906187473 3906187474 IN IP4 192.168.1.20
s=pjmedia
c=IN IP4 0.0.0.0
t=0 0
m=audio 4000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
";

const IPV6: &str = "\
v=0
o=- 1700000000 1700000000 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 30000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
";

/// RFC 8866 §5's example, plus r= and z=: every session-level line type, multicast c=,
/// session-level direction, a static payload type without rtpmap.
const RFC8866: &str = "\
v=0
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
s=Call to John Smith
i=SDP Offer #1
u=http://www.jdoe.example.com/home.html
e=Jane Doe <jane@jdoe.example.com>
p=+1 617 555-6011
c=IN IP4 233.252.0.1/127
b=CT:128
t=3724394400 3724398000
r=7d 1h 0 25h
z=2882844526 -1h 2898848070 0
a=recvonly
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::2
a=rtpmap:99 h263-1998/90000
";

/// A WebRTC gateway offer: DTLS-SRTP only.
const WEBRTC: &str = "\
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Yq1R
a=ice-pwd:9dLpQ0mVb5bQ1u6QzS1eWv3T
a=fingerprint:sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
";

/// Asterisk answering an offer of ours that listed G722, PCMU and PCMA: it picked PCMA.
const ASTERISK_ANSWER: &str = "\
v=0
o=- 1683299474 1683299474 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 14562 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

/// The session-level lines of the hand-written offers below.
const HEAD: &str = "v=0\no=- 1 1 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n";

const SAMPLES: &[(&str, &str)] = &[
    ("pjsua", PJSUA),
    ("sipp-pcmu", SIPP_PCMU),
    ("sipp-pcma", SIPP_PCMA),
    ("baresip", BARESIP),
    ("linphone", LINPHONE),
    ("asterisk", ASTERISK),
    ("asterisk-answer", ASTERISK_ANSWER),
    ("freeswitch", FREESWITCH),
    ("desk-phone", DESK_PHONE),
    ("hold-0.0.0.0", HOLD_ZERO_ADDR),
    ("ipv6", IPV6),
    ("rfc8866", RFC8866),
    ("webrtc", WEBRTC),
];

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "203.0.113.5:20000";

fn caps(codecs: Vec<Codec>) -> LocalCapabilities {
    LocalCapabilities { codecs, telephone_event: true }
}

fn answer_ok(offer: &str, caps: &LocalCapabilities) -> (SessionDescription, Negotiated) {
    let mut st = SessionState::new(1000);
    answer(&parse(offer), caps, sa(LOCAL), Direction::SendRecv, &mut st).unwrap()
}

// ---------------------------------------------------------------------------------------
// Parsing and printing

#[test]
fn samples_print_back_byte_for_byte() {
    for (name, text) in SAMPLES {
        let wire = crlf(text);
        let sd = parse(&wire);
        assert_eq!(sd.to_string(), wire, "{name}");
        // LF input reads the same.
        assert_eq!(parse(text), sd, "{name}");
    }
}

#[test]
fn tolerates_whitespace_blank_lines_and_unknown_lines() {
    let messy = "v=0 \r\no=- 1 1 IN IP4 10.0.0.1\t\r\n\r\ns=-\r\nt=0 0\r\ny=vendor extension\r\n\
                 m=audio 5000 RTP/AVP 0\r\nx=another one\r\na=X-custom:value with spaces  \r\n\r\n";
    let sd = parse(messy);
    assert_eq!(sd.other_lines, vec![Line { kind: 'y', value: "vendor extension".into() }]);
    let m = &sd.media[0];
    assert_eq!(m.other_lines, vec![Line { kind: 'x', value: "another one".into() }]);
    assert_eq!(m.attribute_value("x-custom"), Some("value with spaces"));
    let printed = sd.to_string();
    assert!(printed.contains("y=vendor extension\r\n"));
    assert!(printed.contains("x=another one\r\na=X-custom:value with spaces\r\n"));
    assert_eq!(parse(&printed), sd);
}

#[test]
fn tolerates_missing_session_name_and_timing() {
    let sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 0\n");
    assert_eq!(sd.session_name, "-");
    assert!(sd.times.is_empty());
    assert_eq!(sd.audio().unwrap().addr, Some(sa("10.0.0.1:5000")));
}

#[test]
fn attribute_forms_round_trip() {
    let sd = parse("v=0\no=- 1 1 IN IP4 h\ns=-\na=flag\na=empty:\na=kv:a:b\n");
    assert_eq!(sd.attributes[0], Attribute::flag("flag"));
    assert_eq!(sd.attributes[1], Attribute::new("empty", ""));
    assert_eq!(sd.attributes[2], Attribute::new("kv", "a:b"));
    assert_eq!(parse(&sd.to_string()), sd);
}

#[test]
fn rejects_non_sdp() {
    for bad in [
        "",
        "hello world",
        "INVITE sip:bob@example.com SIP/2.0\r\n",
        "o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nm=audio five RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nm=audio 5000\r\n",
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=now\r\n",
        "v=0\r\no=- 99999999999999999999999 1 IN IP4 10.0.0.1\r\n",
    ] {
        let err = SessionDescription::parse(bad).unwrap_err();
        assert!(matches!(err, SdpError::Parse(_)), "{bad:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn structure_of_rfc8866_example() {
    let sd = parse(RFC8866);
    assert_eq!(sd.origin.username, "jdoe");
    assert_eq!(sd.origin.session_version, 3724394405);
    assert_eq!(sd.information.as_deref(), Some("SDP Offer #1"));
    assert_eq!(sd.emails.len(), 1);
    assert_eq!(sd.phones, vec!["+1 617 555-6011".to_string()]);
    assert_eq!(sd.bandwidth, vec![Bandwidth { bw_type: "CT".into(), value: 128 }]);
    assert_eq!(sd.times[0].repeats, vec!["7d 1h 0 25h".to_string()]);
    assert_eq!(sd.connection.as_ref().unwrap().address, "233.252.0.1/127");
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.media[1].connection.as_ref().unwrap().addr_type, "IP6");

    let audio = sd.audio().unwrap();
    assert_eq!(audio.addr, Some(sa("233.252.0.1:49170")));
    assert_eq!(audio.direction, Direction::RecvOnly, "session-level attribute applies");
    assert_eq!(audio.codecs, vec![Codec::pcmu()], "static PT without rtpmap");
}

#[test]
fn audio_info_of_pjsua() {
    let a = parse(PJSUA).audio().unwrap();
    assert_eq!(a.addr, Some(sa("192.168.1.20:4000")));
    assert_eq!(a.rtcp, Some(sa("192.168.1.20:4001")));
    assert!(!a.rtcp_mux);
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(a.ptime, None);
    let names: Vec<_> = a
        .codecs
        .iter()
        .map(|c| (c.payload_type, c.name.as_str(), c.clock_rate, c.channels))
        .collect();
    assert_eq!(
        names,
        [
            (96, "opus", 48000, 2),
            (9, "G722", 8000, 1),
            (8, "PCMA", 8000, 1),
            (0, "PCMU", 8000, 1),
            (101, "telephone-event", 48000, 1),
            (102, "telephone-event", 8000, 1),
        ]
    );
    assert_eq!(a.codecs[0].fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(a.telephone_event_for(48000).map(|c| c.payload_type), Some(101));
    assert_eq!(a.telephone_event_for(8000).map(|c| c.payload_type), Some(102));
    assert_eq!(a.telephone_event_for(16000).map(|c| c.payload_type), Some(102));
}

#[test]
fn audio_info_details() {
    let b = parse(BARESIP).audio().unwrap();
    assert!(b.rtcp_mux);
    assert_eq!(b.rtcp, Some(sa("10.0.0.5:10943")), "without mux, RTP port + 1");
    assert_eq!(b.ptime, Some(20));

    let l = parse(LINPHONE).audio().unwrap();
    assert_eq!(l.rtcp, Some(sa("192.168.1.42:7079")), "a=rtcp with port only");
    let g729 = l.codecs.iter().find(|c| c.payload_type == 18).unwrap();
    assert_eq!((g729.name.as_str(), g729.fmtp.as_deref()), ("G729", Some("annexb=yes")));

    let a = parse(ASTERISK).audio().unwrap();
    assert_eq!((a.ptime, a.maxptime), (Some(20), Some(150)));
    assert_eq!(a.rtcp, Some(sa("203.0.113.10:14563")), "default RTCP port is RTP + 1");

    let v6 = parse(IPV6).audio().unwrap();
    assert_eq!(v6.addr, Some(sa("[2001:db8::10]:30000")));

    let hold = parse(HOLD_ZERO_ADDR).audio().unwrap();
    assert_eq!(hold.addr, None);
    assert_eq!(hold.direction, Direction::SendOnly, "0.0.0.0 means: do not send to me");

    // Static payload types without rtpmap, G722 written at its sampling rate.
    let sd = parse(&format!("{HEAD}m=audio 0 RTP/AVP 0 8 9 18 3 13 97\na=rtpmap:9 G722/16000\n"));
    let a = sd.audio().unwrap();
    assert_eq!(a.addr, None, "port 0");
    let got: Vec<_> = a.codecs.iter().map(|c| format!("{}/{}", c.name, c.clock_rate)).collect();
    assert_eq!(got, ["PCMU/8000", "PCMA/8000", "G722/16000", "G729/8000", "GSM/8000", "CN/8000"]);
    assert!(a.codecs[2].same_encoding(&Codec::g722()));
}

#[test]
fn builder_helpers() {
    let mut m = MediaDescription::new("audio", 4000, "RTP/AVP");
    m.push_codec(&Codec::opus(111).with_fmtp("useinbandfec=1"));
    m.set_direction(Direction::SendOnly);
    m.set_direction(Direction::Inactive);
    assert_eq!(
        m.to_string(),
        "m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=inactive\r\n"
    );
    assert_eq!(m.direction(), Some(Direction::Inactive));
}

// ---------------------------------------------------------------------------------------
// Answering

#[test]
fn answer_pcmu_only_offer_exact_text() {
    let mut st = SessionState::new(4242);
    let caps = LocalCapabilities {
        codecs: vec![Codec::g722(), Codec::pcma(), Codec::pcmu()],
        telephone_event: true,
    };
    let (ans, neg) =
        answer(&parse(SIPP_PCMU), &caps, sa(LOCAL), Direction::SendRecv, &mut st).unwrap();
    assert_eq!(
        ans.to_string(),
        "v=0\r\n\
         o=- 4242 4242 IN IP4 203.0.113.5\r\n\
         s=-\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    assert_eq!(neg.codec, Codec::pcmu());
    assert_eq!(neg.telephone_event, None, "SIPp offered none");
    assert_eq!(neg.remote, Some(sa("127.0.0.1:6000")));
    assert_eq!(neg.remote_rtcp, Some(sa("127.0.0.1:6001")));
    assert_eq!(neg.direction, Direction::SendRecv);
    assert_eq!(neg.ptime, 20);
    assert_eq!(st.version, 4243, "version advanced for the next description");
}

#[test]
fn answer_pcma_only_offer() {
    let (ans, neg) = answer_ok(SIPP_PCMA, &LocalCapabilities::default());
    assert_eq!(neg.codec, Codec::pcma());
    assert_eq!((neg.telephone_event, neg.telephone_event_rate), (Some(101), 8000));
    let m = &ans.media[0];
    assert_eq!(m.formats, ["8", "101"]);
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(ans.audio().unwrap().codecs[1], Codec::telephone_event(101, 8000));
}

#[test]
fn answer_g722_and_pcmu_by_policy() {
    // Desk phone offers 9 0 8 18.
    let (_, neg) = answer_ok(DESK_PHONE, &caps(vec![Codec::g722(), Codec::pcmu()]));
    assert_eq!(neg.codec, Codec::g722());
    assert_eq!(neg.codec.clock_rate, 8000, "G722 RTP clock (RFC 3551)");

    let ours_first = caps(vec![Codec::pcmu(), Codec::g722()]);
    let (ans, neg) = answer_ok(DESK_PHONE, &ours_first);
    assert_eq!(neg.codec, Codec::pcmu(), "our preference wins by default");
    assert_eq!(ans.media[0].formats, ["0", "96"]);

    let mut st = SessionState::new(1);
    let (_, neg) = answer_prefer_offerer(
        &parse(DESK_PHONE),
        &ours_first,
        sa(LOCAL),
        Direction::SendRecv,
        &mut st,
    )
    .unwrap();
    assert_eq!(neg.codec, Codec::g722(), "offerer's order wins on request");
}

#[test]
fn answer_keeps_offered_telephone_event_pt_and_ptime() {
    let (ans, neg) = answer_ok(DESK_PHONE, &LocalCapabilities::default());
    assert_eq!(neg.telephone_event, Some(96));
    assert_eq!(neg.ptime, 30);
    let m = &ans.media[0];
    assert_eq!(m.rtpmap(96), Some(Codec::new(96, "telephone-event", 8000, 1)));
    assert_eq!(m.ptime(), Some(30));

    let (_, neg) = answer_ok(ASTERISK, &LocalCapabilities::default());
    assert_eq!(neg.telephone_event, Some(101));
    assert_eq!((neg.ptime, neg.maxptime), (20, Some(150)));
}

#[test]
fn answer_opus() {
    let ours =
        caps(vec![Codec::opus(111).with_fmtp("useinbandfec=1"), Codec::g722(), Codec::pcmu()]);

    // pjsua: opus on 96, telephone-event/48000 on 101 matches the opus clock.
    let (ans, neg) = answer_ok(PJSUA, &ours);
    assert_eq!(neg.codec, Codec::opus(96).with_fmtp("useinbandfec=1"));
    assert_eq!((neg.telephone_event, neg.telephone_event_rate), (Some(101), 48000));
    let printed = ans.to_string();
    assert!(printed.contains(
        "m=audio 20000 RTP/AVP 96 101\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         a=fmtp:96 useinbandfec=1\r\n\
         a=rtpmap:101 telephone-event/48000\r\n\
         a=fmtp:101 0-16\r\n"
    ));
    assert!(!printed.contains("rtcp-mux"));

    // FreeSWITCH: opus on 102, telephone-event only at 8000.
    let (_, neg) = answer_ok(FREESWITCH, &ours);
    assert_eq!(neg.codec.payload_type, 102);
    assert!(neg.codec.fmtp.as_deref().unwrap().contains("maxaveragebitrate=30000"), "peer's fmtp");
    assert_eq!((neg.telephone_event, neg.telephone_event_rate), (Some(101), 8000));

    // Linphone: three telephone-event rates; with PCMU chosen the 8000 one is used.
    let (_, neg) = answer_ok(LINPHONE, &ours);
    assert_eq!((neg.codec.payload_type, neg.telephone_event), (96, Some(101)));
    let (_, neg) = answer_ok(LINPHONE, &caps(vec![Codec::pcmu()]));
    assert_eq!((neg.codec.payload_type, neg.telephone_event), (0, Some(100)));

    // An offer spelling it OPUS/48000 (no channels) still matches.
    let odd = format!("{HEAD}m=audio 5000 RTP/AVP 107\na=rtpmap:107 OPUS/48000\n");
    let (_, neg) = answer_ok(&odd, &ours);
    assert_eq!(
        (neg.codec.payload_type, neg.codec.name.as_str(), neg.codec.channels),
        (107, "opus", 2)
    );
}

#[test]
fn answer_without_telephone_event_when_we_do_not_support_it() {
    let ours = LocalCapabilities { codecs: vec![Codec::pcmu()], telephone_event: false };
    let (ans, neg) = answer_ok(ASTERISK, &ours);
    assert_eq!(neg.telephone_event, None);
    assert_eq!(ans.media[0].formats, ["0"]);
}

#[test]
fn answer_no_common_codec() {
    let mut st = SessionState::new(7);
    let before = st.clone();
    let err = answer(
        &parse(LINPHONE),
        &caps(vec![Codec::g722()]),
        sa(LOCAL),
        Direction::SendRecv,
        &mut st,
    )
    .unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(st, before, "a failed answer does not consume a version");

    // Only auxiliary formats on offer.
    let aux = format!("{HEAD}m=audio 5000 RTP/AVP 101 13\na=rtpmap:101 telephone-event/8000\n");
    let err = answer(
        &parse(&aux),
        &LocalCapabilities::default(),
        sa(LOCAL),
        Direction::SendRecv,
        &mut st,
    );
    assert_eq!(err.unwrap_err(), SdpError::NoCommonCodec);
}

#[test]
fn answer_errors_for_unusable_offers() {
    let mut st = SessionState::new(7);
    let caps = LocalCapabilities::default();
    let go = |sd: &str, st: &mut SessionState| {
        answer(&parse(sd), &caps, sa(LOCAL), Direction::SendRecv, st)
    };
    assert_eq!(
        go(WEBRTC, &mut st).unwrap_err(),
        SdpError::UnsupportedTransport("UDP/TLS/RTP/SAVPF".into())
    );
    let video_only = format!("{HEAD}m=video 5000 RTP/AVP 96\na=rtpmap:96 VP8/90000\n");
    assert_eq!(go(&video_only, &mut st).unwrap_err(), SdpError::NoAudio);
    let disabled = format!("{HEAD}m=audio 0 RTP/AVP 0\n");
    assert_eq!(go(&disabled, &mut st).unwrap_err(), SdpError::NoAudio);
    let no_media = "v=0\no=- 1 1 IN IP4 10.0.0.9\ns=-\nt=0 0\n";
    assert_eq!(go(no_media, &mut st).unwrap_err(), SdpError::NoAudio);
}

#[test]
fn answer_rejects_video_keeping_m_line_order() {
    for offer in [BARESIP, LINPHONE] {
        let (ans, _) = answer_ok(offer, &LocalCapabilities::default());
        let offered = parse(offer);
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[0].kind, "audio");
        assert_eq!(ans.media[0].port, 20000);
        let v = &ans.media[1];
        assert_eq!((v.kind.as_str(), v.port, v.protocol.as_str()), ("video", 0, "RTP/AVP"));
        assert_eq!(v.formats, offered.media[1].formats);
        assert!(v.attributes.is_empty());
        // The answer is itself valid SDP.
        assert_eq!(parse(&ans.to_string()), ans);
    }
}

#[test]
fn answer_takes_first_usable_audio_only() {
    let offer = format!(
        "{HEAD}m=audio 0 RTP/AVP 0\n\
         m=audio 5000 RTP/SAVP 0\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9\n\
         m=audio 5002 RTP/AVP 8\n\
         m=audio 5004 RTP/AVP 0\n\
         m=video 5006 RTP/AVP 31\n"
    );
    let (ans, neg) = answer_ok(&offer, &LocalCapabilities::default());
    let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 0, 20000, 0, 0]);
    assert_eq!(ans.media[1].protocol, "RTP/SAVP");
    assert_eq!(neg.codec, Codec::pcma());
    assert_eq!(neg.remote, Some(sa("10.0.0.9:5002")));
}

#[test]
fn answer_copies_offer_timing_and_uses_ipv6() {
    let mut st = SessionState::new(5);
    let (ans, neg) = answer(
        &parse(RFC8866),
        &LocalCapabilities::default(),
        sa("[2001:db8::5]:7000"),
        Direction::SendRecv,
        &mut st,
    )
    .unwrap();
    assert_eq!(ans.times, parse(RFC8866).times, "RFC 3264 §6: t= equals the offer's");
    assert_eq!(ans.connection, Some(Connection::from_ip("2001:db8::5".parse().unwrap())));
    assert_eq!(ans.origin.addr_type, "IP6");
    assert_eq!(ans.media[1].port, 0);
    assert_eq!(neg.direction, Direction::SendOnly, "offer was recvonly at session level");
    assert_eq!(ans.media[0].direction(), Some(Direction::SendOnly));
}

#[test]
fn hold_and_resume() {
    let caps = LocalCapabilities::default();
    let mut st = SessionState::new(100);
    let mut go = |offer: String, local_dir| {
        answer(&parse(&offer), &caps, sa(LOCAL), local_dir, &mut st).unwrap()
    };
    let with_dir = |dir: &str| ASTERISK.replace("a=sendrecv", dir);

    let (a, n) = go(with_dir("a=sendrecv"), Direction::SendRecv);
    assert_eq!((a.origin.session_version, n.direction), (100, Direction::SendRecv));

    // The peer holds us: sendonly → we answer recvonly.
    let (a, n) = go(with_dir("a=sendonly"), Direction::SendRecv);
    assert_eq!((a.origin.session_version, n.direction), (101, Direction::RecvOnly));
    assert_eq!(a.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(n.remote, Some(sa("203.0.113.10:14562")));

    // inactive → inactive; recvonly → sendonly.
    let (a, n) = go(with_dir("a=inactive"), Direction::SendRecv);
    assert_eq!(
        (a.media[0].direction(), n.direction),
        (Some(Direction::Inactive), Direction::Inactive)
    );
    let (_, n) = go(with_dir("a=recvonly"), Direction::SendRecv);
    assert_eq!(n.direction, Direction::SendOnly);

    // Resume.
    let (a, n) = go(with_dir("a=sendrecv"), Direction::SendRecv);
    assert_eq!((a.origin.session_version, n.direction), (104, Direction::SendRecv));
    assert_eq!(a.origin.session_id, 100);

    // We are holding: a sendrecv offer gets sendonly; a sendonly one gets inactive.
    let (_, n) = go(with_dir("a=sendrecv"), Direction::SendOnly);
    assert_eq!(n.direction, Direction::SendOnly);
    let (_, n) = go(with_dir("a=sendonly"), Direction::SendOnly);
    assert_eq!(n.direction, Direction::Inactive);
}

#[test]
fn hold_by_zero_address() {
    let (ans, neg) = answer_ok(HOLD_ZERO_ADDR, &LocalCapabilities::default());
    assert_eq!(neg.remote, None);
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert_eq!(ans.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(
        ans.connection.as_ref().unwrap().address,
        "203.0.113.5",
        "our own address stays real"
    );

    let inactive = HOLD_ZERO_ADDR.replace("a=fmtp:101 0-16\n", "a=fmtp:101 0-16\na=recvonly\n");
    let (_, neg) = answer_ok(&inactive, &LocalCapabilities::default());
    assert_eq!(neg.direction, Direction::Inactive);
}

// ---------------------------------------------------------------------------------------
// Offering and accepting answers

#[test]
fn offer_exact_text() {
    let mut st = SessionState::new(77);
    let o = offer(
        &LocalCapabilities::default(),
        sa("198.51.100.20:40000"),
        Direction::SendRecv,
        &mut st,
    );
    assert_eq!(
        o.to_string(),
        "v=0\r\n\
         o=- 77 77 IN IP4 198.51.100.20\r\n\
         s=-\r\n\
         c=IN IP4 198.51.100.20\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    let hold = offer(
        &LocalCapabilities::default(),
        sa("198.51.100.20:40000"),
        Direction::SendOnly,
        &mut st,
    );
    assert_eq!(hold.origin.session_version, 78);
    assert_eq!(hold.audio().unwrap().direction, Direction::SendOnly);
    assert_eq!(hold.audio().unwrap().addr, Some(sa("198.51.100.20:40000")));
}

#[test]
fn offer_telephone_event_per_clock_rate_and_free_pt() {
    let mut st = SessionState::new(1);
    let ours = caps(vec![Codec::opus(101), Codec::g722(), Codec::pcmu()]);
    let o = offer(&ours, sa(LOCAL), Direction::SendRecv, &mut st);
    let a = o.audio().unwrap();
    let events: Vec<_> = a
        .codecs
        .iter()
        .filter(|c| c.is_telephone_event())
        .map(|c| (c.payload_type, c.clock_rate))
        .collect();
    assert_eq!(events, [(102, 8000), (103, 48000)], "101 is taken by opus");
    assert_eq!(a.codecs[0], Codec::opus(101));
}

#[test]
fn accept_answer_from_asterisk() {
    let mut st = SessionState::new(9);
    let ours = caps(vec![Codec::g722(), Codec::pcmu(), Codec::pcma()]);
    let o = offer(&ours, sa(LOCAL), Direction::SendRecv, &mut st);
    let ans = ASTERISK_ANSWER;
    let neg = accept_answer(&o, &parse(ans)).unwrap();
    assert_eq!(neg.codec, Codec::pcma(), "first format of the answer that we offered");
    assert_eq!(neg.telephone_event, Some(101));
    assert_eq!(neg.remote, Some(sa("203.0.113.10:14562")));
    assert_eq!(neg.direction, Direction::SendRecv);
    assert_eq!((neg.ptime, neg.maxptime), (20, Some(150)));

    // An answer may narrow the direction: the answerer only sends, so we only receive.
    let held = accept_answer(&o, &parse(&ans.replace("a=sendrecv", "a=sendonly"))).unwrap();
    assert_eq!(held.direction, Direction::RecvOnly);
    // We offered sendonly (we hold); the answer says recvonly.
    let hold_offer = offer(&ours, sa(LOCAL), Direction::SendOnly, &mut st);
    let n = accept_answer(&hold_offer, &parse(&ans.replace("a=sendrecv", "a=recvonly"))).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    // An answerer that ignores our sendonly and says sendrecv does not make us receive.
    let n = accept_answer(&hold_offer, &parse(ans)).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
}

#[test]
fn accept_answer_errors() {
    let mut st = SessionState::new(9);
    let o = offer(&LocalCapabilities::default(), sa(LOCAL), Direction::SendRecv, &mut st);
    let base = "v=0\no=- 5 5 IN IP4 10.0.0.2\ns=-\nc=IN IP4 10.0.0.2\nt=0 0\n";

    let rejected = format!("{base}m=audio 0 RTP/AVP 0\n");
    assert_eq!(accept_answer(&o, &parse(&rejected)).unwrap_err(), SdpError::AudioRejected);

    let other_codec = format!("{base}m=audio 5000 RTP/AVP 9\n");
    assert_eq!(accept_answer(&o, &parse(&other_codec)).unwrap_err(), SdpError::NoCommonCodec);

    let extra = format!("{base}m=audio 5000 RTP/AVP 0\nm=video 0 RTP/AVP 96\n");
    assert!(matches!(accept_answer(&o, &parse(&extra)).unwrap_err(), SdpError::AnswerMismatch(_)));

    let wrong_kind = format!("{base}m=video 5000 RTP/AVP 0\n");
    assert!(matches!(
        accept_answer(&o, &parse(&wrong_kind)).unwrap_err(),
        SdpError::AnswerMismatch(_)
    ));

    // No telephone-event in the answer: none negotiated.
    let plain = format!("{base}m=audio 5000 RTP/AVP 0\n");
    assert_eq!(accept_answer(&o, &parse(&plain)).unwrap().telephone_event, None);
}

#[test]
fn offer_answer_loop_between_two_switchboards() {
    let mut alice = SessionState::new(1);
    let mut bob = SessionState::new(2);
    let a_caps =
        caps(vec![Codec::opus(111).with_fmtp("useinbandfec=1"), Codec::g722(), Codec::pcmu()]);
    let b_caps = caps(vec![Codec::g722(), Codec::pcmu()]);
    let o = offer(&a_caps, sa("10.0.0.1:4000"), Direction::SendRecv, &mut alice);
    let (ans, b_neg) =
        answer(&parse(&o.to_string()), &b_caps, sa("10.0.0.2:6000"), Direction::SendRecv, &mut bob)
            .unwrap();
    let a_neg = accept_answer(&o, &parse(&ans.to_string())).unwrap();
    assert_eq!(a_neg.codec, Codec::g722());
    assert_eq!(b_neg.codec, Codec::g722());
    assert_eq!(a_neg.telephone_event, b_neg.telephone_event);
    assert_eq!(a_neg.telephone_event, Some(101));
    assert_eq!(a_neg.remote, Some(sa("10.0.0.2:6000")));
    assert_eq!(b_neg.remote, Some(sa("10.0.0.1:4000")));

    // Alice puts Bob on hold with a re-INVITE, then resumes.
    let hold = offer(&a_caps, sa("10.0.0.1:4000"), Direction::SendOnly, &mut alice);
    assert_eq!(hold.origin.session_version, o.origin.session_version + 1);
    let (ans, b_neg) =
        answer(&hold, &b_caps, sa("10.0.0.2:6000"), Direction::SendRecv, &mut bob).unwrap();
    assert_eq!(b_neg.direction, Direction::RecvOnly);
    assert_eq!(accept_answer(&hold, &ans).unwrap().direction, Direction::SendOnly);
    let resume = offer(&a_caps, sa("10.0.0.1:4000"), Direction::SendRecv, &mut alice);
    let (ans, b_neg) =
        answer(&resume, &b_caps, sa("10.0.0.2:6000"), Direction::SendRecv, &mut bob).unwrap();
    assert_eq!(b_neg.direction, Direction::SendRecv);
    assert_eq!(accept_answer(&resume, &ans).unwrap().direction, Direction::SendRecv);
}

// ---------------------------------------------------------------------------------------
// Robustness

/// xorshift64*: a tiny deterministic PRNG so the test needs no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to hit parser edge cases.
const INTERESTING: &[&[u8]] = &[
    b"=",
    b":",
    b"/",
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b"\r\n",
    b"0",
    b"9",
    b"65536",
    b"-1",
    b"127",
    b"128",
    b"18446744073709551616",
    b"0.0.0.0",
    b"::",
    b"m=audio ",
    b"a=rtpmap:",
    b"a=fmtp:",
    b"a=ptime:",
    b"a=rtcp:",
    b"a=sendonly",
    b"c=IN IP4 ",
    b"RTP/AVP",
    b"telephone-event/",
    b"/0",
    b"\xc3\xa9",
    b"\xff",
    b"\0",
    b"\xe2\x80\x83",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let pos = rng.below(b.len() + 1);
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = pos.min(b.len() - 1);
                b[i] = rng.next() as u8;
            }
            1 if pos < b.len() => {
                let end = (pos + 1 + rng.below(16)).min(b.len());
                b.drain(pos..end);
            }
            2 => {
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(pos..pos, ins.iter().copied());
            }
            3 => {
                // Duplicate a line somewhere else.
                let text = b.clone();
                let lines: Vec<&[u8]> = text.split(|c| *c == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                b.splice(pos..pos, line.into_iter().chain([b'\n']));
            }
            4 => b.truncate(pos),
            5 if pos < b.len() => {
                let c = b[pos];
                b[pos] = c.wrapping_add(1 + rng.below(3) as u8);
            }
            _ => {
                let digit = b'0' + rng.below(10) as u8;
                b.insert(pos, digit);
            }
        }
    }
    b
}

#[test]
fn random_mutations_never_panic_and_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let caps_list = [
        LocalCapabilities::default(),
        caps(vec![Codec::opus(111), Codec::g722(), Codec::pcmu()]),
        LocalCapabilities { codecs: vec![], telephone_event: true },
    ];
    let mut parsed = 0;
    for round in 0..20_000 {
        let (_, sample) = SAMPLES[round % SAMPLES.len()];
        let wire = if round % 2 == 0 { crlf(sample) } else { sample.to_string() };
        let bytes = mutate(&mut rng, wire.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        let Ok(sd) = SessionDescription::parse(&text) else { continue };
        parsed += 1;
        // Printing is a fixpoint of parsing.
        let printed = sd.to_string();
        let again = SessionDescription::parse(&printed)
            .unwrap_or_else(|e| panic!("{e}\n{text:?}\n{printed:?}"));
        assert_eq!(again, sd, "{text:?}");
        assert_eq!(again.to_string(), printed);

        let _ = sd.audio();
        for i in 0..sd.media.len() {
            let _ = sd.media_info(i);
        }
        let caps = &caps_list[round % caps_list.len()];
        let mut st = SessionState::new(u64::MAX - 1);
        if let Ok((ans, neg)) =
            answer_prefer_offerer(&sd, caps, sa(LOCAL), Direction::SendRecv, &mut st)
        {
            assert_eq!(ans.media.len(), sd.media.len());
            let reparsed = parse(&ans.to_string());
            assert_eq!(reparsed, ans);
            let info =
                ans.media.iter().position(|m| m.port != 0).and_then(|i| ans.media_info(i)).unwrap();
            assert_eq!(info.codecs[0].payload_type, neg.codec.payload_type);
        }
        let ours = offer(caps, sa(LOCAL), Direction::SendRecv, &mut st);
        let _ = accept_answer(&ours, &sd);
        let _ = accept_answer(&sd, &ours);
    }
    assert!(parsed > 2_000, "mutations too destructive to be useful: {parsed} parsed");
}
