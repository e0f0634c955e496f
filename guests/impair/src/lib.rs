//! Two nodes, `a` (10.0.9.1/24) and `b` (10.0.9.2/24), on one veth pair;
//! what `a` sends on it gets the conditions named on the command line:
//!
//!     nsw run impair.wasm -- rate=20000000 loss=20 delay=10000 jitter=1000
//!         duplicate=1 corrupt=1 reorder=25 queue=100 mtu=1400
//!         mac=02:00:00:00:00:01 down
//!
//! (rate in bit/s, times in µs, the rest in percent). The lab stays up for
//! measuring: `nsw exec impair a -- ping 10.0.9.2`.

use nsw_sdk::conditions;
use nsw_sdk::{Guest, PERFECT_LINK, address, topology};

struct Impair;

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{key}={value}: not a number"))
}

impl Guest for Impair {
    fn run(args: Vec<String>) -> Result<(), String> {
        let a = topology::create_netns("a")?;
        let b = topology::create_netns("b")?;
        let (eth_a, eth_b) = topology::create_veth("eth0", &a, "eth0", &b)?;
        address::add(&eth_a, "10.0.9.1/24")?;
        address::add(&eth_b, "10.0.9.2/24")?;
        topology::set_up(&eth_a)?;
        topology::set_up(&eth_b)?;
        let mut c = PERFECT_LINK;
        let mut conditioned = false;
        let mut down = false;
        for arg in &args {
            let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
            conditioned |= !matches!(key, "mtu" | "mac" | "down");
            match key {
                "rate" => c.rate_bps = Some(number(key, value)?),
                "delay" => c.delay_us = Some(number(key, value)?),
                "jitter" => c.jitter_us = Some(number(key, value)?),
                "loss" => c.loss_percent = Some(number(key, value)?),
                "correlation" => c.loss_correlation_percent = Some(number(key, value)?),
                "duplicate" => c.duplicate_percent = Some(number(key, value)?),
                "corrupt" => c.corrupt_percent = Some(number(key, value)?),
                "reorder" => c.reorder_percent = Some(number(key, value)?),
                "queue" => c.queue_packets = Some(number(key, value)?),
                "mtu" => topology::set_mtu(&eth_a, number(key, value)?)?,
                "mac" => topology::set_mac(&eth_a, value)?,
                "down" => down = true,
                _ => return Err(format!("unknown setting {arg:?}")),
            }
        }
        if conditioned {
            conditions::set_conditions(&eth_a, c)?;
        }
        if down {
            topology::set_down(&eth_a)?;
        }
        println!("a -> b: {}", if args.is_empty() { "a perfect wire".to_string() } else { args.join(" ") });
        Ok(())
    }
}

nsw_sdk::export!(Impair);
