//! Misuses the nsw API on purpose, one way per run, after building a little
//! (a namespace and a veth pair) so that the test can see the rollback.
//!
//!     nsw run misuse.wasm -- MODE [ARG...]
//!
//! Host errors are returned as they come (`kind: message`).

use nsw_sdk::{Guest, address, nat, route, service, topology};

struct Misuse;

impl Guest for Misuse {
    fn run(args: Vec<String>) -> Result<(), String> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let host = topology::host();
        let base = topology::create_netns("base")?;
        let (inner, outer) = topology::create_veth("m-in", &base, "m-out", &host)?;
        println!("built netns base and veth m-in/m-out");
        match arg(0).as_str() {
            "ok" => Ok(()),
            "ipv6" => {
                // The pair over IPv6: addresses, a route beyond, forwarding, a ping.
                address::add(&inner, "fd00:db8::2/64")?;
                address::add(&outer, "fd00:db8::1/64")?;
                topology::set_up(&inner)?;
                topology::set_up(&outer)?;
                route::add(&base, "fd00:beef::/48", "fd00:db8::1")?;
                route::enable_forwarding(&host, nsw_sdk::IpFamily::Ipv6)?;
                let stats = nsw_sdk::ping_until_reply(&base, "fd00:db8::1", 3)?;
                println!("ipv6 ping: {}/{}", stats.received, stats.sent);
                if stats.received == 0 { Err("no IPv6 reply".into()) } else { Ok(()) }
            }
            "netns" => topology::create_netns(&arg(1)).map(drop).map_err(String::from),
            "netns-nul" => topology::create_netns("a\0b").map(drop).map_err(String::from),
            "ifname" => topology::create_bridge(&arg(1), &host).map(drop).map_err(String::from),
            "address" => address::add(&inner, &arg(1)).map_err(String::from),
            "route" => route::add(&base, &arg(1), &arg(2)).map_err(String::from),
            "route-down" => {
                // A gateway on a link that was never set up.
                address::add(&inner, "10.60.0.2/24")?;
                route::add(&base, "default", "10.60.0.1").map_err(String::from)
            }
            "ping-down" => {
                // Pinging over a link that was never set up.
                address::add(&inner, "10.61.0.2/24")?;
                address::add(&outer, "10.61.0.1/24")?;
                topology::set_up(&outer)?;
                let stats = nsw_sdk::probe::ping(&host, "10.61.0.2", nsw_sdk::probe::PingOptions { count: 1, timeout_ms: 200 })?;
                Err(format!("{}/{} replies", stats.received, stats.sent))
            }
            "masquerade" => nat::masquerade(&host, &arg(1)).map_err(String::from),
            "duplicate-netns" => topology::create_netns("base").map(drop).map_err(String::from),
            "duplicate-link" => topology::create_bridge("m-out", &host).map(drop).map_err(String::from),
            "master-across" => {
                let bridge = topology::create_bridge("br0", &host)?;
                topology::set_master(&inner, &bridge).map_err(String::from)
            }
            // Services that cannot start (not components): each is
            // refused for what it is, and gives back the memory it took.
            "bad-services" => {
                for i in 0..4 {
                    match service::start(&base, "junk", &[0u8; 16], &[]) {
                        Ok(_) => return Err(format!("junk service {i} started")),
                        Err(e) => println!("junk service {i}: {}", String::from(e)),
                    }
                }
                Ok(())
            }
            "trap" => {
                let _ = &outer;
                panic!("misuse: a trap halfway through building the lab")
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

nsw_sdk::export!(Misuse);
