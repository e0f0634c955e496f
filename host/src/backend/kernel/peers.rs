//! Addresses a namespace talks to, which a lab must never shadow with a
//! subnet of its own on the machine: the resolvers in /etc/resolv.conf and
//! the peers of TCP connections (the neighbours come from netlink).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Resolvers and TCP peers, read from the calling thread's namespace (and
/// the files it sees). Parsing failures skip the line: this is a guard,
/// and a partial list is better than none.
pub fn here() -> io::Result<Vec<IpAddr>> {
    let mut peers = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") {
        peers.extend(resolvers(&text));
    }
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(path) {
            peers.extend(tcp_peers(&text, v6));
        }
    }
    Ok(peers)
}

fn resolvers(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver")).then(|| words.next()?.parse().ok()).flatten()
    })
}

/// Remote addresses of `/proc/net/tcp[6]` entries (hex, in host order
/// per 32-bit word), but for unspecified and loopback ones.
fn tcp_peers(text: &str, v6: bool) -> Vec<IpAddr> {
    let mut peers = Vec::new();
    for line in text.lines().skip(1) {
        let Some(remote) = line.split_whitespace().nth(2) else { continue };
        let Some((hex, _port)) = remote.split_once(':') else { continue };
        let words: Vec<u32> = (0..hex.len() / 8).filter_map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()).collect();
        let addr = match (v6, words.as_slice()) {
            (false, [a]) => IpAddr::V4(Ipv4Addr::from(a.to_le_bytes())),
            (true, [a, b, c, d]) => {
                let mut bytes = [0u8; 16];
                for (i, w) in [a, b, c, d].iter().enumerate() {
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
                }
                let v6 = Ipv6Addr::from(bytes);
                match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                }
            }
            _ => continue,
        };
        if !addr.is_unspecified() && !addr.is_loopback() {
            peers.push(addr);
        }
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resolvers_and_tcp_peers() {
        let conf = "# x\nnameserver 10.0.0.2\nsearch lan\nnameserver fd00::53\n";
        let found: Vec<IpAddr> = resolvers(conf).collect();
        assert_eq!(found, vec!["10.0.0.2".parse::<IpAddr>().unwrap(), "fd00::53".parse().unwrap()]);
        let tcp = "  sl  local_address rem_address   st\n   0: 0100007F:0016 0200000A:C350 01 ...\n   1: 00000000:0016 00000000:0000 0A\n";
        assert_eq!(tcp_peers(tcp, false), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    }
}
