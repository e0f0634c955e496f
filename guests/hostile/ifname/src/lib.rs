//! Interface names the kernel or the machine would not take kindly to.
//!
//!     nsw run hostile_ifname.wasm -- bridge NAME   # a bridge on the host
//!     nsw run hostile_ifname.wasm -- peer NAME     # a veth peer on the host
//!     nsw run hostile_ifname.wasm -- up NAME       # the same, kept and up

use nsw_sdk::{Guest, topology};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let (how, name) = (args.first().cloned().unwrap_or_default(), args.get(1).cloned().unwrap_or_default());
        let host = topology::host();
        let node = topology::create_netns("n1")?;
        match how.as_str() {
            "bridge" => {
                topology::create_bridge(&name, &host)?;
            }
            "peer" => {
                topology::create_veth("inside", &node, &name, &host)?;
            }
            "up" => {
                // A name the policy takes, built for real (for `nsw plan`).
                let (inside, outside) = topology::create_veth("inside", &node, &name, &host)?;
                topology::set_up(&inside)?;
                topology::set_up(&outside)?;
                return Ok(());
            }
            other => return Err(format!("unknown case {other}")),
        }
        Err(format!("created an interface named {name:?}"))
    }
}

nsw_sdk::export!(Attack);
