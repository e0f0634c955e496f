//! A chain of N routers, r1 - r2 - ... - rN, each a namespace with IPv4
//! forwarding on, so that a ping from r1 to rN crosses every one of them.
//!
//!     nsw run linear.wasm -- N [nov6] [trace]
//!
//! Link k joins r<k> (`right`, 10.214.x.y+1/30) to r<k+1> (`left`, +2/30),
//! the /30s taken in order from 10.214.0.0/16. Routers route the last link
//! to the right and the first to the left; r1 pings rN's address at the end
//! (and with `trace`, traces the way there: one hop per router).

use std::net::Ipv4Addr;

use nsw_sdk::{Guest, IpFamily, address, ping_until_reply, probe, route, topology};

struct Linear;

/// The /30 of link k (1-based) as (network, r<k>'s address, r<k+1>'s).
fn link(k: u32) -> (String, String, String) {
    let base = u32::from(Ipv4Addr::new(10, 214, 0, 0)) + 4 * (k - 1);
    let ip = |n: u32| Ipv4Addr::from(n).to_string();
    (format!("{}/30", ip(base)), ip(base + 1), ip(base + 2))
}

impl Guest for Linear {
    fn run(args: Vec<String>) -> Result<(), String> {
        let n: u32 = args.first().and_then(|a| a.parse().ok()).filter(|n| (2..=16384).contains(n)).ok_or("usage: linear N [nov6] [trace], 2 <= N <= 16384")?;
        if args.iter().any(|a| a == "nov6") {
            topology::set_ipv6_link_local(false);
        }
        let mut routers = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let r = topology::create_netns(&format!("r{i}"))?;
            route::enable_forwarding(&r, IpFamily::Ipv4)?;
            routers.push(r);
        }
        for k in 1..n {
            let (_, right, left) = link(k);
            let (a, b) = (&routers[k as usize - 1], &routers[k as usize]);
            let (r_end, l_end) = topology::create_veth("right", a, "left", b)?;
            address::add(&r_end, &format!("{right}/30"))?;
            address::add(&l_end, &format!("{left}/30"))?;
            topology::set_up(&r_end)?;
            topology::set_up(&l_end)?;
        }
        let (first, first_addr, _) = link(1);
        let (last, _, target) = link(n - 1);
        for i in 1..=n {
            let r = &routers[i as usize - 1];
            // Toward the last link, through the right neighbour...
            if i + 1 < n {
                route::add(r, &last, &link(i).2)?;
            }
            // ...and back toward the first, through the left one.
            if i > 2 {
                route::add(r, &first, &link(i - 1).1)?;
            }
        }
        println!("chain of {n} routers built");
        let stats = ping_until_reply(&routers[0], &target, 5)?;
        if stats.received == 0 {
            return Err(format!("r1 ({first_addr}) cannot reach r{n} ({target})"));
        }
        println!("r1 -> r{n} ({target}) across {} routers: reply in {:.3} ms", n - 2, stats.avg_ms);
        if args.iter().any(|a| a == "trace") {
            for hop in probe::trace(&routers[0], &target)? {
                println!("hop {}: {}", hop.ttl, hop.address.as_deref().unwrap_or("*"));
            }
        }
        Ok(())
    }
}

nsw_sdk::export!(Linear);
