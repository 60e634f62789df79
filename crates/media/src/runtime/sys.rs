//! Thin, safe wrappers over the Linux calls the media runtime needs: epoll (find the
//! readable sockets among thousands), eventfd (wake a worker when a command is queued),
//! and batched UDP I/O with `recvmmsg`/`sendmmsg` over preallocated buffers.
//!
//! Why our own and not a crate: the whole surface is ~200 lines of libc, it keeps the
//! media path free of allocation (every buffer here is allocated once per worker), and
//! it keeps the dependency list to `libc`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Largest datagram we read or write (RTP over UDP on Ethernet never exceeds this).
pub const MAX_DATAGRAM: usize = 1500;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance with a preallocated event array.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    /// `epoll_pwait2` (nanosecond timeout, Linux 5.11+) works here; else `epoll_wait`,
    /// whose millisecond timeout makes a tick up to 1 ms late.
    precise: bool,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned fd is owned by us.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            precise: true,
        })
    }

    /// Watch `fd` for readability (level-triggered), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: ev is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn remove(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; failure (fd already gone) is harmless.
        unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Wait up to `timeout` and return the tokens of ready fds.
    pub fn wait(&mut self, timeout: Duration) -> impl Iterator<Item = u64> + '_ {
        let (fd, events, len) = (self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32);
        let mut n = -1;
        if self.precise {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: raw epoll_pwait2: the events buffer is valid for `len` entries, ts
            // outlives the call, no signal mask (null, size 8).
            let r = unsafe {
                libc::syscall(libc::SYS_epoll_pwait2, fd, events, len, &ts as *const libc::timespec, std::ptr::null::<libc::sigset_t>(), 8)
            };
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.precise = false;
            } else {
                n = r as i32;
            }
        }
        if !self.precise {
            // Round up so that we never wake a fraction of a millisecond early and spin.
            let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: the events buffer is valid for `len` entries.
            n = unsafe { libc::epoll_wait(fd, events, len, ms) };
        }
        let n = n.max(0) as usize;
        self.events[..n].iter().map(|e| e.u64)
    }
}

/// An eventfd used to wake a worker blocked in epoll when a command is queued.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Waker { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

pub fn to_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

pub fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says this is a sockaddr_in.
            let sin = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Preallocated receive batch for `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into the batch's own heap buffers, which move
// with it; the batch is used by one thread at a time.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(n: usize) -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; n],
            // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
            addrs: vec![unsafe { zeroed() }; n],
            iovs: vec![unsafe { zeroed() }; n],
            hdrs: vec![unsafe { zeroed() }; n],
        };
        for i in 0..n {
            b.iovs[i] = libc::iovec { iov_base: b.bufs[i].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
        }
        b
    }

    /// Read up to the batch size of datagrams from a non-blocking socket in one call.
    /// Returns the number read (0 when nothing was waiting).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        let n = self.bufs.len();
        for i in 0..n {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers owned by self that outlive the call.
        let r = unsafe {
            libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        r.max(0) as usize
    }

    /// The i-th datagram of the last `recv`: source address and bytes.
    pub fn get(&self, i: usize) -> (Option<SocketAddr>, &[u8]) {
        let len = self.hdrs[i].msg_len as usize;
        (from_sockaddr(&self.addrs[i]), &self.bufs[i][..len.min(MAX_DATAGRAM)])
    }
}

/// Preallocated send batch: datagrams queued with their socket and destination, sent
/// with one `sendmmsg` per run of consecutive datagrams on the same socket.
pub struct SendBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    fds: Vec<RawFd>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
    /// Datagrams the kernel refused (buffer full etc.), for diagnostics.
    pub dropped: u64,
}

// SAFETY: see RecvBatch.
unsafe impl Send for SendBatch {}

impl SendBatch {
    pub fn new(n: usize) -> SendBatch {
        SendBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; n],
            lens: vec![0; n],
            fds: vec![-1; n],
            // SAFETY: all-zero is valid for these C structs.
            addrs: vec![unsafe { zeroed() }; n],
            addr_lens: vec![0; n],
            iovs: vec![unsafe { zeroed() }; n],
            hdrs: vec![unsafe { zeroed() }; n],
            len: 0,
            dropped: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Queue one datagram (copied; ≤ 1500 bytes). Flushes first if the batch is full.
    pub fn push(&mut self, fd: RawFd, dest: &SocketAddr, data: &[u8]) {
        if self.is_full() {
            self.flush();
        }
        let i = self.len;
        let n = data.len().min(MAX_DATAGRAM);
        self.bufs[i][..n].copy_from_slice(&data[..n]);
        self.lens[i] = n;
        self.fds[i] = fd;
        self.addr_lens[i] = to_sockaddr(dest, &mut self.addrs[i]);
        self.len += 1;
    }

    /// Send everything queued.
    pub fn flush(&mut self) {
        let total = self.len;
        for i in 0..total {
            self.iovs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: self.lens[i] };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.addr_lens[i];
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut start = 0;
        while start < total {
            let fd = self.fds[start];
            let mut end = start + 1;
            while end < total && self.fds[end] == fd {
                end += 1;
            }
            let mut at = start;
            while at < end {
                // SAFETY: headers [at, end) point into our buffers, valid during the call.
                let r = unsafe {
                    libc::sendmmsg(fd, self.hdrs[at..].as_mut_ptr(), (end - at) as u32, libc::MSG_DONTWAIT)
                };
                if r <= 0 {
                    // Drop the datagram that failed (full socket buffer, unreachable
                    // destination reported via ICMP) and go on with the rest.
                    self.dropped += 1;
                    at += 1;
                } else {
                    at += r as usize;
                }
            }
            start = end;
        }
        self.len = 0;
    }
}

/// Set a socket's kernel receive and send buffer sizes (best effort): above the
/// system limits (`net.core.rmem_max`) when we may (CAP_NET_ADMIN), else up to them.
pub fn set_buffers(fd: RawFd, bytes: i32) {
    for (forced, capped) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        for opt in [forced, capped] {
            // SAFETY: passes a valid int option value.
            let r = unsafe {
                libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&bytes as *const i32).cast(), size_of::<i32>() as u32)
            };
            if r == 0 {
                break;
            }
        }
    }
}
