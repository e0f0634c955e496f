//! Imports the uplink capability, which needs `--allow uplink`: nsw must
//! refuse it before running a single instruction.

use nsw_sdk::{Guest, topology, uplink};

struct Attack;

impl Guest for Attack {
    fn run(_args: Vec<String>) -> Result<(), String> {
        topology::create_netns("before-uplink")?;
        let link = uplink::connect()?;
        println!("connected {}", link.name());
        Ok(())
    }
}

nsw_sdk::export!(Attack);
