//! Attack: start the `hostile-service` component in node `n` (10.0.0.2/24,
//! default route via the lab's host) and let it try its worst.
//!
//!     nsw run hostile_service_escape.wasm -- reach ADDR:PORT... | bind | flood | spin
//!
//! Prints how the service ended (`ended: ...`), or `still running` after
//! 10 s (2 s for `spin` and `bind`; the end of the run stops it).

use nsw_sdk::service::{self, Ending};
use nsw_sdk::{Guest, address, route, topology};

static ATTACKER: &[u8] = include_bytes!("../../../services/target/wasm32-wasip2/release/hostile-service.wasm");

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        let n = topology::create_netns("n")?;
        let (inside, outside) = topology::create_veth("eth0", &n, "n0", &host)?;
        address::add(&inside, "10.0.0.2/24")?;
        address::add(&outside, "10.0.0.1/24")?;
        topology::set_up(&inside)?;
        topology::set_up(&outside)?;
        route::add(&n, "default", "10.0.0.1")?;
        let patience = if matches!(args.first().map(String::as_str), Some("spin" | "bind")) { 2_000 } else { 10_000 };
        let mut argv = vec!["hostile-service".to_string()];
        argv.extend(args);
        let attacker = service::start(&n, "attacker", ATTACKER, &argv)?;
        match attacker.wait(patience) {
            Some(Ending::Exited(code)) => println!("ended: exit {code}"),
            Some(Ending::Crashed(why)) => println!("ended: crashed: {why}"),
            Some(Ending::Stopped) => println!("ended: stopped"),
            None => println!("still running"),
        }
        Ok(())
    }
}

nsw_sdk::export!(Attack);
