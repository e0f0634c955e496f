//! Attacks on links and rules: absurd values, floods, and rules aimed at
//! the machine rather than the lab.
//!
//!     nsw run hostile_links.wasm -- absurd        every absurd value, each refused
//!     nsw run hostile_links.wasm -- rules         filter rules until a quota stops it
//!     nsw run hostile_links.wasm -- conditions    conditions changed forever
//!     nsw run --allow host-net hostile_links.wasm -- machine
//!                                                 a policy, rules and a forward on the machine,
//!                                                 then their link moved away and its name reused

use nsw_sdk::conditions::{self, LinkConditions};
use nsw_sdk::firewall::{self, Direction, Protocol, Rule, Verdict};
use nsw_sdk::{Error, Guest, PERFECT_LINK, address, topology};

struct Attack;


fn drop_all(direction: Direction) -> Rule {
    Rule { direction, verdict: Verdict::Drop, protocol: None, source: None, destination: None, port: None }
}

/// Every attempt must be refused: print each refusal, fail on a success.
fn refused(what: &str, outcome: Result<(), Error>) -> Result<(), String> {
    match outcome {
        Ok(()) => Err(format!("{what} was accepted")),
        Err(e) => {
            println!("refused {what}: {}", String::from(e));
            Ok(())
        }
    }
}

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        let node = topology::create_netns("x")?;
        let (eth, outside) = topology::create_veth("eth0", &node, "x0", &host)?;
        address::add(&eth, "10.77.0.2/24")?;
        topology::set_up(&eth)?;
        match args.first().map(String::as_str) {
            Some("absurd") => {
                refused("rate 0", conditions::set_conditions(&eth, LinkConditions { rate_bps: Some(0), ..PERFECT_LINK }))?;
                refused("loss 200%", conditions::set_conditions(&eth, LinkConditions { loss_percent: Some(200.0), ..PERFECT_LINK }))?;
                refused("loss NaN", conditions::set_conditions(&eth, LinkConditions { loss_percent: Some(f32::NAN), ..PERFECT_LINK }))?;
                refused("a queue of 0", conditions::set_conditions(&eth, LinkConditions { queue_packets: Some(0), ..PERFECT_LINK }))?;
                refused("MTU 70000", topology::set_mtu(&eth, 70_000))?;
                refused("MTU 10", topology::set_mtu(&eth, 10))?;
                refused("a multicast MAC", topology::set_mac(&eth, "01:00:5e:00:00:01"))?;
                refused("a MAC of junk", topology::set_mac(&eth, "02:00:00:00:00:zz"))?;
                refused("port 0", firewall::port_forward(&node, Protocol::Tcp, 0, "10.77.0.1", 80))?;
                refused("an ICMP port forward", firewall::port_forward(&node, Protocol::Icmp, 80, "10.77.0.1", 80))?;
                refused("a port without a protocol", firewall::add_rule(&node, &Rule { port: Some(80), ..drop_all(Direction::Input) }))?;
                refused("a source of junk", firewall::add_rule(&node, &Rule { source: Some("10.0.0.0/99".into()), ..drop_all(Direction::Input) }))?;
                println!("all refused");
            }
            Some("rules") => loop {
                if let Err(e @ Error::Quota(_)) = firewall::add_rule(&node, &drop_all(Direction::Input)) {
                    return Err(e.into());
                }
            },
            Some("conditions") => {
                let mut loss = 1.0;
                loop {
                    if let Err(e @ Error::Quota(_)) = conditions::set_conditions(&eth, LinkConditions { loss_percent: Some(loss), ..PERFECT_LINK }) {
                        return Err(e.into());
                    }
                    loss = if loss >= 50.0 { 1.0 } else { loss + 1.0 };
                }
            }
            Some("machine") => {
                // The host is the machine's namespace here (--allow host-net).
                refused("a drop policy on the machine", firewall::set_policy(&host, Direction::Input, Verdict::Drop))?;
                // Rules there only ever match the lab's own links.
                firewall::add_rule(&host, &drop_all(Direction::Input))?;
                firewall::port_forward(&host, Protocol::Tcp, 2222, "10.77.0.2", 22)?;
                // Then the link moves away and its name is free: a new
                // interface of that name must not inherit the rules.
                let y = topology::create_netns("y")?;
                topology::move_link(&outside, &y)?;
                let (again, _) = topology::create_veth("x0", &host, "eth0", &y)?;
                topology::set_up(&again)?;
                println!("rules on the lab's links only");
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(())
    }
}

nsw_sdk::export!(Attack);
