//! Where responses go: the top Via's `received`/`rport` (RFC 3261 §18.2.1–§18.2.2,
//! RFC 3581). Incoming requests are stamped once on arrival so that responses the TU
//! builds from them carry the parameters too.

use crate::message::{Peer, Transport, Via};
use crate::uri::Params;
use std::net::{IpAddr, SocketAddr};

/// Default port of a Via sent-by without one.
pub(crate) fn default_port(t: Transport) -> u16 {
    match t {
        Transport::Tls | Transport::Wss => 5061,
        _ => 5060,
    }
}

/// Stamps the top Via of a request received from `from`: `received=<source ip>` when
/// the sent-by host is not that IP (§18.2.1), and when `rport` came without a value,
/// `rport=<source port>` plus `received` unconditionally (RFC 3581 §4).
pub fn stamp_via(via: &mut Via, from: Peer) {
    let src_ip = from.addr.ip();
    let rport_empty = matches!(via.param("rport"), Some(None));
    if rport_empty {
        via.set_param("rport", Some(&from.addr.port().to_string()));
    }
    if rport_empty || host_ip(&via.host) != Some(src_ip) {
        via.set_param("received", Some(&src_ip.to_string()));
    }
}

/// Where responses to a request with this (stamped) top Via go. Reliable: back over the
/// connection it came on. UDP: with `rport`, the source address; otherwise `received`
/// (else the source IP) and the sent-by port. `maddr` is not supported.
pub fn response_peer(via: &Via, from: Peer) -> Peer {
    if from.transport.is_reliable() || via.param("rport").is_some() {
        return from;
    }
    let ip = via.received().and_then(host_ip).unwrap_or(from.addr.ip());
    let port = via.port.unwrap_or(default_port(via.transport));
    Peer {
        addr: SocketAddr::new(ip, port),
        transport: from.transport,
    }
}

/// The IP of a host literal (`192.0.2.1`, `[2001:db8::1]`, or bare IPv6), or None for
/// a name.
fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Param;

    fn via(host: &str, port: Option<u16>, params: &[(&str, Option<&str>)]) -> Via {
        Via {
            transport: Transport::Udp,
            host: host.into(),
            port,
            params: params.iter().map(|(n, v)| Param::new(*n, *v)).collect(),
        }
    }
    fn udp(s: &str) -> Peer {
        Peer {
            addr: s.parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn same_ip_gets_nothing() {
        let mut v = via("192.0.2.1", Some(5070), &[("branch", Some("z9hG4bK1"))]);
        stamp_via(&mut v, udp("192.0.2.1:5070"));
        assert_eq!(v.received(), None);
        assert_eq!(
            response_peer(&v, udp("192.0.2.1:5070")),
            udp("192.0.2.1:5070")
        );
    }

    #[test]
    fn name_gets_received_and_via_port() {
        let mut v = via("pc.example.com", None, &[]);
        let from = udp("192.0.2.9:40000");
        stamp_via(&mut v, from);
        assert_eq!(v.received(), Some("192.0.2.9"));
        assert_eq!(v.rport(), None);
        assert_eq!(response_peer(&v, from), udp("192.0.2.9:5060"));
    }

    #[test]
    fn rport_fills_port_and_received() {
        let mut v = via("192.0.2.9", Some(5060), &[("rport", None)]);
        let from = udp("192.0.2.9:40000");
        stamp_via(&mut v, from);
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(v.received(), Some("192.0.2.9"));
        assert_eq!(response_peer(&v, from), from);
    }

    #[test]
    fn ipv6_literal_matches() {
        let mut v = via("[2001:db8::1]", None, &[]);
        stamp_via(&mut v, udp("[2001:db8::1]:5060"));
        assert_eq!(v.received(), None);
    }

    #[test]
    fn reliable_goes_back_on_connection() {
        let v = via("10.0.0.1", Some(5060), &[]);
        let from = Peer {
            addr: "192.0.2.9:40000".parse().unwrap(),
            transport: Transport::Tcp,
        };
        assert_eq!(response_peer(&v, from), from);
    }
}
