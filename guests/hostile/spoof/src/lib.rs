//! Attack: nodes with made-up source addresses (a documentation range, and
//! the machine's kind of private range) behind a forwarding lab host with
//! an uplink and no masquerade, pinging the outside world. Nothing may
//! leave the machine with their addresses.
//!
//!     nsw run hostile_spoof.wasm --allow uplink -- TARGET

use nsw_sdk::{Guest, IpFamily, address, ping_until_reply, route, topology, uplink};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let target = args.first().ok_or("give an outside address")?;
        let host = topology::host();
        uplink::connect()?;
        route::enable_forwarding(&host, IpFamily::Ipv4)?;
        for (node, net, addr, gw) in [("s1", "s1", "198.51.100.77/24", "198.51.100.1"), ("s2", "s2", "10.0.0.9/24", "10.0.0.1")] {
            let ns = topology::create_netns(node)?;
            let (inside, outside) = topology::create_veth("eth0", &ns, net, &host)?;
            address::add(&inside, addr)?;
            address::add(&outside, &format!("{gw}/24"))?;
            topology::set_up(&inside)?;
            topology::set_up(&outside)?;
            route::add(&ns, "default", gw)?;
            // No masquerade on the lab's host: the packets leave it with
            // the node's own source.
            let stats = ping_until_reply(&ns, target, 3)?;
            println!("{node} ({addr}) -> {target}: {}/{}", stats.received, stats.sent);
        }
        Ok(())
    }
}

nsw_sdk::export!(Attack);
