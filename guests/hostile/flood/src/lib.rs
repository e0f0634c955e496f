//! Floods: more objects, pings, output or bytes than any lab should get,
//! and calls repeated forever.
//!
//!     nsw run hostile_flood.wasm -- netns|links|bridges|pings|stdout|escapes|string
//!     nsw run hostile_flood.wasm -- address-again|masquerade-again|route-nowhere|move|nat-rules

use nsw_sdk::{Error, Guest, address, nat, probe, route, topology};

/// Repeat `call` until nsw stops the script or refuses with a quota.
fn forever(mut call: impl FnMut() -> Result<(), Error>) -> Result<(), String> {
    loop {
        if let Err(e @ Error::Quota(_)) = call() {
            return Err(e.into());
        }
    }
}

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        match args.first().map(String::as_str) {
            Some("netns") => {
                for i in 0..100_000 {
                    topology::create_netns(&format!("n{i}"))?;
                }
            }
            Some("links") => {
                for i in 0..100_000 {
                    topology::create_veth(&format!("v{i}"), &host, &format!("p{i}"), &host)?;
                }
            }
            Some("bridges") => {
                for i in 0..100_000 {
                    topology::create_bridge(&format!("b{i}"), &host)?;
                }
            }
            Some("pings") => {
                let options = probe::PingOptions { count: 100, timeout_ms: 1 };
                for _ in 0..100_000 {
                    probe::ping(&host, "127.0.0.1", options)?;
                }
            }
            Some("stdout") => loop {
                println!("{}", "flood ".repeat(100));
            },
            Some("escapes") => {
                // Clear the screen, retitle the terminal, ring the bell.
                println!("before\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31mafter");
                return Ok(());
            }
            Some("address-again") => {
                let (a, _) = topology::create_veth("fa0", &host, "fa1", &host)?;
                address::add(&a, "10.88.0.1/24")?;
                forever(|| address::add(&a, "10.88.0.1/24"))?;
            }
            Some("masquerade-again") => {
                nat::masquerade(&host, "10.88.0.0/24")?;
                forever(|| nat::masquerade(&host, "10.88.0.0/24"))?;
            }
            Some("nat-rules") => {
                let mut i = 0u32;
                forever(|| {
                    i += 1;
                    nat::masquerade(&host, &format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
                })?;
            }
            Some("route-nowhere") => {
                let node = topology::create_netns("rn")?;
                forever(|| route::add(&node, "default", "192.0.2.1"))?;
            }
            Some("move") => {
                let other = topology::create_netns("mv")?;
                let (a, _) = topology::create_veth("fm0", &host, "fm1", &host)?;
                topology::set_up(&a)?;
                forever(|| {
                    topology::move_link(&a, &other)?;
                    topology::move_link(&a, &host)
                })?;
            }
            Some("string") => {
                let huge = "a".repeat(100 << 20);
                topology::create_netns(&huge)?;
            }
            other => return Err(format!("unknown case {other:?}")),
        }
        Err("the flood was never stopped".into())
    }
}

nsw_sdk::export!(Attack);
