//! The per-frame path never touches the heap: a counting global allocator
//! watches encode, decode, concealment, resampling, jitter push/pop and DTMF in
//! steady state. (libopus allocates nothing per call either, but through C
//! `malloc`, which this allocator cannot see; its state is created up front.)

use media::codec::{new_decoder, new_encoder, CodecKind};
use media::dsp::resample::{Downsampler, Upsampler};
use media::dtmf::{DtmfReceiver, DtmfSender};
use media::jitter::{JitterBuffer, Pop};
use media::FRAME_SAMPLES;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread (test threads run in parallel).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn speech_like_frame(n: usize) -> [i16; FRAME_SAMPLES] {
    let mut frame = [0i16; FRAME_SAMPLES];
    for (i, s) in frame.iter_mut().enumerate() {
        let t = (n * FRAME_SAMPLES + i) as f32 / 16000.0;
        *s = (6000.0 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
            + 3000.0 * (2.0 * std::f32::consts::PI * 1330.0 * t).sin()) as i16;
    }
    frame
}

#[test]
fn the_counter_sees_allocations() {
    let count = allocations_in(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(64));
    });
    assert_eq!(count, 1);
}

#[test]
fn codecs_do_not_allocate_per_frame() {
    for kind in CodecKind::ALL.into_iter().filter(|k| k.available()) {
        let mut encoder = new_encoder(kind);
        let mut decoder = new_decoder(kind);
        let mut payload = [0u8; 1500];
        let mut pcm = [0i16; FRAME_SAMPLES * 6];
        let mut frame_loop = |frames: std::ops::Range<usize>| {
            for n in frames {
                let len = encoder.encode(&speech_like_frame(n), &mut payload);
                if n % 7 == 3 {
                    decoder.conceal(&mut pcm);
                } else {
                    decoder.decode(&payload[..len], &mut pcm);
                }
            }
        };
        frame_loop(0..10); // warm-up
        let count = allocations_in(|| frame_loop(10..200));
        assert_eq!(count, 0, "{kind:?} allocated {count} times in 190 frames");
    }
}

#[test]
fn resamplers_do_not_allocate() {
    let mut up = Upsampler::new();
    let mut down = Downsampler::new();
    let wide = speech_like_frame(0);
    let mut narrow = [0i16; FRAME_SAMPLES / 2];
    let mut back = [0i16; FRAME_SAMPLES];
    let count = allocations_in(|| {
        for _ in 0..100 {
            down.process(&wide, &mut narrow);
            up.process(&narrow, &mut back);
        }
    });
    assert_eq!(count, 0);
}

#[test]
fn jitter_buffer_push_and_pop_do_not_allocate() {
    let mut jb = JitterBuffer::new(8000, 160);
    let t0 = Instant::now();
    let payload = [0x55u8; 160];
    let tick = |i: u32, jb: &mut JitterBuffer| {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        // Some reordering, a duplicate and a loss now and then.
        let seq = if i % 10 == 4 {
            i + 1
        } else if i % 10 == 5 {
            i - 1
        } else {
            i
        };
        if i.rem_euclid(13) != 0 {
            jb.push(now, seq as u16, seq * 160, false, &payload);
        }
        if i.rem_euclid(17) == 0 {
            jb.push(now, seq as u16, seq * 160, false, &payload);
        }
        let played = matches!(jb.pop(now), Pop::Frame(_));
        let _ = jb.stats();
        played
    };
    for i in 0..50 {
        tick(i, &mut jb);
    }
    let mut played = 0;
    let count = allocations_in(|| {
        for i in 50..3000 {
            played += u32::from(tick(i, &mut jb));
        }
    });
    assert_eq!(count, 0);
    assert!(played > 2500);
}

#[test]
fn dtmf_does_not_allocate() {
    let mut rx = DtmfReceiver::new();
    let count = allocations_in(|| {
        for (i, digit) in "0123456789*#ABCD".chars().enumerate() {
            let mut tx = DtmfSender::new(digit, 100, 8000)
                .unwrap()
                .starting_at(i as u32 * 2000);
            while let Some(p) = tx.next_packet() {
                rx.push(p.timestamp, p.marker, &p.payload);
            }
        }
    });
    assert_eq!(count, 0);
}
