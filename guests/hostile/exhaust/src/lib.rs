//! Attacks on the host's time, stack and memory, and a crash midway.
//!
//!     nsw run hostile_exhaust.wasm -- loop|recursion|memory|trap-midway|carrier|slow-ping
//!
//! `carrier`: 60 veth pairs with both ends up, then one end of each
//! moved away (down), then a ping: nothing is left to wait a carrier for.
//! `slow-ping`: 100 echo requests to a neighbour that never answers, 10 s
//! each. Both must end at
//! the deadline like any loop.

use nsw_sdk::{Guest, address, probe, topology};

struct Attack;

#[inline(never)]
fn deeper(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    // Keep a frame on the stack at every level.
    let frame = std::hint::black_box([n; 16]);
    deeper(n + 1) + frame[3]
}

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        match args.first().map(String::as_str) {
            Some("loop") => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("recursion") => Err(format!("{}", deeper(0))),
            Some("memory") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap-midway") => {
                let host = topology::host();
                let node = topology::create_netns("half")?;
                let (inside, outside) = topology::create_veth("h-in", &node, "h-out", &host)?;
                address::add(&inside, "10.66.0.2/24")?;
                let bridge = topology::create_bridge("hbr", &host)?;
                topology::set_master(&outside, &bridge)?;
                println!("half built");
                std::process::abort()
            }
            Some("carrier") => {
                let host = topology::host();
                let away = topology::create_netns("away")?;
                let mut far = Vec::new();
                for i in 0..60 {
                    let (a, b) = topology::create_veth(&format!("c{i}"), &host, &format!("d{i}"), &host)?;
                    topology::set_up(&a)?;
                    topology::set_up(&b)?;
                    far.push(b);
                }
                for b in &far {
                    topology::move_link(b, &away)?;
                }
                loop {
                    probe::ping(&host, "127.0.0.1", probe::PingOptions { count: 1, timeout_ms: 10 })?;
                }
            }
            Some("slow-ping") => {
                // A neighbour that never answers: each echo waits its 10 s.
                let host = topology::host();
                let (a, b) = topology::create_veth("sp0", &host, "sp1", &host)?;
                address::add(&a, "10.99.0.1/24")?;
                topology::set_up(&a)?;
                topology::set_up(&b)?;
                probe::ping(&host, "10.99.0.2", probe::PingOptions { count: 100, timeout_ms: 10_000 })?;
                Err("the ping ended early".into())
            }
            other => Err(format!("unknown case {other:?}")),
        }
    }
}

nsw_sdk::export!(Attack);
