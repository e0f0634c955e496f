//! A tree of bridges: the lab's host is the root switch, every inner node a
//! namespace with a bridge, and hosts at the leaves, all one L2 network.
//!
//!     nsw run tree.wasm -- DEPTH FANOUT [nov6]
//!
//! Switch `s<path>` (path like `1-3`) has bridge `br0`, joined to its
//! parent's bridge by a veth (`up` on its side, `p<i>` on the parent's); a
//! leaf is host `h<path>` with `eth0`. Hosts get 10.215.x.y/16 in order, the
//! root 10.215.0.1/16. The first host pings the last (across the root) and
//! the root pings the last host.

use nsw_sdk::{Guest, Link, Netns, address, ping_until_reply, topology};

struct Tree;

struct Build {
    depth: u32,
    fanout: u32,
    hosts: Vec<(Netns, String)>,
}

fn host_addr(i: u32) -> String {
    format!("10.215.{}.{}", 1 + i / 250, 1 + i % 250)
}

impl Build {
    /// Hang the children of switch `parent` (bridge `bridge`) under it.
    fn children(&mut self, parent: &Netns, bridge: &Link, path: &str, level: u32) -> Result<(), String> {
        for i in 1..=self.fanout {
            let here = if path.is_empty() { i.to_string() } else { format!("{path}-{i}") };
            let port = format!("p{i}");
            if level == self.depth {
                let host = topology::create_netns(&format!("h{here}"))?;
                let (p, eth0) = topology::create_veth(&port, parent, "eth0", &host)?;
                topology::set_master(&p, bridge)?;
                topology::set_up(&p)?;
                let addr = host_addr(self.hosts.len() as u32);
                address::add(&eth0, &format!("{addr}/16"))?;
                topology::set_up(&eth0)?;
                self.hosts.push((host, addr));
            } else {
                let switch = topology::create_netns(&format!("s{here}"))?;
                let br = topology::create_bridge("br0", &switch)?;
                topology::set_up(&br)?;
                let (p, up) = topology::create_veth(&port, parent, "up", &switch)?;
                topology::set_master(&p, bridge)?;
                topology::set_master(&up, &br)?;
                topology::set_up(&p)?;
                topology::set_up(&up)?;
                self.children(&switch, &br, &here, level + 1)?;
            }
        }
        Ok(())
    }
}

impl Guest for Tree {
    fn run(args: Vec<String>) -> Result<(), String> {
        let num = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
        let (depth, fanout) = match (num(0), num(1)) {
            (Some(d), Some(f)) if (1..=8).contains(&d) && (1..=64).contains(&f) => (d, f),
            _ => return Err("usage: tree DEPTH FANOUT [nov6], 1 <= DEPTH <= 8, 1 <= FANOUT <= 64".into()),
        };
        if args.iter().any(|a| a == "nov6") {
            topology::set_ipv6_link_local(false);
        }
        let root = topology::host();
        let br = topology::create_bridge("br0", &root)?;
        address::add(&br, "10.215.0.1/16")?;
        topology::set_up(&br)?;
        let mut build = Build { depth, fanout, hosts: Vec::new() };
        build.children(&root, &br, "", 1)?;
        let switches: u32 = (0..depth).map(|l| fanout.pow(l)).sum();
        println!("tree of depth {depth}, fanout {fanout}: {switches} switches, {} hosts", build.hosts.len());
        let (first, _) = &build.hosts[0];
        let (_, last) = &build.hosts[build.hosts.len() - 1];
        for (from, what) in [(first, "first host"), (&root, "root")] {
            let stats = ping_until_reply(from, last, 5)?;
            if stats.received == 0 {
                return Err(format!("{what} cannot reach the last host ({last})"));
            }
            println!("{what} -> last host ({last}): reply in {:.3} ms", stats.avg_ms);
        }
        Ok(())
    }
}

nsw_sdk::export!(Tree);
