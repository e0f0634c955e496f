//! Handles used after their end.
//!
//!     nsw run hostile_use_after.wasm -- dropped   # a handle used after drop
//!     nsw run hostile_use_after.wasm -- deleted   # a namespace deleted under the lab
//!
//! For `deleted`, the script makes netns `victim` and pings inside it until
//! a call fails: the test deletes `<lab>-victim` meanwhile.

use nsw_sdk::{Guest, Netns, probe, topology};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        match args.first().map(String::as_str) {
            Some("dropped") => {
                let node = topology::create_netns("gone")?;
                let raw = node.take_handle();
                // SAFETY (of the attack): rebuild a handle to drop it, then
                // reuse the number. The host must refuse, not crash.
                drop(unsafe { Netns::from_handle(raw) });
                let stale = unsafe { Netns::from_handle(raw) };
                let name = stale.name();
                std::mem::forget(stale);
                Err(format!("a dropped handle still works: {name}"))
            }
            Some("deleted") => {
                let victim = topology::create_netns("victim")?;
                println!("victim ready");
                let options = probe::PingOptions { count: 1, timeout_ms: 100 };
                for _ in 0..9_000 {
                    probe::ping(&victim, "127.0.0.1", options)?;
                }
                Err("the victim was never deleted".into())
            }
            other => Err(format!("unknown case {other:?}")),
        }
    }
}

nsw_sdk::export!(Attack);
