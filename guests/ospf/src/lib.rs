//! An OSPF triangle of real BIRD 2 routers, configured at BIRD's default
//! paths inside each router's own files:
//!
//!     h1 -- r1 ---- r2
//!            \     /
//!             \   /
//!              r3 -- h3
//!
//!     nsw run ospf.wasm --allow exec=bird
//!
//! Each router's `bird.conf` is written into its own `/etc/bird` through
//! `files` (the machine's is not touched), and read back as a check.
//! Waits for OSPF to carry h1 to h3 (through r1–r3), then cuts r1–r3 and
//! waits for it to go through r2. The lab stays up with its daemons:
//! `nsw exec LAB r1 -- birdc show protocols` shows them.

use nsw_sdk::{Guest, IpFamily, files, probe, process, reaches, route, topology, wire};

struct Ospf;

/// BIRD's configuration for router number `n`: OSPF on every interface,
/// with fast timers, its routes into the kernel, its log on stderr (which
/// `nsw logs` shows).
fn bird_conf(n: u32) -> String {
    format!(
        "log stderr all;\n\
         router id 10.255.0.{n};\n\
         protocol device {{ }}\n\
         protocol kernel {{ ipv4 {{ export all; }}; }}\n\
         protocol ospf v2 {{\n\
           ipv4 {{ import all; export none; }};\n\
           area 0 {{ interface \"eth*\" {{ hello 1; dead 3; }}; }};\n\
         }}\n"
    )
}

impl Guest for Ospf {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let node = |name: &str| topology::create_netns(name);
        let (h1, r1, r2, r3, h3) = (node("h1")?, node("r1")?, node("r2")?, node("r3")?, node("h3")?);
        wire((&h1, "eth0", "10.1.0.2/24"), (&r1, "eth-h1", "10.1.0.1/24"))?;
        wire((&r1, "eth-r2", "10.12.0.1/30"), (&r2, "eth-r1", "10.12.0.2/30"))?;
        wire((&r2, "eth-r3", "10.23.0.1/30"), (&r3, "eth-r2", "10.23.0.2/30"))?;
        let cut = wire((&r1, "eth-r3", "10.13.0.1/30"), (&r3, "eth-r1", "10.13.0.2/30"))?;
        wire((&h3, "eth0", "10.3.0.2/24"), (&r3, "eth-h3", "10.3.0.1/24"))?;
        route::add(&h1, "default", "10.1.0.1")?;
        route::add(&h3, "default", "10.3.0.1")?;
        for (n, router) in [(1, &r1), (2, &r2), (3, &r3)] {
            route::enable_forwarding(router, IpFamily::Ipv4)?;
            // In the router's own /etc and /run: the machine's are not
            // written through.
            let conf = bird_conf(n);
            let bird = |mode| files::FileOptions { mode, owner: Some("bird".into()), group: Some("bird".into()) };
            files::write_file(router, "/etc/bird/bird.conf", conf.as_bytes(), &bird(0o640))?;
            files::make_dir(router, "/run/bird", &bird(0o755))?;
            if files::read_file(router, "/etc/bird/bird.conf")? != conf.as_bytes() {
                return Err(format!("r{n}'s bird.conf does not read back as written"));
            }
            let bird = process::spawn(router, &["bird".into(), "-f".into()])?;
            // Ready once its control socket is there (birdc's, at its
            // default path in the router's own /run).
            bird.wait_ready(&process::Readiness::PathExists("/run/bird/bird.ctl".into()), 10_000)?;
        }
        if !reaches(&h1, "10.3.0.2", 40)? {
            return Err("OSPF did not carry h1 to h3 within 40 s".into());
        }
        println!("h1 reaches h3");
        topology::set_down(&cut)?;
        // Down a link, OSPF drops its neighbour at once (the carrier went).
        if !reaches(&h1, "10.3.0.2", 40)? {
            return Err("OSPF did not reroute h1 to h3 through r2 within 40 s".into());
        }
        let trace = probe::trace(&h1, "10.3.0.2")?;
        let hops: Vec<String> = trace.iter().map(|h| h.address.clone().unwrap_or_else(|| "*".into())).collect();
        println!("with r1-r3 cut, h1 reaches h3 through {}", hops.join(" "));
        Ok(())
    }
}

nsw_sdk::export!(Ospf);
