//! An OSPF triangle of real FRR routers (Debian's `frr`: zebra and ospfd),
//! each configured at FRR's default paths in its own files, written
//! through `files`:
//!
//!     h1 -- r1 ---- r2
//!            \     /
//!             \   /
//!              r3 -- h3
//!
//!     nsw run frr.wasm --allow exec=/usr/lib/frr/zebra,/usr/lib/frr/ospfd
//!
//! The daemons start as root of the lab and drop to FRR's own user, as
//! they do on a machine; `nsw exec LAB r1 -- vtysh -c 'show ip ospf
//! neighbor'` reaches them at `/run/frr`. Waits for OSPF to carry h1 to
//! h3, cuts r1–r3, and waits for the path through r2.

use nsw_sdk::{Guest, IpFamily, Netns, files, probe, process, reaches, route, topology, wire};

struct Frr;

/// ospfd's configuration for router `n` with these links: OSPF on every
/// one, with fast timers.
fn ospfd_conf(n: u32, links: &[&str]) -> String {
    let mut conf = format!("hostname r{n}\nlog stdout\n");
    for link in links {
        conf += &format!("interface {link}\n ip ospf hello-interval 1\n ip ospf dead-interval 3\n!\n");
    }
    conf += &format!("router ospf\n ospf router-id 10.255.0.{n}\n network 10.0.0.0/8 area 0\n!\n");
    conf
}

impl Guest for Frr {
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
        let frr = |mode| files::FileOptions { mode, owner: Some("frr".into()), group: Some("frr".into()) };
        let routers: [(u32, &Netns, &[&str]); 3] =
            [(1, &r1, &["eth-h1", "eth-r2", "eth-r3"]), (2, &r2, &["eth-r1", "eth-r3"]), (3, &r3, &["eth-r2", "eth-r1", "eth-h3"])];
        for (n, router, links) in routers {
            route::enable_forwarding(router, IpFamily::Ipv4)?;
            // FRR's directories as its package makes them: its own.
            files::make_dir(router, "/etc/frr", &frr(0o750))?;
            files::make_dir(router, "/run/frr", &frr(0o755))?;
            files::write_file(router, "/etc/frr/zebra.conf", format!("hostname r{n}\nlog stdout\n").as_bytes(), &frr(0o640))?;
            files::write_file(router, "/etc/frr/ospfd.conf", ospfd_conf(n, links).as_bytes(), &frr(0o640))?;
            files::write_file(router, "/etc/frr/vtysh.conf", b"", &files::FileOptions { mode: 0o640, owner: Some("frr".into()), group: Some("frrvty".into()) })?;
            for daemon in ["zebra", "ospfd"] {
                let argv = [format!("/usr/lib/frr/{daemon}"), "-f".into(), format!("/etc/frr/{daemon}.conf")];
                let started = process::spawn(router, &argv)?;
                // Ready once its vty socket is there (vtysh's way in);
                // ospfd needs zebra's.
                started.wait_ready(&process::Readiness::PathExists(format!("/run/frr/{daemon}.vty")), 10_000)?;
            }
        }
        if !reaches(&h1, "10.3.0.2", 60)? {
            return Err("OSPF did not carry h1 to h3 within 60 s".into());
        }
        println!("h1 reaches h3");
        topology::set_down(&cut)?;
        if !reaches(&h1, "10.3.0.2", 40)? {
            return Err("OSPF did not reroute h1 to h3 through r2 within 40 s".into());
        }
        let trace = probe::trace(&h1, "10.3.0.2")?;
        let hops: Vec<String> = trace.iter().map(|h| h.address.clone().unwrap_or_else(|| "*".into())).collect();
        println!("with r1-r3 cut, h1 reaches h3 through {}", hops.join(" "));
        Ok(())
    }
}

nsw_sdk::export!(Frr);
