//! A link that fails and comes back, and the outage measured: nodes `a`
//! and `b` on one veth pair; `a` pings `b` every 50 ms while the link goes
//! down for a while and up again, then says how long `b` was unreachable.
//!
//!     nsw run --rm flap.wasm -- [DOWN_MS] [FLAPS]
//!
//! DOWN_MS (default 500) is how long the link stays down each time, FLAPS
//! (default 2) how many times it fails.

use std::time::{Duration, Instant};

use nsw_sdk::probe::{self, PingOptions};
use nsw_sdk::{Guest, address, check, topology};

struct Flap;

/// Ping `b` once every 50 ms for `span`: when each echo was sent, and
/// whether a reply came.
fn pings(a: &nsw_sdk::Netns, span: Duration) -> Result<Vec<(Instant, bool)>, String> {
    let mut seen = Vec::new();
    let until = Instant::now() + span;
    while Instant::now() < until {
        let sent = Instant::now();
        let stats = probe::ping(a, "10.0.9.2", PingOptions { count: 1, timeout_ms: 40 })?;
        seen.push((sent, stats.received == 1));
        let next = sent + Duration::from_millis(50);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(seen)
}

impl Guest for Flap {
    fn run(args: Vec<String>) -> Result<(), String> {
        let down_ms: u64 = args.first().map(|a| a.parse().map_err(|_| format!("{a:?} is not a number of ms"))).transpose()?.unwrap_or(500);
        let flaps: u32 = args.get(1).map(|a| a.parse().map_err(|_| format!("{a:?} is not a count"))).transpose()?.unwrap_or(2);
        let a = topology::create_netns("a")?;
        let b = topology::create_netns("b")?;
        let (eth_a, eth_b) = topology::create_veth("eth0", &a, "eth0", &b)?;
        address::add(&eth_a, "10.0.9.1/24")?;
        address::add(&eth_b, "10.0.9.2/24")?;
        topology::set_up(&eth_a)?;
        topology::set_up(&eth_b)?;
        nsw_sdk::ping_until_reply(&a, "10.0.9.2", 3)?;
        for flap in 1..=flaps {
            let before = pings(&a, Duration::from_millis(300))?;
            let failed = Instant::now();
            topology::set_down(&eth_b)?;
            let during = pings(&a, Duration::from_millis(down_ms))?;
            topology::set_up(&eth_b)?;
            let restored = Instant::now();
            let after = pings(&a, Duration::from_millis(1500))?;
            // The outage as the pings saw it: from the failure to the
            // first reply after it.
            let all: Vec<&(Instant, bool)> = before.iter().chain(&during).chain(&after).collect();
            let first_back = after.iter().find(|(_, ok)| *ok).map(|(t, _)| *t);
            let lost = all.iter().filter(|(_, ok)| !ok).count();
            let answered_while_down = during.iter().filter(|(_, ok)| *ok).count();
            let outage = match first_back {
                Some(back) => format!("{} ms, {} ms of them after it came up", back.duration_since(failed).as_millis(), back.duration_since(restored).as_millis()),
                None => "more than the 1.5 s watched after it came up".into(),
            };
            println!("flap {flap}: down for {} ms; {lost} of {} pings lost; unreachable for {outage}", restored.duration_since(failed).as_millis(), all.len());
            check::report(&format!("flap {flap}: no reply while down"), answered_while_down == 0, &format!("{answered_while_down} replies while down"));
            check::report(&format!("flap {flap}: replies again once up"), first_back.is_some(), &format!("unreachable for {outage}"));
        }
        Ok(())
    }
}

nsw_sdk::export!(Flap);
