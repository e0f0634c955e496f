//! A star: N hosts on one bridge, the topology of the benchmarks.
//!
//!     nsw run star.wasm -- N [routes] [nat] [ping] [nov6]
//!
//! The baselines' topology (../shared/bench): bridge `br0` on the lab's
//! host with 10.213.0.1/16; host i (1..=N) is netns `h<i>`, joined by veth
//! `v<i>` (a bridge port, on the host) to `eth0` (in the node, born there)
//! with 10.213.(1+(i-1)/200).(10+(i-1)%200)/16, all up. `routes` adds a
//! default route via the bridge in every node; `nat` adds masquerade for
//! 10.213.0.0/16 and forwarding on the host; `ping` checks host -> hN,
//! h1 -> hN and h1 -> h(N/2) at the end; `nov6` turns IPv6 link-local
//! addresses off for every link (the baselines' `NOV6=1`).

use nsw_sdk::{Guest, IpFamily, Netns, address, nat, ping_until_reply, route, topology};

struct Star;

fn addr(i: u32) -> String {
    format!("10.213.{}.{}", 1 + (i - 1) / 200, 10 + (i - 1) % 200)
}

fn reach(from: &Netns, what: &str, target: &str) -> Result<(), String> {
    let stats = ping_until_reply(from, target, 5)?;
    if stats.received == 0 {
        return Err(format!("{what}: no reply from {target}"));
    }
    println!("{what}: reply from {target} in {:.3} ms", stats.avg_ms);
    Ok(())
}

impl Guest for Star {
    fn run(args: Vec<String>) -> Result<(), String> {
        let n: u32 = args.first().and_then(|a| a.parse().ok()).filter(|n| *n >= 1).ok_or("usage: star N [routes] [nat] [ping] [nov6], N >= 1")?;
        let want = |word: &str| args.iter().skip(1).any(|a| a == word);
        let host = topology::host();
        if want("nov6") {
            topology::set_ipv6_link_local(false);
        }
        let bridge = topology::create_bridge("br0", &host)?;
        address::add(&bridge, "10.213.0.1/16")?;
        topology::set_up(&bridge)?;
        let mut nodes = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let node = topology::create_netns(&format!("h{i}"))?;
            let (port, eth0) = topology::create_veth(&format!("v{i}"), &host, "eth0", &node)?;
            topology::set_master(&port, &bridge)?;
            topology::set_up(&port)?;
            address::add(&eth0, &format!("{}/16", addr(i)))?;
            topology::set_up(&eth0)?;
            if want("routes") {
                route::add(&node, "default", "10.213.0.1")?;
            }
            nodes.push(node);
        }
        println!("star of {n} hosts built");
        if want("nat") {
            nat::masquerade(&host, "10.213.0.0/16")?;
            route::enable_forwarding(&host, IpFamily::Ipv4)?;
            println!("NAT for 10.213.0.0/16 on the host");
        }
        if want("ping") {
            reach(&host, "host -> hN", &addr(n))?;
            reach(&nodes[0], "h1 -> hN", &addr(n))?;
            reach(&nodes[0], "h1 -> h(N/2)", &addr((n / 2).max(1)))?;
        }
        Ok(())
    }
}

nsw_sdk::export!(Star);
