//! ICMP echo from inside a namespace, on a raw socket.
//!
//! Raw sockets need only CAP_NET_RAW, which nsw has; ICMP datagram sockets
//! would need `net.ipv4.ping_group_range` changed in every namespace,
//! including the machine's. The echo packet is eight bytes of header and a
//! checksum, so it is built here rather than pulled in with a packet crate.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::backend::PingStats;
use crate::stop::Stop;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Payload after the header: a send timestamp is not needed (we keep it).
const PAYLOAD: &[u8] = b"nsw-ping-payload-0123456789abcdef";

/// A different identifier for each ping of this process, so concurrent
/// pings never take each other's replies.
pub(super) fn next_identifier() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 { u16::from_be_bytes([chunk[0], chunk[1]]) } else { u16::from_be_bytes([chunk[0], 0]) };
        sum += word as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let kind = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if !v6 {
        // The kernel fills in ICMPv6 checksums itself (RFC 3542).
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// If `packet` (as a raw socket returns it) is the reply to (id, seq),
/// say so. IPv4 raw sockets include the IP header; IPv6 ones do not.
pub(super) fn is_reply(v6: bool, packet: &[u8], id: u16, seq: u16) -> bool {
    reply_seq(v6, packet, id) == Some(seq)
}

/// The sequence number of `packet` if it is the reply to one of our echo
/// requests with identifier `id`.
fn reply_seq(v6: bool, packet: &[u8], id: u16) -> Option<u16> {
    let icmp = if v6 {
        packet
    } else {
        let header_len = ((packet.first()? & 0x0f) as usize) * 4;
        packet.get(header_len..)?
    };
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    let ours = icmp.len() >= 8 && icmp[0] == reply && icmp[1] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == id && &icmp[8..] == PAYLOAD;
    ours.then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// A raw ICMP (or ICMPv6) socket for echo requests to `target`, in the
/// calling thread's namespace: pings and traces share it.
pub(super) fn icmp_socket(target: IpAddr) -> io::Result<Socket> {
    if target.is_ipv6() {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
    }
}

/// Ping `target` `count` times from the calling thread's namespace, waiting
/// up to `timeout` for each reply. As with ping(8), a reply that comes
/// late, while a later request is awaited, still counts: the first echo of
/// a path whose neighbours are not yet known may wait a neighbour
/// discovery retransmission (a second) and is not lost. An echo is lost
/// when no reply has come `timeout` after the last request. Blocks; run it
/// on a namespace thread.
pub fn ping_here(target: IpAddr, count: u32, timeout: Duration, interval: Duration, stop: &Stop) -> io::Result<PingStats> {
    let v6 = target.is_ipv6();
    let socket = icmp_socket(target)?;
    let to = SockAddr::from(SocketAddr::new(target, 0));
    let id = next_identifier();
    // Per request sent: when, and the round trip once its reply came.
    let mut sent: Vec<(Instant, Option<Duration>)> = Vec::new();
    let mut last_send: Option<Instant> = None;
    let mut last_deadline: Option<Instant> = None;
    // Take a reply to any request sent so far; true once `want` has one.
    let note = |sent: &mut Vec<(Instant, Option<Duration>)>, from: IpAddr, packet: &[u8], want: Option<usize>| {
        if from == target {
            if let Some((at, rtt)) = reply_seq(v6, packet, id).and_then(|seq| sent.get_mut(seq as usize)) {
                rtt.get_or_insert_with(|| at.elapsed());
            }
        }
        match want {
            Some(seq) => sent[seq].1.is_some(),
            None => sent.iter().all(|(_, rtt)| rtt.is_some()),
        }
    };
    for seq in 0..count.min(u16::MAX as u32 + 1) as usize {
        if stop.requested() {
            break;
        }
        // Pace the requests: never closer than `interval`.
        if let Some(last) = last_send {
            let since = last.elapsed();
            if since < interval {
                std::thread::sleep(interval - since);
            }
        }
        let start = Instant::now();
        last_send = Some(start);
        last_deadline = Some(start + timeout);
        let request = echo_request(v6, id, seq as u16);
        sent.push((start, None));
        match socket.send_to(&request, &to) {
            Ok(_) => {}
            // No route, or the neighbour is unreachable: counts as lost.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EHOSTDOWN)) => continue,
            Err(e) => return Err(e),
        }
        receive_until(&socket, start + timeout, stop, |from, packet| note(&mut sent, from, packet, Some(seq)).then_some(()))?;
    }
    // Replies still owed to earlier requests may come until the last one's
    // time is up.
    if let Some(deadline) = last_deadline {
        if sent.iter().any(|(_, rtt)| rtt.is_none()) {
            receive_until(&socket, deadline, stop, |from, packet| note(&mut sent, from, packet, None).then_some(()))?;
        }
    }
    let rtts: Vec<Duration> = sent.iter().filter_map(|(_, rtt)| *rtt).collect();
    Ok(PingStats::from_rtts(sent.len() as u32, &rtts))
}

/// Wait until `deadline` (never past a stop) for a packet on `socket` that
/// `accept` takes (given its source and bytes): what `accept` made of it,
/// or `None`. Waits in slices, so that a stop is noticed quickly.
pub(super) fn receive_until<T>(socket: &Socket, deadline: Instant, stop: &Stop, mut accept: impl FnMut(IpAddr, &[u8]) -> Option<T>) -> io::Result<Option<T>> {
    const SLICE: Duration = Duration::from_millis(50);
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let now = Instant::now();
        if now >= deadline || stop.requested() {
            return Ok(None);
        }
        socket.set_read_timeout(Some((deadline - now).min(SLICE)))?;
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: recv_from initialised the first `len` bytes.
        let packet = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, len) };
        let Some(from) = from.as_socket().map(|a| a.ip()) else { continue };
        if let Some(answer) = accept(from, packet) {
            return Ok(Some(answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_echo_request_verifies() {
        let packet = echo_request(false, 0x1234, 7);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&packet), 0);
        assert_eq!(packet[0], ECHO_REQUEST_V4);
    }

    #[test]
    fn recognises_its_reply_only() {
        let mut reply = vec![0x45u8; 1];
        reply.extend_from_slice(&[0u8; 19]);
        let mut icmp = echo_request(false, 9, 3);
        icmp[0] = ECHO_REPLY_V4;
        reply.extend_from_slice(&icmp);
        assert!(is_reply(false, &reply, 9, 3));
        assert!(!is_reply(false, &reply, 9, 4));
        assert!(!is_reply(false, &reply, 8, 3));
        assert!(!is_reply(false, &reply[..22], 9, 3));
    }
}
