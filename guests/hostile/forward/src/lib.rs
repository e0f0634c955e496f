//! A host-net lab that needs the machine's IPv4 forwarding: a bridge with
//! an address on the machine, and forwarding on.
//!
//!     nsw run hostile_forward.wasm --allow host-net -- BRIDGE CIDR

use nsw_sdk::{Guest, IpFamily, address, route, topology};

struct Forward;

impl Guest for Forward {
    fn run(args: Vec<String>) -> Result<(), String> {
        let (Some(name), Some(cidr)) = (args.first(), args.get(1)) else {
            return Err("usage: BRIDGE CIDR".into());
        };
        let host = topology::host();
        let bridge = topology::create_bridge(name, &host)?;
        address::add(&bridge, cidr)?;
        topology::set_up(&bridge)?;
        route::enable_forwarding(&host, IpFamily::Ipv4)?;
        println!("forwarding on");
        Ok(())
    }
}

nsw_sdk::export!(Forward);
