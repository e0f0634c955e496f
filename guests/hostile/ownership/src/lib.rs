//! Attacks on ownership: get nsw to remove, or add to, an object of the
//! machine that someone else made under a name the lab used.
//!
//!     nsw run hostile_ownership.wasm --allow host-net -- CASE
//!
//! CASE:
//! - `veth NAME`: a veth pair `NAME` on the machine with a peer name the
//!   kernel refuses (`all`); prints `refused`, then waits 3 s (someone
//!   else makes a link `NAME` meanwhile) and fails, so nsw rolls back.
//! - `table`: a masquerade rule on the machine, whose table `nsw-<lab>`
//!   someone else made first.
//! - `table-swap`: a masquerade rule, `ready`, 3 s (someone swaps the
//!   lab's table for their own), then another rule, then failing.

use std::time::Duration;

use nsw_sdk::{Guest, address, nat, topology};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let host = topology::host();
        match arg(0).as_str() {
            "veth" => {
                let node = topology::create_netns("n")?;
                let (end, _) = topology::create_veth(&arg(1), &host, "all", &node)?;
                // The pair is made at first use: here the kernel refuses it.
                match topology::set_up(&end) {
                    Ok(()) => return Err("the kernel took a peer named all".into()),
                    Err(e) => println!("refused: {}", String::from(e)),
                }
                std::thread::sleep(Duration::from_secs(3));
                Err("rolling back".into())
            }
            "table" => {
                let bridge = topology::create_bridge("obr0", &host)?;
                address::add(&bridge, "10.79.0.1/24")?;
                nat::masquerade(&host, "10.79.0.0/24")?;
                Err("nsw used someone else's table".into())
            }
            "table-swap" => {
                let bridge = topology::create_bridge("obr0", &host)?;
                address::add(&bridge, "10.79.0.1/24")?;
                nat::masquerade(&host, "10.79.0.0/24")?;
                println!("ready");
                std::thread::sleep(Duration::from_secs(3));
                nat::masquerade(&host, "10.79.1.0/24")?;
                Err("nsw added to someone else's table".into())
            }
            other => Err(format!("unknown case {other:?}")),
        }
    }
}

nsw_sdk::export!(Attack);
