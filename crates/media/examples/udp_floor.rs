//! The kernel's share of a relayed packet: how much CPU a relay spends on UDP alone, with
//! the workers' own batches (`recvmmsg` of `RECV_BATCH`, `sendmmsg` of up to
//! `SEND_BATCH`) and no media work at all. It bounds what any user-space relay on kernel
//! sockets can do on this machine, ours included.
//!
//! Thread *relay* owns one socket on 127.0.0.1 (the shared-port mode) and sends every
//! datagram it reads on to the next of `PEERS` sockets on 127.0.0.2, round-robin, in
//! one `sendmmsg` per batch read. Thread *peers* feeds it 172-byte datagrams (a G.711
//! RTP packet) and drains the peer sockets; it keeps at most `IN_FLIGHT` unanswered so
//! nothing is dropped. Printed: the relay thread's CPU time per datagram (one in and
//! one out, the loopback delivery of what it sends included, as on the real path), and
//! the two-party calls per core that leaves (a call is 100 datagrams a second through
//! the relay, each read and sent: 50 a second each way).
//!
//! Run: `cargo run --release -p media --example udp_floor [seconds]` (default 5).

mod support;

use media::runtime::sys::{set_buffers, RecvBatch, SendBatch};
use support::thread_cpu_time;
use media::runtime::{RECV_BATCH, SEND_BATCH};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

const PEERS: usize = 512;
const IN_FLIGHT: u64 = 8192;
const DATAGRAM: usize = 172;

fn bind(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind");
    s.set_nonblocking(true).expect("non-blocking");
    set_buffers(s.as_raw_fd(), 4 << 20);
    s
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let relay = bind("127.0.0.1");
    let relay_addr = relay.local_addr().unwrap();
    let feeder = bind("127.0.0.2");
    let peers: Vec<UdpSocket> = (0..PEERS).map(|_| bind("127.0.0.2")).collect();
    let peer_addrs: Vec<SocketAddr> = peers.iter().map(|p| p.local_addr().unwrap()).collect();
    let relayed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let feed = {
        let (relayed, stop) = (relayed.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut out, mut drain) = (SendBatch::new(SEND_BATCH), RecvBatch::new(RECV_BATCH));
            let packet = [0x80u8; DATAGRAM];
            let mut sent = 0u64;
            while !stop.load(Relaxed) {
                while sent - relayed.load(Relaxed) < IN_FLIGHT - SEND_BATCH as u64 && !out.is_full() {
                    out.push(feeder.as_raw_fd(), &relay_addr, &packet);
                    sent += 1;
                }
                out.flush();
                for p in &peers {
                    while drain.recv(p.as_raw_fd()) == RECV_BATCH {}
                }
            }
        })
    };

    let (mut inbound, mut outbound) = (RecvBatch::new(RECV_BATCH), SendBatch::new(SEND_BATCH));
    let fd = relay.as_raw_fd();
    let (mut count, mut next_peer) = (0u64, 0usize);
    let (cpu0, t0) = (thread_cpu_time(), Instant::now());
    while t0.elapsed().as_secs_f64() < secs {
        let n = inbound.recv(fd);
        if n == 0 {
            // Sleep until there is something to read, as a worker does (epoll): an empty
            // recvmmsg in a spin would count as relay work.
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 10) };
            continue;
        }
        for i in 0..n {
            let (_, data) = inbound.get(i);
            outbound.push(fd, &peer_addrs[next_peer], data);
            next_peer = (next_peer + 1) % PEERS;
        }
        if n < RECV_BATCH || outbound.is_full() {
            outbound.flush();
        }
        count += n as u64;
        relayed.store(count, Relaxed);
    }
    outbound.flush();
    let (cpu, wall) = (thread_cpu_time() - cpu0, t0.elapsed());
    stop.store(true, Relaxed);
    feed.join().unwrap();
    let us = cpu.as_secs_f64() * 1e6 / count as f64;
    println!(
        "relayed {count} datagrams in {:.1} s ({:.0}/s), relay thread CPU {:.2} s: {us:.2} µs per datagram in and out; \
         kernel-only ceiling {:.0} two-party calls per core (100 datagrams/s each); send drops {}",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        1e6 / (us * 100.0),
        outbound.dropped
    );
}
