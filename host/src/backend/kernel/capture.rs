//! Packet capture (`nsw capture`): an AF_PACKET socket opened on a thread
//! inside the node, bound to one interface, its packets written as pcapng
//! (the `pcap-file` crate) with the interface's name and link type, and
//! the kernel's drop count at the end. The node needs no tcpdump.

use std::borrow::Cow;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption};
use socket2::{Domain, Socket, Type};

use crate::stop::Stop;

/// When to stop capturing (besides a stop: Ctrl-C).
#[derive(Debug, Clone, Copy, Default)]
pub struct Until {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// What a capture saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Captured {
    pub packets: u64,
    /// Packets the kernel dropped because the socket's buffer was full.
    pub dropped: u64,
}

const ETH_P_ALL: u16 = 0x0003;
const SNAPLEN: usize = 65535;

fn pcap(e: pcap_file::PcapError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Capture on `ifname` in the namespace `ns` (the calling thread's if
/// `None`), writing pcapng to `out`; if `index` is given, only if the link
/// of that name still has that index. `ready` is called once the socket
/// listens. Blocks: run it on a thread of its own.
pub fn capture(ns: Option<&OwnedFd>, ifname: &str, index: Option<u32>, out: Box<dyn Write + Send>, until: Until, stop: &Stop, ready: impl FnOnce()) -> io::Result<Captured> {
    if let Some(ns) = ns {
        super::netns::join(ns)?;
    }
    let found = nix::net::if_::if_nametoindex(ifname).map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("no interface {ifname} there")))?;
    if index.is_some_and(|i| i != found) {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{ifname} is another link now (index {found})")));
    }
    let index = found;
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some((ETH_P_ALL.to_be() as i32).into()))?;
    bind(&socket, index)?;
    let mut writer = PcapNgWriter::new(out).map_err(pcap)?;
    let description = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: SNAPLEN as u32,
        options: vec![InterfaceDescriptionOption::IfName(Cow::Owned(ifname.to_string())), InterfaceDescriptionOption::IfTsResol(9)],
    };
    writer.write_pcapng_block(description).map_err(pcap)?;
    writer.get_mut().flush()?;
    ready();
    let started = Instant::now();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); SNAPLEN];
    let mut seen = Captured::default();
    loop {
        if stop.requested() || until.count.is_some_and(|c| seen.packets >= c) || until.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: recv initialised the first `len` bytes.
        let data = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, len) };
        let packet = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
            original_len: len as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        writer.write_pcapng_block(packet).map_err(pcap)?;
        // Packet by packet: a reader on a pipe (Wireshark) sees each at once.
        writer.get_mut().flush()?;
        seen.packets += 1;
    }
    seen.dropped = dropped(&socket).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let statistics = InterfaceStatisticsBlock {
        interface_id: 0,
        timestamp: now,
        options: vec![InterfaceStatisticsOption::IsbIfRecv(seen.packets), InterfaceStatisticsOption::IsbIfDrop(seen.dropped)],
    };
    writer.write_pcapng_block(statistics).map_err(pcap)?;
    writer.get_mut().flush()?;
    Ok(seen)
}

/// Bind an AF_PACKET socket to one interface. (`sockaddr_ll` by hand:
/// socket2 has no constructor for it.)
fn bind(socket: &Socket, index: u32) -> io::Result<()> {
    // SAFETY: a zeroed sockaddr_ll is valid; we fill the fields bind reads.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = ETH_P_ALL.to_be();
    address.sll_ifindex = index as i32;
    // SAFETY: the pointer and length describe `address`.
    let rc = unsafe { libc::bind(socket.as_raw_fd(), (&address as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32) };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The kernel's count of packets it dropped for this socket.
fn dropped(socket: &Socket) -> io::Result<u64> {
    let mut stats = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `stats`.
    let rc = unsafe { libc::getsockopt(socket.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS, (&mut stats as *mut libc::tpacket_stats).cast(), &mut len) };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(stats.tp_drops as u64) }
}
