//! Feeds arbitrary bytes to the SIP parser, both as a datagram and as a stream, and
//! checks that every accepted message survives print → reparse unchanged and that
//! salvaged errors yield a well-formed 400. Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::parse::{
    frame_stream, parse_datagram, parse_name_addr, parse_stream_message, parse_uri, parse_via,
    Frame,
};
use sip::Message;

fn round_trip(m: &Message) {
    let wire = m.to_bytes();
    let again = match parse_datagram(&wire) {
        Ok(again) => again,
        Err(e) => panic!(
            "printed message does not reparse ({}):\n{}",
            e.reason,
            String::from_utf8_lossy(&wire)
        ),
    };
    assert_eq!(
        &again,
        m,
        "round trip changed the message:\n{}",
        String::from_utf8_lossy(&wire)
    );
    assert_eq!(again.to_bytes(), wire, "printing is not stable");
    assert_eq!(frame_stream(&wire), Ok(Frame::Message(wire.len())));
}

fuzz_target!(|data: &[u8]| {
    match parse_datagram(data) {
        Ok(m) => round_trip(&m),
        Err(e) => {
            if let Some(s) = e.salvage {
                let out = s.bad_request(&e.reason, "fuzz");
                assert!(out.starts_with(b"SIP/2.0 400 ") && out.ends_with(b"\r\n\r\n"));
            }
        }
    }

    // Stream: frame repeatedly, as a connection reader would.
    let mut at = 0;
    while at < data.len() {
        match frame_stream(&data[at..]) {
            Ok(Frame::KeepAlive(n)) => {
                assert!(n > 0 && at + n <= data.len());
                at += n;
            }
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && at + n <= data.len());
                if let Ok(m) = parse_stream_message(&data[at..at + n]) {
                    round_trip(&m);
                }
                at += n;
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        }
    }

    // Header-value parsers on their own.
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(u) = parse_uri(s) {
            assert_eq!(parse_uri(&u.to_string()), Ok(u));
        }
        if let Ok(na) = parse_name_addr(s) {
            assert_eq!(parse_name_addr(&na.to_string()), Ok(na));
        }
        // Digest credentials: never panic; a parsed one has its mandatory fields.
        if let Ok(c) = sip::digest::Credentials::parse(s) {
            let _ = (c.nonce_count(), c.algorithm());
        }
        if let Ok(vias) = parse_via(s) {
            for v in vias {
                assert_eq!(parse_via(&v.to_string()), Ok(vec![v]));
            }
        }
    }
});
