//! The pb-and-jelly lab from the tutorial nsw grew out of, step for step:
//! two namespaces, each joined by a veth pair to a bridge on the host,
//! reachable from the host, NATed to the outside.
//!
//!     nsw run pbj.wasm                                   # contained
//!     nsw run pbj.wasm --allow host-net -- 203.0.113.1   # tutorial-exact, ping outside

use nsw_sdk::{Guest, IpFamily, Netns, address, nat, ping_until_reply, route, topology};

struct Pbj;

impl Guest for Pbj {
    fn run(args: Vec<String>) -> Result<(), String> {
        build(args.first().map(String::as_str))
    }
}

nsw_sdk::export!(Pbj);

const SUBNET: &str = "10.0.0.0/16";
const GATEWAY: &str = "10.0.0.1";
const PB: &str = "10.0.0.10";
const JELLY: &str = "10.0.0.11";

fn step(n: u32, what: &str) {
    println!("step {n:>2}: {what}");
}

/// Ping and insist on an answer.
fn reach(source: &Netns, target: &str, what: &str) -> Result<(), String> {
    let stats = ping_until_reply(source, target, 3)?;
    if stats.received == 0 {
        return Err(format!("{what}: no reply from {target} after {} echo requests", stats.sent));
    }
    println!("         {what}: reply from {target} in {:.3} ms", stats.avg_ms);
    Ok(())
}

fn build(outside: Option<&str>) -> Result<(), String> {
    let host = topology::host();

    step(1, "namespaces pb and jelly");
    let pb = topology::create_netns("pb")?;
    let jelly = topology::create_netns("jelly")?;

    step(2, "veth pairs veth-pb/bread-pb-veth and veth-jelly/bread-j-veth");
    let (veth_pb, bread_pb) = topology::create_veth("veth-pb", &host, "bread-pb-veth", &host)?;
    let (veth_jelly, bread_j) = topology::create_veth("veth-jelly", &host, "bread-j-veth", &host)?;

    step(3, "move veth-pb into pb and veth-jelly into jelly");
    topology::move_link(&veth_pb, &pb)?;
    topology::move_link(&veth_jelly, &jelly)?;

    step(4, "addresses 10.0.0.10/16 (pb) and 10.0.0.11/16 (jelly), links up");
    address::add(&veth_pb, &format!("{PB}/16"))?;
    address::add(&veth_jelly, &format!("{JELLY}/16"))?;
    topology::set_up(&veth_pb)?;
    topology::set_up(&veth_jelly)?;

    step(5, "bridge brd1, up");
    let brd1 = topology::create_bridge("brd1", &host)?;
    topology::set_up(&brd1)?;

    step(6, "bread-pb-veth and bread-j-veth into brd1, up");
    topology::set_master(&bread_pb, &brd1)?;
    topology::set_master(&bread_j, &brd1)?;
    topology::set_up(&bread_pb)?;
    topology::set_up(&bread_j)?;

    step(7, "ping pb from jelly");
    reach(&jelly, PB, "jelly -> pb")?;

    step(8, "10.0.0.1/16 on brd1: the host reaches the namespaces");
    address::add(&brd1, &format!("{GATEWAY}/16"))?;
    reach(&host, PB, "host -> pb")?;

    step(9, "default routes via 10.0.0.1 in pb and jelly");
    route::add(&pb, "default", GATEWAY)?;
    route::add(&jelly, "default", GATEWAY)?;

    step(10, "masquerade 10.0.0.0/16 on the host");
    nat::masquerade(&host, SUBNET)?;

    step(11, "IPv4 forwarding on the host");
    route::enable_forwarding(&host, IpFamily::Ipv4)?;

    match outside {
        Some(target) => {
            step(12, &format!("ping the outside world ({target}) from jelly"));
            reach(&jelly, target, "jelly -> outside")?;
        }
        None => step(12, "no outside address given (nsw run pbj.wasm -- ADDRESS): skipped"),
    }
    println!("pb and jelly are up");
    Ok(())
}
