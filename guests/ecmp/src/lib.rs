//! One destination over two routers at once. `a` reaches `b`'s service
//! network 10.0.5.0/24 through `r1` and `r2` with one route of two
//! gateways (weights 1 and 3: the kernel sends about a quarter of the
//! flows through r1); `b` answers each back the way it came.
//!
//!     a ─ r1 ─ b
//!      ╲      ╱
//!       ─ r2 ─
//!
//!     nsw run ecmp.wasm [-- WEIGHT1 WEIGHT2]

use nsw_sdk::{Guest, route, topology, types::IpFamily, wire};

struct Ecmp;

impl Guest for Ecmp {
    fn run(args: Vec<String>) -> Result<(), String> {
        let weight = |at: usize, default: u16| args.get(at).and_then(|w| w.parse().ok()).unwrap_or(default);
        let (a, r1, r2, b) = (topology::create_netns("a")?, topology::create_netns("r1")?, topology::create_netns("r2")?, topology::create_netns("b")?);
        wire((&a, "eth1", "10.0.1.1/24"), (&r1, "eth-a", "10.0.1.2/24"))?;
        wire((&a, "eth2", "10.0.2.1/24"), (&r2, "eth-a", "10.0.2.2/24"))?;
        wire((&r1, "eth-b", "10.0.3.1/24"), (&b, "eth1", "10.0.3.2/24"))?;
        wire((&r2, "eth-b", "10.0.4.1/24"), (&b, "eth2", "10.0.4.2/24"))?;
        // b's service network: a bridge of its own, with b's address on it.
        let service = topology::create_bridge("svc", &b)?;
        nsw_sdk::address::add(&service, "10.0.5.1/24")?;
        topology::set_up(&service)?;
        for (router, to_b) in [(&r1, "10.0.3.2"), (&r2, "10.0.4.2")] {
            route::enable_forwarding(router, IpFamily::Ipv4)?;
            route::add(router, "10.0.5.0/24", to_b)?;
        }
        route::add(&b, "10.0.1.0/24", "10.0.3.1")?;
        route::add(&b, "10.0.2.0/24", "10.0.4.1")?;
        let hops = [
            route::NextHop { via: "10.0.1.2".into(), weight: weight(0, 1) },
            route::NextHop { via: "10.0.2.2".into(), weight: weight(1, 3) },
        ];
        route::add_multipath(&a, "10.0.5.0/24", &hops)?;
        if !nsw_sdk::reaches(&a, "10.0.5.1", 5)? {
            return Err("a does not reach 10.0.5.1 over its two gateways".into());
        }
        println!("a reaches 10.0.5.1 through r1 (weight {}) and r2 (weight {})", hops[0].weight, hops[1].weight);
        Ok(())
    }
}

nsw_sdk::export!(Ecmp);
