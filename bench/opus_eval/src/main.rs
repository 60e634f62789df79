//! Opus candidates against libopus: µs per 20 ms frame to encode and decode (best of 5
//! passes over 10 s of a speech-like signal), allocations (a counting allocator), and
//! whether each decoder reproduces what libopus decodes from each encoder's packets.
//! See Cargo.toml for how to run it; results are in BENCHMARKS.md ("Opus codec").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
struct Count;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Count {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 { ALLOCS.fetch_add(1, Relaxed); System.alloc(l) }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) { System.dealloc(p, l) }
}
#[global_allocator]
static A: Count = Count;

const RATE: i32 = 48000;

fn signal(rate: i32, secs: f32) -> Vec<i16> {
    // voiced speech-like: 140 Hz glottal harmonics with a formant envelope, syllable AM, plus noise
    let n = (rate as f32 * secs) as usize;
    let mut s = 12345u32;
    (0..n).map(|i| {
        let t = i as f32 / rate as f32;
        let f0 = 140.0 + 20.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
        let mut v = 0.0;
        for h in 1..20 { let f = f0 * h as f32; if f > rate as f32 / 2.2 { break; }
            let env = (-((f - 700.0) / 400.0).powi(2)).exp() + 0.5 * (-((f - 1800.0) / 500.0).powi(2)).exp() + 0.1;
            v += env * (2.0 * std::f32::consts::PI * f * t * 1.0).sin() / h as f32; }
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        let noise = ((s >> 16) as f32 / 65536.0 - 0.5) * 0.02;
        let am = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
        ((v * am * 0.3 + noise) * 32767.0 * 0.5) as i16
    }).collect()
}

trait Enc { fn enc(&mut self, pcm: &[i16], out: &mut [u8]) -> usize; }
trait Dec { fn dec(&mut self, pkt: &[u8], out: &mut [i16]) -> usize; }

struct LibEnc(opus::Encoder); struct LibDec(opus::Decoder);
impl Enc for LibEnc { fn enc(&mut self, p: &[i16], o: &mut [u8]) -> usize { self.0.encode(p, o).unwrap() } }
impl Dec for LibDec { fn dec(&mut self, p: &[u8], o: &mut [i16]) -> usize { self.0.decode(p, o, false).unwrap() } }
fn lib_enc(rate: i32) -> LibEnc { let mut e = opus::Encoder::new(rate as u32, opus::Channels::Mono, opus::Application::Voip).unwrap();
    e.set_bitrate(opus::Bitrate::Bits(24000)).unwrap(); e.set_complexity(5).unwrap(); e.set_signal(opus::Signal::Voice).unwrap(); e.set_inband_fec(false).unwrap(); e.set_dtx(false).unwrap(); LibEnc(e) }

struct UEnc(*mut unsafe_libopus::OpusEncoder); struct UDec(*mut unsafe_libopus::OpusDecoder);
impl Enc for UEnc { fn enc(&mut self, p: &[i16], o: &mut [u8]) -> usize { unsafe { unsafe_libopus::opus_encode(self.0, p.as_ptr(), p.len() as i32, o.as_mut_ptr(), o.len() as i32) as usize } } }
impl Dec for UDec { fn dec(&mut self, p: &[u8], o: &mut [i16]) -> usize { unsafe { unsafe_libopus::opus_decode(self.0, p.as_ptr(), p.len() as i32, o.as_mut_ptr(), o.len() as i32, 0) as usize } } }
fn u_enc(rate: i32) -> UEnc { unsafe { let mut err = 0; let e = unsafe_libopus::opus_encoder_create(rate, 1, 2048, &mut err); assert_eq!(err, 0);
    use unsafe_libopus::opus_encoder_ctl;
    opus_encoder_ctl!(e, 4002, 24000i32); opus_encoder_ctl!(e, 4010, 5i32); opus_encoder_ctl!(e, 4024, 3001i32); opus_encoder_ctl!(e, 4012, 0i32); opus_encoder_ctl!(e, 4016, 0i32);
    UEnc(e) } }
fn u_dec(rate: i32) -> UDec { unsafe { let mut err = 0; let d = unsafe_libopus::opus_decoder_create(rate, 1, &mut err); assert_eq!(err, 0); UDec(d) } }

struct REnc(opus_rs::OpusEncoder); struct RDec(opus_rs::OpusDecoder, Vec<f32>);
impl Enc for REnc { fn enc(&mut self, p: &[i16], o: &mut [u8]) -> usize { self.0.encode_i16(p, p.len(), o).unwrap() } }
impl Dec for RDec { fn dec(&mut self, p: &[u8], o: &mut [i16]) -> usize { let n = self.0.decode(p, o.len(), &mut self.1).unwrap(); for i in 0..n { o[i] = (self.1[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16; } n } }
fn r_enc(rate: i32) -> REnc { let mut e = opus_rs::OpusEncoder::new(rate, 1, opus_rs::Application::Voip).unwrap(); e.bitrate_bps = 24000; e.complexity = 5; e.use_cbr = false; e.use_inband_fec = false; REnc(e) }
fn r_dec(rate: i32) -> RDec { RDec(opus_rs::OpusDecoder::new(rate, 1).unwrap(), vec![0.0; 5760]) }

fn mk_enc(name: &str, rate: i32) -> Box<dyn Enc> { match name { "libopus" => Box::new(lib_enc(rate)), "unsafe-libopus" => Box::new(u_enc(rate)), _ => Box::new(r_enc(rate)) } }
fn mk_dec(name: &str, rate: i32) -> Box<dyn Dec> { match name { "libopus" => Box::new(LibDec(opus::Decoder::new(rate as u32, opus::Channels::Mono).unwrap())), "unsafe-libopus" => Box::new(u_dec(rate)), _ => Box::new(r_dec(rate)) } }

fn snr_best_lag(reference: &[i16], test: &[i16]) -> (f64, usize) {
    let mut best = (-1e9, 0);
    for lag in 0..1200 { if lag >= test.len() { break; }
        let n = reference.len().min(test.len() - lag);
        let (mut sig, mut err) = (0f64, 0f64);
        for i in 4800..n { let r = reference[i] as f64; let t = test[i + lag] as f64; sig += r * r; err += (r - t) * (r - t); }
        let snr = 10.0 * (sig / err.max(1.0)).log10(); if snr > best.0 { best = (snr, lag); } }
    best
}

fn main() { if std::env::args().nth(1).as_deref() == Some("extra") { extra(); return; }
    let names = ["libopus", "unsafe-libopus", "opus-rs"];
    for rate in [48000, 16000] {
        let fs = (rate / 50) as usize;
        let pcm = signal(rate, 10.0);
        let frames: Vec<&[i16]> = pcm.chunks_exact(fs).collect();
        println!("== {rate} Hz mono, 20 ms frames, 24 kbit/s VBR, complexity 5, VOIP/voice");
        let mut packets: Vec<Vec<Vec<u8>>> = vec![];
        for n in names {
            let mut e = mk_enc(n, rate); let mut buf = [0u8; 1500];
            let mut pk = vec![]; for f in &frames { let l = e.enc(f, &mut buf); pk.push(buf[..l].to_vec()); }
            // timing: encode 10 s again fresh encoder, 5 reps, best
            let mut best_e = f64::MAX;
            let a0 = ALLOCS.load(Relaxed);
            for _ in 0..5 { let mut e = mk_enc(n, rate); let t = Instant::now(); for f in &frames { std::hint::black_box(e.enc(f, &mut buf)); } best_e = best_e.min(t.elapsed().as_secs_f64() * 1e6 / frames.len() as f64); }
            let a1 = ALLOCS.load(Relaxed);
            let mut best_d = f64::MAX; let mut out = vec![0i16; fs];
            let a2 = ALLOCS.load(Relaxed);
            for _ in 0..5 { let mut d = mk_dec(n, rate); let t = Instant::now(); for p in &pk { std::hint::black_box(d.dec(p, &mut out)); } best_d = best_d.min(t.elapsed().as_secs_f64() * 1e6 / pk.len() as f64); }
            let a3 = ALLOCS.load(Relaxed);
            let bytes: usize = pk.iter().map(|p| p.len()).sum();
            println!("{n:15} encode {best_e:7.1} us/frame  decode {best_d:6.1} us/frame  kbit/s {:.1}  allocs(enc,dec incl create) {} {}", bytes as f64 * 8.0 / 10.0 / 1000.0, a1 - a0, a3 - a2);
            packets.push(pk);
        }
        // cross: each encoder's packets decoded by each decoder, SNR vs input, and vs libopus decode of the same packets
        for (i, en) in names.iter().enumerate() {
            let mut lib_out = vec![]; { let mut d = mk_dec("libopus", rate); let mut o = vec![0i16; fs]; for p in &packets[i] { let n = d.dec(p, &mut o); lib_out.extend_from_slice(&o[..n]); } }
            for dn in names {
                let mut d = mk_dec(dn, rate); let mut o = vec![0i16; fs]; let mut all = vec![];
                for p in &packets[i] { let n = d.dec(p, &mut o); all.extend_from_slice(&o[..n]); }
                let (snr_in, lag) = snr_best_lag(&pcm, &all);
                let identical = all == lib_out;
                let (snr_lib, _) = if identical { (f64::INFINITY, 0) } else { snr_best_lag(&lib_out, &all) };
                println!("  enc {en:15} -> dec {dn:15}: SNR vs input {snr_in:5.1} dB (lag {lag}), vs libopus decode: {}", if identical { "bit-identical".to_string() } else { format!("{snr_lib:.1} dB") });
            }
        }
        // bitstream equality with libopus encoder
        for i in 1..names.len() { println!("  {} packets identical to libopus: {}", names[i], packets[i] == packets[0]); }
    }
}

pub fn extra() {
    // libopus in music/fullband modes (CELT and hybrid), decoded at 16 kHz by each decoder
    for (app, br) in [(opus::Application::Audio, 64000), (opus::Application::Voip, 32000), (opus::Application::Audio, 16000)] {
        let pcm = signal(48000, 5.0);
        let mut e = opus::Encoder::new(48000, opus::Channels::Mono, app).unwrap();
        e.set_bitrate(opus::Bitrate::Bits(br)).unwrap();
        let mut buf = [0u8; 1500]; let mut pk = vec![];
        for f in pcm.chunks_exact(960) { let l = e.encode(f, &mut buf).unwrap(); pk.push(buf[..l].to_vec()); }
        let toc: std::collections::BTreeSet<u8> = pk.iter().map(|p| p[0] >> 3).collect();
        let mut outs = vec![];
        for dn in ["libopus", "unsafe-libopus", "opus-rs"] { let mut d = mk_dec(dn, 16000); let mut o = vec![0i16; 320]; let mut all = vec![]; for p in &pk { let n = d.dec(p, &mut o); all.extend_from_slice(&o[..n]); } outs.push(all); }
        println!("libopus {app:?} {br} configs {toc:?}: unsafe==lib {} ({:.1} dB), opus-rs==lib {} ({:.1} dB)", outs[1]==outs[0], snr_best_lag(&outs[0], &outs[1]).0, outs[2]==outs[0], snr_best_lag(&outs[0], &outs[2]).0);
    }
    // garbage payloads: must not panic
    let mut s = 99u32; let mut panics = [0; 2];
    for i in 0..200_000 {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223); let len = 1 + (s >> 24) as usize % 200;
        let p: Vec<u8> = (0..len).map(|_| { s = s.wrapping_mul(1664525).wrapping_add(1013904223); (s >> 24) as u8 }).collect();
        let r = std::panic::catch_unwind(|| { let mut d = r_dec(16000); let mut o = vec![0i16; 320]; d.0.decode(&p, 320, &mut d.1).ok(); let _ = &mut o; });
        if r.is_err() { panics[0] += 1; if panics[0] < 3 { println!("opus-rs panic on packet {i} len {len}"); } }
    }
    println!("garbage: opus-rs panics {}", panics[0]);
    let mut d = r_dec(16000); let mut e = r_enc(16000); let pcm = signal(16000, 2.0); let mut buf=[0u8;1500]; let mut cnt=0;
    for i in 0..100_000usize {
        let l = e.enc(&pcm[(i%100)*320..(i%100+1)*320], &mut buf); let mut p = buf[..l].to_vec();
        s = s.wrapping_mul(1664525).wrapping_add(1013904223); let k = (s>>24) as usize % p.len().max(1); if i % 3 == 0 { p[k] ^= (s >> 8) as u8; }
        if i % 7 == 0 { p.truncate(1 + k); }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| { d.0.decode(&p, 320, &mut d.1).ok(); }));
        if r.is_err() { cnt += 1; d = r_dec(16000); }
    }
    println!("corrupted stream: opus-rs panics {cnt}");
}
