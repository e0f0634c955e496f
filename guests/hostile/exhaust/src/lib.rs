//! Attacks on the host's time, stack and memory, and a crash midway.
//!
//!     nsw run hostile_exhaust.wasm -- loop|recursion|memory|trap-midway

use nsw_sdk::{Guest, address, topology};

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
            other => Err(format!("unknown case {other:?}")),
        }
    }
}

nsw_sdk::export!(Attack);
