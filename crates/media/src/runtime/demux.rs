//! Shared-port mode: which leg an inbound datagram belongs to.
//!
//! In [`PortMode::Shared`](super::PortMode::Shared) every leg of a worker advertises
//! the worker's one RTP port, so the source address is all that tells the legs apart.
//! [`Demux`] is that worker's table; it is sans-IO (the worker asks it, per datagram,
//! which leg to hand the datagram to) and is only touched by its worker's thread.
//!
//! # The rule
//!
//! RTP (datagrams on the worker's RTP port):
//!
//! 1. A source latched to a leg goes to that leg. This is the per-packet path: one
//!    hash lookup, no allocation.
//! 2. An unknown source is offered to the worker's legs that have not latched yet
//!    (symmetric RTP: a leg takes the source its media really comes from, which behind
//!    a NAT is not the address in its SDP), in this order:
//!    1. the unlatched leg whose SDP address is exactly the source (no NAT);
//!    2. else the only unlatched leg whose SDP port is the source's port (a NAT that
//!       keeps ports, SDP with the private address);
//!    3. else the only unlatched leg of the worker, whatever its SDP says (a NAT that
//!       rewrites ports, or a leg configured without a remote: "latch from the first
//!       packet").
//!
//!    Steps 2.2 and 2.3 guess, so they wait for a source's second packet: a single
//!    stray datagram (a late packet of an ended call, a scan) latches nothing, and a
//!    leg whose setup the worker has not applied yet when its first packet is read
//!    cannot be mistaken for the lone unlatched leg. A NATed leg loses its first
//!    packet (20 ms). Sources seen once are remembered in a set of at most
//!    [`SEEN_ONCE_MAX`] addresses, cleared when full.
//!
//!    The chosen leg latches: the source is its address from then on, for receiving
//!    here and, in the media core, for sending. When nothing matches (several
//!    candidates, or none) the datagram is dropped and counted in
//!    [`Demux::unmatched`]; the leg latches on a later packet once the ambiguity is
//!    gone (the other legs latched to their own sources).
//! 3. A leg whose SDP address changes (re-INVITE towards another endpoint) unlatches
//!    and goes through step 2 again, exactly as [`crate::leg::Leg`] does in per-leg mode.
//!
//! RTCP (datagrams on the worker's RTCP port): the leg whose latched RTP source has
//! the same IP and the port one below (RFC 3550's RTP+1 convention); anything else is
//! dropped and counted. RTCP only feeds statistics, so a NAT that breaks the +1 pairing
//! loses reports, not audio.
//!
//! Order matters for step 2.1: the worker applies a leg's AddLeg and Configure before
//! it reads the sockets again, and the engine queues both before it sends the SDP
//! answer, so a leg's first packet normally finds its SDP address already here.
//!
//! Limits, compared with per-leg mode: two legs cannot share one source address (the
//! first one latched keeps it); a latched leg does not follow a source that moves
//! (NAT rebinding mid-call): the new source is unknown and only latches if the leg is
//! unlatched again by a re-INVITE; and a leg whose remote is learnt late (an offer in
//! the ACK) relies on steps 2.2-2.3 for packets sent before that.
//!
//! Cost: a known source is one hash lookup (FxHash, see `fastmap`); an unknown one three `BTreeSet`
//! range lookups (O(log legs)), so spraying the port with junk costs little.

use crate::engine::LegId;
use crate::fastmap::{FastMap, FxHasher};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;

/// Most unknown sources remembered as seen once (see the module docs).
pub const SEEN_ONCE_MAX: usize = 4096;

/// What the table knows about one leg.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Remote RTP address from SDP (`None`: latch from the first packet).
    sdp: Option<SocketAddr>,
    /// The source it latched to.
    source: Option<SocketAddr>,
}

/// The source-address table of one worker in shared-port mode.
#[derive(Default)]
pub(crate) struct Demux {
    /// Latched sources.
    by_source: FastMap<SocketAddr, LegId>,
    legs: HashMap<LegId, Entry>,
    /// Unlatched legs, by SDP address, by SDP port, and all of them.
    unlatched_by_addr: BTreeSet<(SocketAddr, LegId)>,
    unlatched_by_port: BTreeSet<(u16, LegId)>,
    unlatched: BTreeSet<LegId>,
    /// Unknown sources that sent one datagram so far (steps 2.2 and 2.3 wait for two).
    seen_once: HashSet<SocketAddr, BuildHasherDefault<FxHasher>>,
    /// Datagrams dropped because no leg matched their source.
    pub unmatched: u64,
}

impl Demux {
    /// A new leg, unlatched and without an SDP address yet.
    pub fn add(&mut self, leg: LegId) {
        self.remove(leg);
        self.legs.insert(leg, Entry::default());
        self.unlatched.insert(leg);
    }

    /// The leg's remote from offer/answer. A changed address unlatches the leg.
    pub fn configure(&mut self, leg: LegId, sdp: Option<SocketAddr>) {
        let Some(&e) = self.legs.get(&leg) else { return };
        if e.sdp == sdp {
            return;
        }
        self.unlink(leg, e);
        self.legs.insert(leg, Entry { sdp, source: None });
        self.link_unlatched(leg, sdp);
    }

    pub fn remove(&mut self, leg: LegId) {
        if let Some(e) = self.legs.remove(&leg) {
            self.unlink(leg, e);
        }
    }

    /// Legs in the table.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// The leg an RTP datagram from `from` belongs to, latching one if the source is
    /// new (see the module docs). `None`: dropped, counted.
    pub fn rtp_leg(&mut self, from: SocketAddr) -> Option<LegId> {
        if let Some(&leg) = self.by_source.get(&from) {
            return Some(leg);
        }
        let chosen = match self.exact_unlatched(from) {
            Some(leg) => Some(leg),
            None if self.seen_once.contains(&from) => {
                let leg = self.guess_unlatched(from);
                if leg.is_some() {
                    self.seen_once.remove(&from);
                }
                leg
            }
            None => {
                if self.seen_once.len() >= SEEN_ONCE_MAX {
                    self.seen_once.clear();
                }
                self.seen_once.insert(from);
                None
            }
        };
        let Some(leg) = chosen else {
            self.unmatched += 1;
            return None;
        };
        let e = self.legs[&leg];
        self.unlink(leg, e);
        self.legs.insert(leg, Entry { sdp: e.sdp, source: Some(from) });
        self.by_source.insert(from, leg);
        Some(leg)
    }

    /// The leg an RTCP datagram from `from` belongs to: the one latched to the RTP
    /// source one port below. `None`: dropped, counted.
    pub fn rtcp_leg(&mut self, from: SocketAddr) -> Option<LegId> {
        let rtp = from.port().checked_sub(1).map(|p| SocketAddr::new(from.ip(), p));
        let leg = rtp.and_then(|a| self.by_source.get(&a).copied());
        if leg.is_none() {
            self.unmatched += 1;
        }
        leg
    }

    /// Step 2.1: the unlatched leg whose SDP address is the source.
    fn exact_unlatched(&self, from: SocketAddr) -> Option<LegId> {
        let (lo, hi) = (LegId(0), LegId(u64::MAX));
        self.unlatched_by_addr.range((from, lo)..=(from, hi)).next().map(|&(_, leg)| leg)
    }

    /// Steps 2.2 and 2.3: the only unlatched leg on the source's port, else the only
    /// unlatched leg.
    fn guess_unlatched(&self, from: SocketAddr) -> Option<LegId> {
        let (lo, hi) = (LegId(0), LegId(u64::MAX));
        let mut same_port = self.unlatched_by_port.range((from.port(), lo)..=(from.port(), hi));
        if let (Some(&(_, leg)), None) = (same_port.next(), same_port.next()) {
            return Some(leg);
        }
        if self.unlatched.len() == 1 {
            return self.unlatched.first().copied();
        }
        None
    }

    fn link_unlatched(&mut self, leg: LegId, sdp: Option<SocketAddr>) {
        self.unlatched.insert(leg);
        if let Some(a) = sdp {
            self.unlatched_by_addr.insert((a, leg));
            self.unlatched_by_port.insert((a.port(), leg));
        }
    }

    /// Take the leg out of every index (its `legs` entry stays).
    fn unlink(&mut self, leg: LegId, e: Entry) {
        match e.source {
            Some(src) => {
                if self.by_source.get(&src) == Some(&leg) {
                    self.by_source.remove(&src);
                }
            }
            None => {
                self.unlatched.remove(&leg);
                if let Some(a) = e.sdp {
                    self.unlatched_by_addr.remove(&(a, leg));
                    self.unlatched_by_port.remove(&(a.port(), leg));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn table(legs: &[(u64, Option<&str>)]) -> Demux {
        let mut d = Demux::default();
        for &(id, sdp) in legs {
            d.add(LegId(id));
            d.configure(LegId(id), sdp.map(addr));
        }
        d
    }

    #[test]
    fn exact_sdp_address_wins_and_latches_at_once() {
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, Some("10.0.0.2:4000")), (3, Some("10.0.0.3:5000"))]);
        assert_eq!(d.rtp_leg(addr("10.0.0.2:4000")), Some(LegId(2)));
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        // Latched: later packets take the fast path, again and again.
        for _ in 0..3 {
            assert_eq!(d.rtp_leg(addr("10.0.0.2:4000")), Some(LegId(2)));
        }
        assert_eq!(d.unmatched, 0);
    }

    #[test]
    fn nat_keeping_ports_matches_by_port_from_the_second_packet() {
        // SDP says a private address; packets come from the NAT's public one.
        let mut d = table(&[(1, Some("192.168.1.5:4000")), (2, Some("192.168.1.6:4002"))]);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4002")), None, "a guess waits for a second packet");
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4002")), Some(LegId(2)));
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4002")), Some(LegId(2)));
        // Leg 1 is now the only unlatched leg: a source sending twice goes to it (rule 3).
        assert_eq!(d.rtp_leg(addr("198.51.100.1:61000")), None);
        assert_eq!(d.rtp_leg(addr("198.51.100.1:61000")), Some(LegId(1)));
        // Both latched: a stranger matches nothing, however often it sends.
        assert_eq!(d.rtp_leg(addr("198.51.100.9:4000")), None);
        assert_eq!(d.rtp_leg(addr("198.51.100.9:4000")), None);
        assert_eq!(d.unmatched, 4);
    }

    #[test]
    fn a_single_stray_packet_latches_nothing() {
        // The lone unlatched leg's own first packet is still to come; a stray datagram
        // from elsewhere must not take the leg.
        let mut d = table(&[(1, Some("10.0.0.1:4000"))]);
        assert_eq!(d.rtp_leg(addr("198.51.100.7:5555")), None);
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        assert_eq!(d.rtp_leg(addr("198.51.100.7:5555")), None);
    }

    #[test]
    fn ambiguous_port_is_dropped_until_it_is_not() {
        let mut d = table(&[(1, Some("192.168.1.5:4000")), (2, Some("192.168.7.9:4000")), (3, Some("10.0.0.3:6000"))]);
        // Two unlatched legs on port 4000, three unlatched in all: no way to tell.
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4000")), None);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4000")), None);
        assert_eq!(d.unmatched, 2);
        // Legs 2 and 3 latch exactly; then leg 1 is the only candidate left.
        assert_eq!(d.rtp_leg(addr("192.168.7.9:4000")), Some(LegId(2)));
        assert_eq!(d.rtp_leg(addr("10.0.0.3:6000")), Some(LegId(3)));
        assert_eq!(d.rtp_leg(addr("203.0.113.7:4000")), Some(LegId(1)));
    }

    #[test]
    fn only_unlatched_leg_takes_any_source() {
        let mut d = table(&[(1, None)]);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:1234")), None);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:1234")), Some(LegId(1)));
        // With two unlatched legs and no address or port match, nobody gets it.
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, None)]);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:1234")), None);
        assert_eq!(d.rtp_leg(addr("203.0.113.7:1234")), None);
        assert_eq!(d.unmatched, 2);
    }

    #[test]
    fn rtcp_follows_the_latched_rtp_source() {
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, Some("10.0.0.2:4000"))]);
        // Before latching, RTCP matches nothing.
        assert_eq!(d.rtcp_leg(addr("10.0.0.1:4001")), None);
        d.rtp_leg(addr("10.0.0.1:4000"));
        assert_eq!(d.rtcp_leg(addr("10.0.0.1:4001")), Some(LegId(1)));
        assert_eq!(d.rtcp_leg(addr("10.0.0.2:4001")), None);
        assert_eq!(d.rtcp_leg(addr("10.0.0.1:0")), None);
        assert_eq!(d.unmatched, 3);
    }

    #[test]
    fn new_sdp_address_unlatches_and_release_forgets() {
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, Some("10.0.0.2:4000"))]);
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        // Same SDP again (a re-INVITE for hold): still latched.
        d.configure(LegId(1), Some(addr("10.0.0.1:4000")));
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        // Moved to another endpoint: the old source is unknown now, the new one latches.
        d.configure(LegId(1), Some(addr("10.0.0.9:7000")));
        assert_eq!(d.rtp_leg(addr("10.0.0.9:7000")), Some(LegId(1)));
        // The old source of leg 1 is unknown now; from its second packet, leg 2 (same
        // SDP port, and the only unlatched leg) takes it.
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), None);
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(2)));
        d.remove(LegId(1));
        d.remove(LegId(2));
        assert_eq!(d.len(), 0);
        assert_eq!(d.rtp_leg(addr("10.0.0.9:7000")), None);
        assert!(d.by_source.is_empty() && d.unlatched.is_empty());
        assert!(d.unlatched_by_addr.is_empty() && d.unlatched_by_port.is_empty());
    }

    #[test]
    fn a_source_latched_by_one_leg_is_not_stolen() {
        // Two legs with the same SDP address (one endpoint, two calls, one port).
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, Some("10.0.0.1:4000"))]);
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(1)));
        // Releasing leg 1 frees the source for leg 2.
        d.remove(LegId(1));
        assert_eq!(d.rtp_leg(addr("10.0.0.1:4000")), Some(LegId(2)));
    }

    #[test]
    fn sources_seen_once_are_bounded() {
        let mut d = table(&[(1, Some("10.0.0.1:4000")), (2, Some("10.0.0.2:4000"))]);
        for i in 0..3 * SEEN_ONCE_MAX as u32 {
            let junk = SocketAddr::from((std::net::Ipv4Addr::from(0x0a01_0000 + i), 9));
            assert_eq!(d.rtp_leg(junk), None);
        }
        assert!(d.seen_once.len() <= SEEN_ONCE_MAX);
        assert_eq!(d.rtp_leg(addr("10.0.0.2:4000")), Some(LegId(2)), "exact matches unaffected");
    }
}
