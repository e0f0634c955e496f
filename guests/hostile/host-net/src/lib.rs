//! Changes to the machine's network a host-net lab must never make.
//!
//!     nsw run hostile_host_net.wasm --allow host-net... -- CASE [ARG]
//!
//! Every case first builds a bridge `hbr0` with 10.77.0.1/24 on the host
//! (inside the default grant, clear of the test machine's routes).
//! CASE: `address CIDR` (another address on hbr0), `default-route`,
//! `route PREFIX VIA`, `masquerade PREFIX`, `forward6`, `ping TARGET`.

use nsw_sdk::{Guest, address, nat, probe, route, topology};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let host = topology::host();
        let bridge = topology::create_bridge("hbr0", &host)?;
        address::add(&bridge, "10.77.0.1/24")?;
        topology::set_up(&bridge)?;
        match arg(0).as_str() {
            "address" => address::add(&bridge, &arg(1))?,
            "default-route" => route::add(&host, "default", "10.77.0.254")?,
            "route" => route::add(&host, &arg(1), &arg(2))?,
            "masquerade" => nat::masquerade(&host, &arg(1))?,
            "forward6" => route::enable_forwarding(&host, nsw_sdk::IpFamily::Ipv6)?,
            "ping" => drop(probe::ping(&host, &arg(1), probe::PingOptions { count: 1, timeout_ms: 100 })?),
            other => return Err(format!("unknown case {other}")),
        }
        Err(format!("the machine accepted {args:?}"))
    }
}

nsw_sdk::export!(Attack);
