//! IPv6 routed over two routers, usable the moment it is built:
//!
//!     h1 --fd01::/64-- r1 --fd12::/64-- r2 --bridge fd02::/64-- h2, h3
//!
//!     nsw run routed6.wasm [-- nolinklocal]
//!
//! Static routes, IPv6 forwarding on both routers, then one ping of three
//! echo requests from h1 to h2 and to h3: every one must come back, the
//! first included. With `nolinklocal` the lab turns IPv6 link-local
//! addresses off first (the routers keep theirs: they need them).

use nsw_sdk::{Guest, IpFamily, Netns, address, probe, route, topology};

struct Routed6;

/// A veth pair `a`—`b` between two nodes, addressed and up.
fn wire(a: (&Netns, &str, &str), b: (&Netns, &str, &str)) -> Result<(), String> {
    let (la, lb) = topology::create_veth(a.1, a.0, b.1, b.0)?;
    address::add(&la, a.2)?;
    address::add(&lb, b.2)?;
    topology::set_up(&la)?;
    topology::set_up(&lb)?;
    Ok(())
}

impl Guest for Routed6 {
    fn run(args: Vec<String>) -> Result<(), String> {
        if args.iter().any(|a| a == "nolinklocal") {
            topology::set_ipv6_link_local(false);
        }
        let node = |name: &str| topology::create_netns(name);
        let (h1, r1, r2, h2, h3) = (node("h1")?, node("r1")?, node("r2")?, node("h2")?, node("h3")?);
        wire((&h1, "eth0", "fd01::2/64"), (&r1, "eth0", "fd01::1/64"))?;
        wire((&r1, "eth1", "fd12::1/64"), (&r2, "eth1", "fd12::2/64"))?;
        let bridge = topology::create_bridge("br0", &r2)?;
        address::add(&bridge, "fd02::1/64")?;
        topology::set_up(&bridge)?;
        for (host, ip, port) in [(&h2, "fd02::2/64", "p2"), (&h3, "fd02::3/64", "p3")] {
            let (eth, p) = topology::create_veth("eth0", host, port, &r2)?;
            address::add(&eth, ip)?;
            topology::set_up(&eth)?;
            topology::set_master(&p, &bridge)?;
            topology::set_up(&p)?;
            route::add(host, "default", "fd02::1")?;
        }
        route::add(&h1, "default", "fd01::1")?;
        route::add(&r1, "fd02::/64", "fd12::2")?;
        route::add(&r2, "fd01::/64", "fd12::1")?;
        route::enable_forwarding(&r1, IpFamily::Ipv6)?;
        route::enable_forwarding(&r2, IpFamily::Ipv6)?;
        let options = probe::PingOptions { count: 3, timeout_ms: 1000 };
        let mut lost = false;
        for (name, target) in [("h2", "fd02::2"), ("h3", "fd02::3")] {
            let stats = probe::ping(&h1, target, options)?;
            println!("h1 -> {name} ({target}): {}/{} replies", stats.received, stats.sent);
            lost |= stats.received < stats.sent;
        }
        if lost { Err("IPv6 through the routers lost echoes".into()) } else { Ok(()) }
    }
}

nsw_sdk::export!(Routed6);
