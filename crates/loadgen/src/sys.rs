//! The few Linux calls std does not offer: epoll, `recvmmsg` with kernel receive
//! timestamps, `sendmmsg` on a raw IP socket, `clock_nanosleep`, rlimits and /proc CPU.
//!
//! Every function here is a thin, documented `unsafe` wrapper; nothing allocates per
//! call except the batch structures built once by their owners.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(|_| ())
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A non-blocking UDP socket bound to `addr`, with kernel receive timestamps
/// (`SO_TIMESTAMPNS`) on. Fails with `AddrInUse` when the port is taken.
pub fn udp_bind(addr: SocketAddrV4) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: fd is a fresh, valid descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = sockaddr_in(addr);
    // SAFETY: sa is a valid sockaddr_in of the stated size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    })?;
    setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    Ok(fd)
}

/// A raw IPv4 socket on which we write whole IP+UDP packets (`IPPROTO_RAW` implies
/// `IP_HDRINCL`). Lets one `sendmmsg` carry packets from many source ports.
pub fn raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    })?;
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A big send buffer so a tick's burst is not refused with ENOBUFS.
    let _ = setsockopt_int(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        16 << 20,
    );
    Ok(fd)
}

pub fn set_rcvbuf(fd: RawFd, bytes: i32) {
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
    }
}

/// One `sendto` of `data` to `to` (socket send mode). Returns false on error.
pub fn send_to(fd: RawFd, data: &[u8], to: SocketAddrV4) -> bool {
    let sa = sockaddr_in(to);
    // SAFETY: data and sa are valid for the lengths given.
    let r = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    r == data.len() as isize
}

pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain epoll_create1.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh descriptor we own.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
    /// Level-triggered readability of `fd`, reported with `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: ev is valid for the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(|_| ())
    }
    /// Ready tokens, without waiting.
    pub fn poll_now(&self, events: &mut [libc::epoll_event]) -> usize {
        // SAFETY: events is a valid writable array of the length given.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                0,
            )
        };
        n.max(0) as usize
    }
}

/// Receive batch for `recvmmsg`: `BATCH` buffers with room for the timestamp cmsg.
pub const RX_BATCH: usize = 32;
const RX_BUF: usize = 1500;
const CMSG_SPACE: usize = 64;

pub struct RxBatch {
    bufs: Box<[[u8; RX_BUF]; RX_BATCH]>,
    ctrl: Box<[[u8; CMSG_SPACE]; RX_BATCH]>,
    iov: Box<[libc::iovec; RX_BATCH]>,
    hdrs: Box<[libc::mmsghdr; RX_BATCH]>,
}

impl RxBatch {
    pub fn new() -> RxBatch {
        let mut b = RxBatch {
            bufs: Box::new([[0; RX_BUF]; RX_BATCH]),
            ctrl: Box::new([[0; CMSG_SPACE]; RX_BATCH]),
            // SAFETY: iovec and mmsghdr are plain C structs; all-zero is valid.
            iov: Box::new(unsafe { std::mem::zeroed() }),
            hdrs: Box::new(unsafe { std::mem::zeroed() }),
        };
        for i in 0..RX_BATCH {
            b.iov[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: RX_BUF,
            };
            // The boxes never move, so these pointers stay valid for the batch's life.
            b.hdrs[i].msg_hdr.msg_iov = &mut b.iov[i];
            b.hdrs[i].msg_hdr.msg_iovlen = 1;
            b.hdrs[i].msg_hdr.msg_control = b.ctrl[i].as_mut_ptr().cast();
        }
        b
    }

    /// One `recvmmsg` on `fd` without waiting. Returns how many datagrams arrived;
    /// read them with [`RxBatch::get`].
    pub fn recv(&mut self, fd: RawFd) -> usize {
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_controllen = CMSG_SPACE as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: hdrs describes RX_BATCH valid buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                RX_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }

    /// Datagram `i` of the last `recv`, with its kernel arrival time in ns (realtime
    /// clock), or 0 when the kernel gave none.
    pub fn get(&self, i: usize) -> (&[u8], u64) {
        let h = &self.hdrs[i];
        let len = h.msg_len as usize;
        let mut ts = 0u64;
        // SAFETY: msg_control/msg_controllen were filled by the kernel for this message;
        // the CMSG_* helpers walk only within that buffer.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
                }
                c = libc::CMSG_NXTHDR(&h.msg_hdr, c);
            }
        }
        (&self.bufs[i][..len], ts)
    }
}

/// Send batch for the raw socket: whole IPv4+UDP packets, one `sendmmsg` per
/// `TX_BATCH` (the kernel caps vlen at 1024).
pub const TX_BATCH: usize = 1024;
pub const TX_PKT: usize = 20 + 8 + 12 + 160;

pub struct RawTxBatch {
    bufs: Vec<[u8; TX_PKT]>,
    lens: Vec<usize>,
    dest: Vec<libc::sockaddr_in>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    pub len: usize,
}

impl RawTxBatch {
    pub fn new() -> RawTxBatch {
        RawTxBatch {
            bufs: vec![[0; TX_PKT]; TX_BATCH],
            lens: vec![0; TX_BATCH],
            dest: vec![sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); TX_BATCH],
            // SAFETY: plain C structs; zero is valid.
            iov: vec![unsafe { std::mem::zeroed() }; TX_BATCH],
            hdrs: vec![unsafe { std::mem::zeroed() }; TX_BATCH],
            len: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == TX_BATCH
    }

    /// Appends one UDP datagram from `src` to `dst`; `fill` writes the UDP payload
    /// into the slice it is given and returns its length. Cost: a 28-byte header write
    /// plus the payload copy.
    pub fn push(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) {
        let b = &mut self.bufs[self.len];
        let n = fill(&mut b[28..]);
        let total = 28 + n;
        // IPv4 header; the kernel fills in the checksum and the id (IP_HDRINCL rules).
        b[0] = 0x45;
        b[1] = 0;
        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        b[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
        b[8] = 64;
        b[9] = libc::IPPROTO_UDP as u8;
        b[10..12].copy_from_slice(&[0, 0]);
        b[12..16].copy_from_slice(&src.ip().octets());
        b[16..20].copy_from_slice(&dst.ip().octets());
        // UDP header, checksum 0 = none (allowed on IPv4).
        b[20..22].copy_from_slice(&src.port().to_be_bytes());
        b[22..24].copy_from_slice(&dst.port().to_be_bytes());
        b[24..26].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        b[26..28].copy_from_slice(&[0, 0]);
        self.lens[self.len] = total;
        self.dest[self.len] = sockaddr_in(SocketAddrV4::new(*dst.ip(), 0));
        self.len += 1;
    }

    /// Sends everything queued with `sendmmsg`; returns packets accepted.
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let n = self.len;
        for i in 0..n {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_name = (&mut self.dest[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: hdrs[sent..n] point at buffers, iovecs and addresses owned by self.
            let r =
                unsafe { libc::sendmmsg(fd, self.hdrs[sent..].as_mut_ptr(), (n - sent) as u32, 0) };
            if r <= 0 {
                break;
            }
            sent += r as usize;
        }
        self.len = 0;
        sent
    }
}

/// Monotonic clock in ns.
pub fn mono_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: t is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Sleeps until the monotonic clock reads `deadline_ns`.
pub fn sleep_until_ns(deadline_ns: u64) {
    let t = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: t is a valid timespec; EINTR just ends the sleep early.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &t,
            std::ptr::null_mut(),
        )
    };
}

/// Raises the open-file limit to at least `want` (soft, and hard if we may).
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if r.rlim_cur >= want {
        return r.rlim_cur;
    }
    let try_set = |cur: u64, max: u64| {
        let n = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: n is a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &n) == 0 }
    };
    if try_set(want, want.max(r.rlim_max)) || try_set(r.rlim_max.min(want), r.rlim_max) {
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    }
    r.rlim_cur
}

/// CPU time (user + system) of a process from /proc/PID/stat; `None` once it is gone.
pub fn proc_cpu(pid: &str) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// First field of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split(' ').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Summed over a process's threads (/proc/PID/task/*/schedstat): time spent running
/// and time spent runnable but waiting for a CPU, in ns. A large wait next to the run
/// time means the process was starved by other load on the box, not busy itself.
pub fn sched_run_wait(pid: &str) -> Option<(u64, u64)> {
    let mut run = 0u64;
    let mut wait = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(t) = t else { continue };
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        run += f.next().unwrap_or(0);
        wait += f.next().unwrap_or(0);
    }
    Some((run, wait))
}
