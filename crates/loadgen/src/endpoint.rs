//! What the callers' UAC ([`crate::ua`]) and the callees' UAS ([`crate::uas`]) do
//! alike: open their SIP socket, name themselves in Contact, and answer an INVITE with
//! a 200 carrying SDP.

use crate::sys;
use sip::{NameAddr, Request, Response, Uri};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// A non-blocking UDP socket on `local`, and the address it got (port 0 picks one).
/// Its receive buffer is large: thousands of calls answer in bursts, and a datagram
/// the kernel drops is a retransmission later.
pub fn bind_sip_socket(local: SocketAddrV4) -> std::io::Result<(UdpSocket, SocketAddrV4)> {
    let sock = UdpSocket::bind(local)?;
    sock.set_nonblocking(true)?;
    sys::set_rcvbuf(sock.as_raw_fd(), 8 << 20);
    match sock.local_addr()? {
        SocketAddr::V4(a) => Ok((sock, a)),
        SocketAddr::V6(_) => unreachable!("bound to IPv4"),
    }
}

/// Our Contact: `sip:user@` the socket's address.
pub fn contact(user: &str, local: SocketAddrV4) -> NameAddr {
    NameAddr::new(Uri::sip(
        Some(user),
        &local.ip().to_string(),
        Some(local.port()),
    ))
}

/// The 200 to INVITE `r` with `sdp` as its body and `contact` as the dialog's remote
/// target; `to_tag` is ours when the 200 creates the dialog (None: To has one already).
pub fn ok_with_sdp(r: &Request, to_tag: Option<&str>, contact: NameAddr, sdp: Vec<u8>) -> Response {
    let mut resp = r.response(200, to_tag);
    resp.headers.contact = vec![contact];
    resp.headers.content_type = Some("application/sdp".into());
    resp.body = sdp;
    resp
}
