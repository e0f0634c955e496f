//! Three switches joined in a loop, with a host on s1 and one on s3:
//!
//!     h1 -- s1 ---- s2
//!            \     /
//!             \   /
//!              s3 -- h3
//!
//!     nsw run stp.wasm
//!
//! Each switch is a node with one bridge. The kernel's spanning tree, set
//! from the script with fast timers, blocks one port of the loop, so a
//! broadcast does not go round forever; s1 is made the root (the lowest
//! priority). Waits until h1 reaches h3.

use nsw_sdk::{Guest, Netns, address, probe, topology};

struct Stp;

impl Guest for Stp {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let node = |name: &str| topology::create_netns(name);
        let (h1, h3) = (node("h1")?, node("h3")?);
        let switches = [node("s1")?, node("s2")?, node("s3")?];
        let mut bridges = Vec::new();
        for (i, switch) in switches.iter().enumerate() {
            let bridge = topology::create_bridge("br0", switch)?;
            let options = topology::BridgeOptions {
                stp: true,
                priority: Some(if i == 0 { 4096 } else { 32768 }),
                forward_delay_secs: Some(2),
                hello_secs: Some(1),
                max_age_secs: Some(6),
                ageing_secs: None,
                multicast_snooping: None,
                vlan_filtering: None,
            };
            topology::set_bridge_options(&bridge, options)?;
            topology::set_up(&bridge)?;
            bridges.push(bridge);
        }
        // A port of switch `a` to switch `b`, both on their bridges, up.
        let join = |a: usize, b: usize| -> Result<(), String> {
            let (pa, pb) = topology::create_veth(&format!("to-s{}", b + 1), &switches[a], &format!("to-s{}", a + 1), &switches[b])?;
            for (port, bridge) in [(&pa, &bridges[a]), (&pb, &bridges[b])] {
                topology::set_master(port, bridge)?;
                topology::set_up(port)?;
            }
            // The direct s1-s3 costs less than the other two links, on
            // both ends (a bridge adds the cost of the port it hears on).
            let cost = if (a, b) == (0, 2) { 10 } else { 100 };
            topology::set_port_cost(&pa, cost)?;
            topology::set_port_cost(&pb, cost)?;
            Ok(())
        };
        join(0, 1)?;
        join(1, 2)?;
        join(0, 2)?;
        let host = |h: &Netns, s: usize, addr: &str| -> Result<(), String> {
            let (eth, port) = topology::create_veth("eth0", h, &format!("to-{}", h.name()), &switches[s])?;
            address::add(&eth, addr)?;
            topology::set_up(&eth)?;
            topology::set_master(&port, &bridges[s])?;
            Ok(topology::set_up(&port)?)
        };
        host(&h1, 0, "10.0.0.1/24")?;
        host(&h3, 2, "10.0.0.3/24")?;
        // Listening, then learning: twice the forward delay, and the
        // first hellos.
        let options = probe::PingOptions { count: 1, timeout_ms: 1000 };
        for _ in 0..30 {
            if probe::ping(&h1, "10.0.0.3", options)?.received > 0 {
                println!("h1 reaches h3 across the loop");
                return Ok(());
            }
        }
        Err("h1 did not reach h3 within 30 s".into())
    }
}

nsw_sdk::export!(Stp);
