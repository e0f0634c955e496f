//! Floods: more objects, pings, output or bytes than any lab should get.
//!
//!     nsw run hostile_flood.wasm -- netns|links|bridges|pings|stdout|escapes|string

use nsw_sdk::{Guest, probe, topology};

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
