//! TEMPORARY stand-in for the codec, jitter and DTMF modules while they are being
//! written in parallel (same names as their agreed API). Only G.711 is real here.
//! Removed as soon as `codec`, `jitter` and `dtmf` land; nothing outside `leg.rs` and
//! `engine.rs` refers to it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl CodecKind {
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            CodecKind::Opus => 48_000,
            _ => 8_000,
        }
    }
    pub fn rtp_samples_per_frame(self) -> u32 {
        self.rtp_clock_rate() / 50
    }
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }
}

pub trait AudioEncoder: Send {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize;
}
pub trait AudioDecoder: Send {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize;
    fn conceal(&mut self, out: &mut [i16]) -> usize;
}

fn ulaw_encode(s: i16) -> u8 {
    let mut x = s as i32;
    let sign = if x < 0 { 0x80 } else { 0 };
    if x < 0 {
        x = -x;
    }
    x = (x + 0x84).min(32635 + 0x84);
    let exp = (31 - (x as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mant = (x >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}
fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let exp = ((u >> 4) & 7) as i32;
    let mant = (u & 0x0f) as i32;
    let x = (((mant << 3) + 0x84) << exp) - 0x84;
    (if u & 0x80 != 0 { -x } else { x }) as i16
}
fn alaw_encode(s: i16) -> u8 {
    let mut x = s as i32;
    let sign = if x >= 0 { 0x80 } else { 0 };
    if x < 0 {
        x = -x - 1;
    }
    x = x.min(32767) >> 3;
    let (exp, mant) = if x < 32 { (0, x >> 1) } else {
        let e = 31 - (x as u32).leading_zeros() as i32 - 4;
        (e, (x >> e) & 0x0f)
    };
    ((sign | (exp << 4) as u8 | mant as u8) ^ 0x55) as u8
}
fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exp = ((a >> 4) & 7) as i32;
    let mant = (a & 0x0f) as i32;
    let x = if exp == 0 { (mant << 4) + 8 } else { ((mant << 4) + 0x108) << (exp - 1) };
    (if a & 0x80 != 0 { x } else { -x }) as i16
}

struct G711 {
    ulaw: bool,
    last: i16,
}
impl AudioEncoder for G711 {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize {
        for (i, o) in out.iter_mut().take(frame.len() / 2).enumerate() {
            let s = ((frame[2 * i] as i32 + frame[2 * i + 1] as i32) / 2) as i16;
            *o = if self.ulaw { ulaw_encode(s) } else { alaw_encode(s) };
        }
        frame.len() / 2
    }
}
impl AudioDecoder for G711 {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let n = payload.len().min(out.len() / 2);
        for i in 0..n {
            let s = if self.ulaw { ulaw_decode(payload[i]) } else { alaw_decode(payload[i]) };
            out[2 * i] = ((self.last as i32 + s as i32) / 2) as i16;
            out[2 * i + 1] = s;
            self.last = s;
        }
        2 * n
    }
    fn conceal(&mut self, out: &mut [i16]) -> usize {
        out[..320].fill(0);
        320
    }
}

pub fn new_encoder(kind: CodecKind) -> Box<dyn AudioEncoder> {
    Box::new(G711 { ulaw: kind != CodecKind::Pcma, last: 0 })
}
pub fn new_decoder(kind: CodecKind) -> Box<dyn AudioDecoder> {
    Box::new(G711 { ulaw: kind != CodecKind::Pcma, last: 0 })
}

pub enum Pop<'a> {
    Frame(&'a [u8]),
    Lost,
    Empty,
}

/// Fixed 2-frame delay buffer keyed by sequence number.
pub struct JitterBuffer {
    packets: BTreeMap<u16, Vec<u8>>,
    next: Option<u16>,
    out: Vec<u8>,
    primed: bool,
}
impl JitterBuffer {
    pub fn new(_clock_rate: u32, _spf: u32) -> JitterBuffer {
        JitterBuffer { packets: BTreeMap::new(), next: None, out: Vec::new(), primed: false }
    }
    pub fn push(&mut self, _now: Instant, seq: u16, _ts: u32, _marker: bool, payload: &[u8]) {
        if self.next.is_none() {
            self.next = Some(seq);
        }
        if self.packets.len() < 50 {
            self.packets.insert(seq, payload.to_vec());
        }
    }
    pub fn pop(&mut self, _now: Instant) -> Pop<'_> {
        let Some(next) = self.next else { return Pop::Empty };
        if !self.primed {
            if self.packets.len() < 2 {
                return Pop::Empty;
            }
            self.primed = true;
        }
        self.next = Some(next.wrapping_add(1));
        match self.packets.remove(&next) {
            Some(p) => {
                self.out = p;
                Pop::Frame(&self.out)
            }
            None if self.packets.is_empty() => {
                self.primed = false;
                self.next = None;
                Pop::Empty
            }
            None => Pop::Lost,
        }
    }
}

pub struct DtmfDigit {
    pub digit: char,
    pub duration_ms: u32,
}
pub fn event_to_digit(e: u8) -> Option<char> {
    "0123456789*#ABCD".chars().nth(e as usize)
}
pub fn digit_to_event(c: char) -> Option<u8> {
    "0123456789*#ABCD".find(c.to_ascii_uppercase()).map(|i| i as u8)
}

pub struct DtmfReceiver {
    last_ts: Option<u32>,
}
impl DtmfReceiver {
    pub fn new() -> Self {
        DtmfReceiver { last_ts: None }
    }
    pub fn push(&mut self, ts: u32, _marker: bool, payload: &[u8]) -> Option<DtmfDigit> {
        if payload.len() < 4 || payload[1] & 0x80 == 0 || self.last_ts == Some(ts) {
            return None;
        }
        self.last_ts = Some(ts);
        let dur = u16::from_be_bytes([payload[2], payload[3]]) as u32;
        Some(DtmfDigit { digit: event_to_digit(payload[0])?, duration_ms: dur / 8 })
    }
}

pub struct DtmfPacket {
    pub marker: bool,
    pub payload: [u8; 4],
    pub more_this_tick: bool,
}
pub struct DtmfSender {
    event: u8,
    total: u32,
    elapsed: u32,
    step: u32,
    ends_left: u8,
}
impl DtmfSender {
    pub fn new(digit: char, duration_ms: u32, clock_rate: u32) -> Option<Self> {
        Some(DtmfSender { event: digit_to_event(digit)?, total: duration_ms * clock_rate / 1000, elapsed: 0, step: clock_rate / 50, ends_left: 3 })
    }
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        let marker = self.elapsed == 0;
        self.elapsed = (self.elapsed + self.step).min(self.total);
        let end = self.elapsed >= self.total;
        if end {
            if self.ends_left == 0 {
                return None;
            }
            self.ends_left -= 1;
        }
        let d = (self.elapsed as u16).to_be_bytes();
        Some(DtmfPacket { marker, payload: [self.event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]], more_this_tick: false })
    }
}
