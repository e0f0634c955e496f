//! Probes beyond ping, measured natively from threads inside the lab's
//! namespaces: a TCP connection attempt, a TCP throughput run between two
//! namespaces, and a trace of the routers on the way. Every wait is sliced
//! so that a stop is noticed within 50 ms.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netns;
use crate::backend::{ConnectOutcome, Hop, Throughput};
use crate::stop::Stop;

const SLICE: Duration = Duration::from_millis(50);

/// Try a TCP connection from the calling thread's namespace.
pub fn tcp_connect_here(to: SocketAddr, timeout: Duration, stop: &Stop) -> io::Result<(ConnectOutcome, Duration)> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    let start = Instant::now();
    let outcome = match socket.connect(&SockAddr::from(to)) {
        Ok(()) => Ok(ConnectOutcome::Connected),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => wait_connected(&socket, start + timeout, stop),
        Err(e) => classify(e),
    };
    Ok((outcome?, start.elapsed()))
}

fn wait_connected(socket: &Socket, deadline: Instant, stop: &Stop) -> io::Result<ConnectOutcome> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let now = Instant::now();
        if now >= deadline || stop.requested() {
            return Ok(ConnectOutcome::TimedOut);
        }
        let slice = (deadline - now).min(SLICE);
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        let ready = poll(&mut fds, PollTimeout::try_from(slice.as_millis() as i32).unwrap_or(PollTimeout::MAX))?;
        if ready == 0 {
            continue;
        }
        return match socket.take_error()? {
            None => Ok(ConnectOutcome::Connected),
            Some(e) => classify(e),
        };
    }
}

fn classify(e: io::Error) -> io::Result<ConnectOutcome> {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Ok(ConnectOutcome::Refused),
        Some(libc::ETIMEDOUT) => Ok(ConnectOutcome::TimedOut),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EHOSTDOWN) => Ok(ConnectOutcome::Unreachable),
        _ => Err(e),
    }
}

/// Send TCP from `sender` to a receiver in `receiver` listening on
/// `address` for `duration`; what the receiver got, and the sender's
/// retransmissions. Blocks: run it off the async runtime.
/// Whether a socket of this thread's network namespace listens on TCP
/// `port` (or, `udp`, is bound to UDP `port`), IPv4 or IPv6: what
/// `/proc/thread-self/net` lists (`/proc/self/net` would be the main
/// thread's namespace, not this one's). A plain text table the kernel
/// keeps stable; sock_diag over netlink would say the same at more cost.
pub fn port_bound_here(udp: bool, port: u16) -> io::Result<bool> {
    let tables: [&str; 2] = if udp { ["udp", "udp6"] } else { ["tcp", "tcp6"] };
    for table in tables {
        let text = match std::fs::read_to_string(format!("/proc/thread-self/net/{table}")) {
            Ok(text) => text,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if bound_in(&text, udp, port) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a table of `/proc/net/{tcp,udp}[6]` has a socket on local
/// `port`: listening (state 0A) for TCP, any for UDP.
fn bound_in(table: &str, udp: bool, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1).and_then(|l| l.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && (udp || fields.get(3) == Some(&"0A"))
    })
}

pub fn throughput(sender: Arc<OwnedFd>, receiver: Arc<OwnedFd>, address: IpAddr, duration: Duration, stop: Stop) -> io::Result<Throughput> {
    // The receiver's socket, bound in its namespace; then served by a
    // thread of its own.
    let listener = netns::run_in(&receiver, || TcpListener::bind(SocketAddr::new(address, 0)))?;
    let port = listener.local_addr()?.port();
    // Every wait of both ends has an end: the run's time, a few seconds
    // past it for what is still in flight, or a stop. (A lossy path can
    // block a write or a read for minutes otherwise.)
    let connect_by = Instant::now() + Duration::from_secs(5);
    let done_by = connect_by + duration + DRAIN;
    let receiver_stop = stop.clone();
    let received = std::thread::Builder::new().name("nsw-receive".into()).spawn(move || -> io::Result<(u64, Duration)> {
        listener.set_nonblocking(true)?;
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= connect_by || receiver_stop.requested() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "the sender never connected"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(SLICE))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut bytes = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    first.get_or_insert_with(Instant::now);
                    bytes += n as u64;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
            // What has not arrived by then is not counted.
            if Instant::now() >= done_by || receiver_stop.requested() {
                break;
            }
        }
        Ok((bytes, first.map(|f| f.elapsed()).unwrap_or_default()))
    })?;
    let to = SocketAddr::new(address, port);
    let sent = netns::run_in(&sender, move || -> io::Result<u32> {
        let mut conn = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        conn.set_write_timeout(Some(SLICE))?;
        let buf = vec![0x5au8; 256 << 10];
        let until = Instant::now() + duration;
        while Instant::now() < until && !stop.requested() {
            match conn.write(&buf) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        let retransmits = total_retransmits(&conn).unwrap_or(0);
        conn.shutdown(std::net::Shutdown::Write)?;
        Ok(retransmits)
    });
    let retransmits = match sent {
        Ok(r) => r,
        Err(e) => {
            // Unblock the receiver: connect to it ourselves, then close.
            let _ = netns::run_in(&receiver, move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)).map(drop));
            let _ = received.join();
            return Err(e);
        }
    };
    let (bytes, elapsed) = received.join().map_err(|_| io::Error::other("the receiver thread panicked"))??;
    Ok(Throughput { bytes, seconds: elapsed.as_secs_f64().max(1e-6), retransmits })
}

/// How long after the sender's last write the receiver still counts
/// what arrives.
const DRAIN: Duration = Duration::from_secs(3);

/// `tcpi_total_retrans` from TCP_INFO. (The struct is read with libc's
/// own layout; no crate wraps it.)
fn total_retransmits(conn: &std::net::TcpStream) -> io::Result<u32> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a zeroed tcp_info of `len` bytes; the kernel writes at most `len`.
    let rc = unsafe { libc::getsockopt(conn.as_raw_fd(), libc::SOL_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, and filled by the kernel as far as it goes.
    Ok(unsafe { info.assume_init() }.tcpi_total_retrans)
}

/// Tries of a hop that does not answer: a router answers only so many
/// probes a second (the kernel's ICMP rate limit), and right after a route
/// changes the first probe may go unanswered.
const HOP_TRIES: u16 = 3;
/// Silent hops in a row after which a trace gives up: the way is lost
/// (nothing beyond is likely to answer, and each costs [`HOP_TRIES`] s).
const SILENT_HOPS: u32 = 4;

/// Trace the way from the calling thread's namespace to `target`: ICMP
/// echo with TTL 1, 2, ... up to 30, until the target answers; a hop that
/// is silent for a second is asked again, up to [`HOP_TRIES`] times, and
/// is a hop without an address if it never answers. The trace ends at
/// the target, at a hop that answers "unreachable", or after
/// [`SILENT_HOPS`] silent hops in a row.
pub fn trace_here(target: IpAddr, stop: &Stop) -> io::Result<Vec<Hop>> {
    let v6 = target.is_ipv6();
    let socket = super::ping::icmp_socket(target)?;
    let to = SockAddr::from(SocketAddr::new(target, 0));
    let id = super::ping::next_identifier();
    let mut hops = Vec::new();
    let mut silent = 0;
    'hops: for ttl in 1..=30u8 {
        if v6 {
            socket.set_unicast_hops_v6(ttl as u32)?;
        } else {
            socket.set_ttl_v4(ttl as u32)?;
        }
        // Each try has a sequence number of its own (TTL, try), and an
        // answer to an earlier try of this hop counts as well.
        let seq = |try_: u16| (try_ << 8) | ttl as u16;
        let mut answer = None;
        for try_ in 0..HOP_TRIES {
            if stop.requested() {
                break 'hops;
            }
            let start = Instant::now();
            if let Err(e) = socket.send_to(&super::ping::echo_request(v6, id, seq(try_)), &to) {
                if matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) {
                    hops.push(Hop { ttl, address: None, rtt: Duration::ZERO });
                    break 'hops;
                }
                return Err(e);
            }
            answer = super::ping::receive_until(&socket, start + Duration::from_secs(1), stop, |from, packet| {
                (0..=try_).find_map(|t| classify_answer(v6, packet, id, seq(t))).map(|answer| (from, answer, start.elapsed()))
            })?;
            if answer.is_some() {
                break;
            }
        }
        match answer {
            Some((from, answer, rtt)) => {
                silent = 0;
                hops.push(Hop { ttl, address: Some(from), rtt });
                // The target, or a hop that says nothing gets further.
                if answer != Answer::OnTheWay {
                    break;
                }
            }
            None => {
                hops.push(Hop { ttl, address: None, rtt: Duration::ZERO });
                silent += 1;
                if silent == SILENT_HOPS {
                    break;
                }
            }
        }
    }
    Ok(hops)
}

/// What an answer to one of a trace's probes says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// The target's echo reply.
    Reached,
    /// A router on the way: time exceeded.
    OnTheWay,
    /// A router (or the target) that cannot deliver it: unreachable.
    Unreachable,
}

/// What `packet` (as a raw ICMP socket returns it: with the IPv4 header,
/// without the IPv6 one) says about our probe (`id`, `seq`).
fn classify_answer(v6: bool, packet: &[u8], id: u16, seq: u16) -> Option<Answer> {
    let icmp = if v6 { packet } else { packet.get(((packet.first()? & 0x0f) as usize) * 4..)? };
    if super::ping::is_reply(v6, packet, id, seq) {
        return Some(Answer::Reached);
    }
    let (time_exceeded, unreachable) = if v6 { (3, 1) } else { (11, 3) };
    let answer = match *icmp.first()? {
        t if t == time_exceeded => Answer::OnTheWay,
        t if t == unreachable => Answer::Unreachable,
        _ => return None,
    };
    // After the 8-byte ICMP header: the original IP header, then the
    // first 8 bytes of our echo request.
    let original = icmp.get(8..)?;
    let echo = if v6 { original.get(40..)? } else { original.get(((original.first()? & 0x0f) as usize) * 4..)? };
    let matches = echo.len() >= 8 && u16::from_be_bytes([echo[4], echo[5]]) == id && u16::from_be_bytes([echo[6], echo[7]]) == seq;
    matches.then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_exceeded_for_our_probe_is_recognised() {
        let mut original = vec![0x45u8];
        original.extend_from_slice(&[0u8; 19]);
        original.extend_from_slice(&super::super::ping::echo_request(false, 7, 3)[..8]);
        let mut packet = vec![0x45u8];
        packet.extend_from_slice(&[0u8; 19]);
        packet.extend_from_slice(&[11, 0, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(&original);
        assert_eq!(classify_answer(false, &packet, 7, 3), Some(Answer::OnTheWay));
        assert_eq!(classify_answer(false, &packet, 7, 4), None);
    }

    #[test]
    fn a_listening_port_is_found_in_the_kernels_table() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
                   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(bound_in(tcp, false, 80));
        // 8080 is only a connection's end there, not a listener.
        assert!(!bound_in(tcp, false, 8080));
        assert!(bound_in(tcp, true, 8080));
        assert!(!bound_in(tcp, false, 443));
    }
}
