//! RTCP (RFC 3550 section 6): the sender/receiver reports each leg sends on its RTCP
//! port about every 5 s, and parsing of what the remote sends (SR, RR, BYE) into
//! [`RemoteReport`] so that loss, jitter and round-trip time are known per leg.
//!
//! Why so small: we need reports that keep endpoints and monitoring happy (compound
//! packet SR|RR + SDES CNAME) and the handful of numbers for stats; no feedback
//! messages (RTPFB/PSFB), which audio conferencing does not use.

use crate::rtp::RtpReceiveStats;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

/// Nominal report interval (RFC 3550 6.2 minimum for small sessions).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// 64-bit NTP timestamp of the wall clock now.
pub fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// What we know about our outgoing stream when building an SR.
#[derive(Copy, Clone, Debug)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// What the remote told us in its reports.
#[derive(Clone, Debug, Default)]
pub struct RemoteReport {
    /// Middle 32 bits of the NTP timestamp of the last SR received, and when.
    pub last_sr: Option<(u32, Instant)>,
    /// From the remote's report block about our stream.
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub jitter: u32,
    /// Round-trip time from LSR/DLSR, when the remote echoed one of our SRs.
    pub rtt: Option<Duration>,
    pub bye: bool,
    pub reports_received: u32,
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Build a compound RTCP packet (SR when we sent media since the last report, else RR;
/// one report block about the remote's stream if we received any; SDES CNAME) into
/// `out`, which must hold at least 128 bytes. Returns the length.
pub fn build_report(
    out: &mut [u8],
    ssrc: u32,
    sender: Option<SenderInfo>,
    rx: &mut RtpReceiveStats,
    remote: &RemoteReport,
    now: Instant,
    cname: &str,
) -> usize {
    let with_block = rx.ssrc.is_some();
    let rc = with_block as u8;
    let mut at = 0;
    let pt = if sender.is_some() { PT_SR } else { PT_RR };
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * rc as usize;
    out[0] = 0x80 | rc;
    out[1] = pt;
    out[2..4].copy_from_slice(&(words as u16).to_be_bytes());
    put_u32(out, 4, ssrc);
    at += 8;
    if let Some(s) = sender {
        put_u32(out, at, (s.ntp >> 32) as u32);
        put_u32(out, at + 4, s.ntp as u32);
        put_u32(out, at + 8, s.rtp_timestamp);
        put_u32(out, at + 12, s.packets);
        put_u32(out, at + 16, s.octets);
        at += 20;
    }
    if let Some(remote_ssrc) = rx.ssrc {
        put_u32(out, at, remote_ssrc);
        let lost = rx.cumulative_lost() as u32 & 0x00ff_ffff;
        put_u32(out, at + 4, ((rx.take_fraction_lost() as u32) << 24) | lost);
        put_u32(out, at + 8, rx.extended_max());
        put_u32(out, at + 12, rx.jitter());
        let (lsr, dlsr) = match remote.last_sr {
            Some((mid, at_time)) => {
                let d = now.saturating_duration_since(at_time);
                (mid, (d.as_secs_f64() * 65536.0) as u32)
            }
            None => (0, 0),
        };
        put_u32(out, at + 16, lsr);
        put_u32(out, at + 20, dlsr);
        at += 24;
    }
    // SDES with one chunk: SSRC, CNAME item, END, padded to a word.
    let name = &cname.as_bytes()[..cname.len().min(64)];
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out[at] = 0x81;
    out[at + 1] = PT_SDES;
    out[at + 2..at + 4].copy_from_slice(&((padded / 4) as u16).to_be_bytes());
    put_u32(out, at + 4, ssrc);
    out[at + 8] = 1; // CNAME
    out[at + 9] = name.len() as u8;
    out[at + 10..at + 10 + name.len()].copy_from_slice(name);
    for b in &mut out[at + 10 + name.len()..at + 4 + padded] {
        *b = 0;
    }
    at + 4 + padded
}

/// Parse a compound RTCP packet and fold what it says into `remote`. `our_ssrc`
/// selects the report block about our stream. Malformed trailing parts are ignored.
pub fn parse_into(buf: &[u8], our_ssrc: u32, now: Instant, remote: &mut RemoteReport) {
    let mut at = 0;
    let mut any = false;
    while at + 4 <= buf.len() {
        if buf[at] >> 6 != 2 {
            return;
        }
        let count = (buf[at] & 0x1f) as usize;
        let pt = buf[at + 1];
        let len = (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize + 1) * 4;
        if at + len > buf.len() {
            return;
        }
        let p = &buf[at..at + len];
        let blocks_at = match pt {
            PT_SR if p.len() >= 28 => {
                let mid = u32::from_be_bytes([p[10], p[11], p[12], p[13]]);
                remote.last_sr = Some((mid, now));
                any = true;
                Some(28)
            }
            PT_RR if p.len() >= 8 => {
                any = true;
                Some(8)
            }
            PT_BYE => {
                remote.bye = true;
                None
            }
            _ => None,
        };
        if let Some(mut b) = blocks_at {
            for _ in 0..count {
                if b + 24 > p.len() {
                    break;
                }
                let ssrc = u32::from_be_bytes([p[b], p[b + 1], p[b + 2], p[b + 3]]);
                if ssrc == our_ssrc {
                    remote.fraction_lost = p[b + 4];
                    let raw = u32::from_be_bytes([0, p[b + 5], p[b + 6], p[b + 7]]);
                    remote.cumulative_lost = ((raw << 8) as i32) >> 8;
                    remote.jitter = u32::from_be_bytes([p[b + 12], p[b + 13], p[b + 14], p[b + 15]]);
                    let lsr = u32::from_be_bytes([p[b + 16], p[b + 17], p[b + 18], p[b + 19]]);
                    let dlsr = u32::from_be_bytes([p[b + 20], p[b + 21], p[b + 22], p[b + 23]]);
                    if lsr != 0 {
                        let now_mid = (ntp_now() >> 16) as u32;
                        let rtt = now_mid.wrapping_sub(lsr).wrapping_sub(dlsr);
                        if rtt < 0x8000_0000 {
                            remote.rtt = Some(Duration::from_secs_f64(rtt as f64 / 65536.0));
                        }
                    }
                }
                b += 24;
            }
        }
        at += len;
    }
    if any {
        remote.reports_received += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;

    #[test]
    fn sr_round_trip_through_parser() {
        let now = Instant::now();
        let mut rx = RtpReceiveStats::default();
        for seq in [10u16, 11, 13] {
            rx.on_packet(&RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: 0, ssrc: 99 }, 0);
        }
        let mut out = [0u8; 256];
        let sender = SenderInfo { ntp: ntp_now(), rtp_timestamp: 1234, packets: 3, octets: 480 };
        let n = build_report(&mut out, 7, Some(sender), &mut rx, &RemoteReport::default(), now, "switchboard");
        assert_eq!(n % 4, 0);
        assert_eq!(out[1], PT_SR);
        // The peer (ssrc 99) parses it and finds our report block about its stream.
        let mut remote = RemoteReport::default();
        parse_into(&out[..n], 99, now, &mut remote);
        assert!(remote.last_sr.is_some());
        assert_eq!(remote.cumulative_lost, 1);
        assert_eq!(remote.fraction_lost, 256u32.div_euclid(4) as u8);
        assert_eq!(remote.reports_received, 1);
    }

    #[test]
    fn bye_is_seen() {
        let pkt = [0x81, PT_BYE, 0, 1, 0, 0, 0, 5];
        let mut remote = RemoteReport::default();
        parse_into(&pkt, 1, Instant::now(), &mut remote);
        assert!(remote.bye);
    }
}
