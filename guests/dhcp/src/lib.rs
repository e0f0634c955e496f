//! DHCP with Debian's own daemons: a dnsmasq server and dhclient clients,
//! all on one bridge:
//!
//!     dhcp --- sw (br0) --- c1, c2, ... cN
//!
//!     nsw run dhcp.wasm --allow exec=dnsmasq,dhclient [-- N]
//!
//! Each daemon keeps its leases at its default path (dnsmasq's in
//! `/var/lib/misc`, dhclient's in `/var/lib/dhcp`), in its node's own
//! files; each client asks under its node's name. Waits until every client
//! has its address and reaches the server; the lab stays up, with its
//! daemons: `nsw exec LAB dhcp -- cat /var/lib/misc/dnsmasq.leases`.

use nsw_sdk::{Guest, Netns, address, probe, process, topology};

struct Dhcp;

const SERVER: &str = "10.0.50.1";

/// Whether `client` reaches the server, trying once a second, `tries` at
/// most. A client without its address yet cannot even send; then the wait
/// of a second is on the server's daemon, which must not end meanwhile.
fn reaches(client: &Netns, dnsmasq: &process::Process, tries: u32) -> Result<bool, String> {
    let options = probe::PingOptions { count: 1, timeout_ms: 1000 };
    for _ in 0..tries {
        if probe::ping(client, SERVER, options).is_ok_and(|r| r.received > 0) {
            return Ok(true);
        }
        if let Some(status) = dnsmasq.wait(1000) {
            return Err(format!("dnsmasq ended ({status:?}): {}", dnsmasq.output()));
        }
    }
    Ok(false)
}

impl Guest for Dhcp {
    fn run(args: Vec<String>) -> Result<(), String> {
        let clients: u32 = match args.first() {
            Some(n) => n.parse().map_err(|_| format!("the number of clients, not {n:?}"))?,
            None => 3,
        };
        let sw = topology::create_netns("sw")?;
        let bridge = topology::create_bridge("br0", &sw)?;
        topology::set_up(&bridge)?;
        let plug = |node: &Netns, port: &str| -> Result<nsw_sdk::Link, String> {
            let (inside, on_switch) = topology::create_veth("eth0", node, port, &sw)?;
            topology::set_master(&on_switch, &bridge)?;
            topology::set_up(&on_switch)?;
            topology::set_up(&inside)?;
            if port == "p0" {
                address::add(&inside, &format!("{SERVER}/24"))?;
            }
            Ok(inside)
        };
        let server = topology::create_netns("dhcp")?;
        plug(&server, "p0")?;
        let dnsmasq = [
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--interface=eth0",
            "--bind-interfaces",
            "--dhcp-range=10.0.50.100,10.0.50.199,1h",
            "--dhcp-authoritative",
            "--log-dhcp",
        ];
        let dnsmasq = process::spawn(&server, &dnsmasq.map(String::from))?;
        // Its DHCP socket, before any client asks.
        dnsmasq.wait_ready(&process::Readiness::UdpBound(67), 10_000)?;
        let mut nodes = Vec::new();
        for i in 1..=clients {
            let client = topology::create_netns(&format!("c{i}"))?;
            let eth0 = plug(&client, &format!("p{i}"))?;
            process::spawn(&client, &["dhclient", "-4", "-d", "-v", "eth0"].map(String::from))?;
            nodes.push((i, client, eth0));
        }
        for (i, client, eth0) in &nodes {
            if !reaches(client, &dnsmasq, 40)? {
                return Err(format!("c{i} got no address from dnsmasq within 40 s"));
            }
            // What dhclient gave it, read back from the kernel.
            let leased: Vec<String> = address::list_addresses(eth0)?.into_iter().filter(|a| a.starts_with("10.0.50.")).collect();
            println!("c{i} has {}", leased.join(" "));
        }
        println!("{clients} clients leased an address and reach the server");
        Ok(())
    }
}

nsw_sdk::export!(Dhcp);
