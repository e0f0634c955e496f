//! A contained lab with a way out (needs `--allow uplink`): node `a`
//! behind the lab's host, which reaches the machine's network through the
//! uplink.
//!
//!     nsw run uplink_ping.wasm --allow uplink -- 203.0.113.1

use nsw_sdk::{Guest, IpFamily, address, nat, ping_until_reply, route, topology, uplink};

struct UplinkPing;

impl Guest for UplinkPing {
    fn run(args: Vec<String>) -> Result<(), String> {
        let target = args.first().ok_or("give an outside address to ping")?;
        let host = topology::host();
        let up = uplink::connect()?;
        println!("uplink {} connected", up.name());
        let a = topology::create_netns("a")?;
        let (inside, outside) = topology::create_veth("eth0", &a, "a0", &host)?;
        address::add(&inside, "10.20.0.2/24")?;
        address::add(&outside, "10.20.0.1/24")?;
        topology::set_up(&inside)?;
        topology::set_up(&outside)?;
        route::add(&a, "default", "10.20.0.1")?;
        route::enable_forwarding(&host, IpFamily::Ipv4)?;
        nat::masquerade(&host, "10.20.0.0/24")?;
        let stats = ping_until_reply(&a, target, 3)?;
        if stats.received == 0 {
            return Err(format!("no reply from {target}"));
        }
        println!("a -> {target}: reply in {:.3} ms", stats.avg_ms);
        Ok(())
    }
}

nsw_sdk::export!(UplinkPing);
