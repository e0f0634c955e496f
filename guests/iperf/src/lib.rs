//! Two nodes on a veth pair; `iperf3 -s` in b, `iperf3 -c` from a (both
//! run through `process`, so it needs `--allow exec`), then nsw's own
//! `probe.throughput` on the same path.
//!
//!     nsw run iperf.wasm --allow exec=iperf3 [-- SECONDS]
//!
//! Prints `iperf3: X.XX Gbit/s` and `probe.throughput: Y.YY Gbit/s`.

use nsw_sdk::{Guest, address, check, probe, process, topology};

struct Iperf;

/// `end.sum_received.bits_per_second` of `iperf3 -J`, without a JSON
/// parser (the field is a plain number).
fn received_bits_per_second(json: &str) -> Option<f64> {
    let after = &json[json.find("\"sum_received\"")?..];
    let after = &after[after.find("\"bits_per_second\"")? + "\"bits_per_second\"".len()..];
    let number: String = after.trim_start_matches(|c: char| c == ':' || c.is_whitespace()).chars().take_while(|c| c.is_ascii_digit() || ".eE+-".contains(*c)).collect();
    number.parse().ok()
}

impl Guest for Iperf {
    fn run(args: Vec<String>) -> Result<(), String> {
        let seconds: u32 = args.first().map(|s| s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))).transpose()?.unwrap_or(2);
        let (a, b) = (topology::create_netns("a")?, topology::create_netns("b")?);
        let (ea, eb) = topology::create_veth("eth0", &a, "eth0", &b)?;
        address::add(&ea, "10.0.1.1/24")?;
        address::add(&eb, "10.0.1.2/24")?;
        topology::set_up(&ea)?;
        topology::set_up(&eb)?;

        let server = process::spawn(&b, &["iperf3".into(), "-s".into()])?;
        let mut listening = false;
        for _ in 0..50 {
            if server.wait(0).is_some() {
                return Err(format!("iperf3 -s ended: {}", server.output()));
            }
            if probe::tcp_connect(&a, "10.0.1.2", 5201, 100)?.outcome == probe::ConnectOutcome::Connected {
                listening = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !listening {
            return Err(format!("iperf3 -s never listened: {}", server.output()));
        }
        // Let it shrug off the probe's bare connection before the test.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let timeout_ms = (seconds + 20) * 1000;
        let client = process::run(&a, &["iperf3".into(), "-c".into(), "10.0.1.2".into(), "-t".into(), seconds.to_string(), "-J".into()], process::RunOptions { timeout_ms })?;
        let iperf = received_bits_per_second(&client.stdout).ok_or_else(|| format!("iperf3 said no throughput: {:?} {}", client.status, client.stderr))?;
        println!("iperf3: {:.2} Gbit/s", iperf / 1e9);
        server.kill();

        let probe = probe::throughput(&a, &b, "10.0.1.2", seconds)?;
        println!("probe.throughput: {:.2} Gbit/s ({} retransmits)", probe.bits_per_second / 1e9, probe.retransmits);
        let ratio = probe.bits_per_second / iperf;
        check::report("probe.throughput within 2x of iperf3", (0.5..=2.0).contains(&ratio), &format!("ratio {ratio:.2}"));
        Ok(())
    }
}

nsw_sdk::export!(Iperf);
