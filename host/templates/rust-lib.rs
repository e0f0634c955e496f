//! A lab script: one node, `a`, joined to the lab's host by a veth pair,
//! addresses on both ends, then three pings. Build it with `cargo build
//! --release` (see README.md) and run it with
//! `sudo nsw run target/wasm32-wasip2/release/NAME.wasm`.

wit_bindgen::generate!({
    path: "wit",
    // Every capability nsw has: a Rust script imports only what it calls,
    // so it asks for no grant it does not need (`nsw inspect` shows which).
    world: "everything",
});

use nsw::lab::types::Error;
use nsw::lab::{address, probe, topology};

struct Lab;

impl Guest for Lab {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        let a = topology::create_netns("a")?;
        let (inside, outside) = topology::create_veth("eth0", &a, "a-eth0", &host)?;
        address::add(&inside, "192.168.7.2/24")?;
        address::add(&outside, "192.168.7.1/24")?;
        topology::set_up(&inside)?;
        topology::set_up(&outside)?;
        let stats = probe::ping(&host, "192.168.7.2", probe::PingOptions { count: 3, timeout_ms: 1000 })?;
        println!("{}/{} replies", stats.received, stats.sent);
        Ok(())
    }
}

/// `?` turns an nsw error into `kind: message`, the way nsw prints it.
impl From<Error> for String {
    fn from(e: Error) -> String {
        let (kind, message) = match e {
            Error::Denied(m) => ("denied", m),
            Error::Invalid(m) => ("invalid", m),
            Error::Exists(m) => ("exists", m),
            Error::NotFound(m) => ("not-found", m),
            Error::Quota(m) => ("quota", m),
            Error::Os(m) => ("os", m),
        };
        format!("{kind}: {message}")
    }
}

export!(Lab);
