//! Ports for tests: the one allocator every test binary of the workspace takes its
//! ports from (a dev-dependency only; nothing ships with it).
//!
//! Tests in a file run on parallel threads, and test binaries run in parallel
//! processes (`cargo test` runs one binary at a time, but `cargo nextest`, two
//! `cargo test`s, or engineers sharing a machine do not). So ports are never fixed
//! per test nor picked at random: 10000-19999 is cut into [`BLOCKS`] blocks of
//! [`BLOCK_SIZE`] ports, and a test owns a block while it holds an exclusive `flock`
//! on `$TMPDIR/switchboard-e2e-ports/block-NN.lock` (flock is per open file, so it
//! excludes other threads of the same process too, and the kernel drops it if the
//! process dies). A block is taken only if every port in it binds on UDP and TCP
//! right now, which skips ports some unrelated program holds. The range lies below
//! Linux's ephemeral ports (32768-60999), so sockets bound to port 0 never land in
//! it, and away from the SIP kit's fixed ports (5060-5202) and the server's default
//! RTP range (20000-29999).
//!
//! What a test does with its block is its own business: the end-to-end harness
//! (`crates/switchboard/tests/support`) lays out SIP, HTTP and RTP ports in it; a
//! media test gives the whole block to its media engine as the RTP range.
//!
//! The lock directory and file names are those the end-to-end harness used before
//! this crate existed, so older checkouts running at the same time still exclude
//! each other.
//!
//! ```no_run
//! let block = testports::PortBlock::take();
//! let (lo, hi) = block.range(0, 20); // 20 ports: 10 RTP/RTCP pairs
//! // ... bind lo..=hi; the block is ours until `block` is dropped
//! ```

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// First port of the first block.
pub const PORT_BASE: u16 = 10000;
/// Ports per block. Block bases are multiples of 100, so even (RTP/RTCP pairs align).
pub const BLOCK_SIZE: u16 = 100;
/// Blocks in the range.
pub const BLOCKS: u16 = 100;
/// How long [`PortBlock::take`] waits for a free block before the test fails.
pub const TAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A block of [`BLOCK_SIZE`] ports on 127.0.0.1, owned by one test while this value
/// lives. Drop it only after everything bound in it is closed.
#[derive(Debug)]
pub struct PortBlock {
    base: u16,
    _lock: File,
}

impl PortBlock {
    /// Takes the first free block, starting at a spot that depends on the process and a
    /// per-process counter so that parallel tests rarely contend for the same lock.
    /// Waits (polling) while every block is taken; panics after [`TAKE_TIMEOUT`].
    pub fn take() -> PortBlock {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join("switchboard-e2e-ports");
        fs::create_dir_all(&dir).expect("create port lock dir");
        let start = std::process::id().wrapping_mul(7).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let deadline = Instant::now() + TAKE_TIMEOUT;
        loop {
            for i in 0..BLOCKS as u32 {
                let index = ((start.wrapping_add(i)) % BLOCKS as u32) as u16;
                let path = dir.join(format!("block-{index:02}.lock"));
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&path)
                    .unwrap_or_else(|e| panic!("open port lock {}: {e}", path.display()));
                // SAFETY: flock on a file descriptor we own.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                    continue;
                }
                let base = PORT_BASE + index * BLOCK_SIZE;
                if (base..base + BLOCK_SIZE).all(port_is_free) {
                    return PortBlock { base, _lock: file };
                }
            }
            assert!(
                Instant::now() < deadline,
                "no free port block in {PORT_BASE}-{} for {TAKE_TIMEOUT:?}",
                PORT_BASE + BLOCKS * BLOCK_SIZE - 1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The block's first port.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// Port `offset` of the block.
    pub fn port(&self, offset: u16) -> u16 {
        assert!(offset < BLOCK_SIZE, "port offset {offset} out of the block");
        self.base + offset
    }

    /// `len` ports from `offset`, as an inclusive range (what `MediaConfig::rtp_ports`
    /// and `--rtp-ports` take).
    pub fn range(&self, offset: u16, len: u16) -> (u16, u16) {
        assert!(len > 0 && offset + len <= BLOCK_SIZE, "ports {offset}+{len} out of the block");
        (self.base + offset, self.base + offset + len - 1)
    }

    /// The whole block, inclusive.
    pub fn all(&self) -> (u16, u16) {
        self.range(0, BLOCK_SIZE)
    }
}

fn port_is_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_taken_at_once_are_distinct_and_bindable() {
        let blocks: Vec<PortBlock> = (0..4).map(|_| PortBlock::take()).collect();
        let mut bases: Vec<u16> = blocks.iter().map(PortBlock::base).collect();
        bases.sort();
        bases.dedup();
        assert_eq!(bases.len(), 4, "{bases:?}");
        for b in &blocks {
            assert_eq!(b.base() % BLOCK_SIZE, 0);
            assert!((PORT_BASE..PORT_BASE + BLOCKS * BLOCK_SIZE).contains(&b.base()));
            let (lo, hi) = b.range(50, 50);
            assert_eq!((lo, hi), (b.base() + 50, b.base() + 99));
            UdpSocket::bind((Ipv4Addr::LOCALHOST, b.port(99))).expect("a port of our block binds");
        }
    }
}
