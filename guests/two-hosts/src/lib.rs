//! The README's example lab script, kept here so that it is built and tested.

use nsw_sdk::{Guest, address, probe, topology};

struct TwoHosts;

impl Guest for TwoHosts {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        let a = topology::create_netns("a")?;
        let (inside, outside) = topology::create_veth("eth0", &a, "a-eth0", &host)?;
        address::add(&inside, "192.168.7.2/24")?;
        address::add(&outside, "192.168.7.1/24")?;
        topology::set_up(&inside)?;
        topology::set_up(&outside)?;
        let stats = probe::ping(&host, "192.168.7.2", probe::PingOptions { count: 3, timeout_ms: 1000 })?;
        println!("{}/{} replies", stats.received, stats.sent);
        Ok(())
    }
}

nsw_sdk::export!(TwoHosts);
