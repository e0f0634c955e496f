//! Start `sleep 1000` in node `a` and leave it running (the lab stays up
//! with it), or, with `hang`, then wait forever (for a test to kill nsw).
//!
//!     nsw run spawner.wasm --allow exec=sleep [-- hang|files-first]
//!     nsw run spawner.wasm --allow exec=sleep,sh -- many N [stubborn]
//!
//! `many N`: N more programs in `a` (sleep; with `stubborn`, a shell that
//! ignores SIGTERM), for the benchmark of starting and stopping programs.
//!
//! `ready KIND VALUE TIMEOUT-MS ARGV...`: start ARGV in `a` and wait until
//! it is ready (KIND: tcp, udp, path, output); say `ready in N ms` or the
//! error, then probe TCP port VALUE from `a` for a tcp wait.
//!
//! `files-first`: a file of `a` written before the lab has addresses,
//! then `b` wired to `a` (10.0.0.1, 10.0.0.2): `a`'s `/etc/hosts` must
//! still name `b` once sleep runs.

use nsw_sdk::{Guest, process, topology};

struct Spawner;

impl Guest for Spawner {
    fn run(args: Vec<String>) -> Result<(), String> {
        let a = topology::create_netns("a")?;
        if args.first().map(String::as_str) == Some("ready") {
            return ready(&a, &args[1..]);
        }
        if args.iter().any(|a| a == "files-first") {
            nsw_sdk::files::write_file(&a, "/tmp/first", b"written before any address\n", &nsw_sdk::files::FileOptions { mode: 0o644, owner: None, group: None })?;
            let b = topology::create_netns("b")?;
            nsw_sdk::wire((&a, "eth0", "10.0.0.1/24"), (&b, "eth0", "10.0.0.2/24"))?;
        }
        let sleeper = process::spawn(&a, &["sleep".into(), "1000".into()])?;
        // A daemon's liveness check, as a lab with BIRD would make it (a
        // plan must model the program as running too).
        if let Some(ended) = sleeper.wait(50) {
            return Err(format!("sleep ended at once: {ended:?}"));
        }
        println!("sleep runs as pid {}", sleeper.pid());
        if let Some(at) = args.iter().position(|a| a == "many") {
            let n: u32 = args.get(at + 1).and_then(|n| n.parse().ok()).ok_or("many N: N is a number")?;
            let stubborn = args.iter().any(|a| a == "stubborn");
            let started = std::time::Instant::now();
            for _ in 0..n {
                let argv: Vec<String> = if stubborn {
                    ["sh", "-c", "trap '' TERM; sleep 1000"].map(String::from).to_vec()
                } else {
                    ["sleep", "1000"].map(String::from).to_vec()
                };
                process::spawn(&a, &argv)?;
            }
            println!("{n} programs started in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        }
        if args.iter().any(|a| a == "hang") {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Ok(())
    }
}

/// `ready KIND VALUE TIMEOUT-MS ARGV...` (see above).
fn ready(a: &nsw_sdk::Netns, args: &[String]) -> Result<(), String> {
    let [kind, value, timeout, argv @ ..] = args else { return Err("ready KIND VALUE TIMEOUT-MS ARGV...".into()) };
    let port = || value.parse::<u16>().map_err(|_| format!("a port, not {value:?}"));
    let readiness = match kind.as_str() {
        "tcp" => process::Readiness::TcpListening(port()?),
        "udp" => process::Readiness::UdpBound(port()?),
        "path" => process::Readiness::PathExists(value.clone()),
        "output" => process::Readiness::OutputContains(value.clone()),
        other => return Err(format!("no readiness {other:?}")),
    };
    let timeout: u32 = timeout.parse().map_err(|_| format!("a timeout in ms, not {timeout:?}"))?;
    let started = std::time::Instant::now();
    let program = process::spawn(a, argv)?;
    match program.wait_ready(&readiness, timeout) {
        Ok(()) => println!("ready in {} ms", started.elapsed().as_millis()),
        Err(e) => {
            println!("not ready: {}", String::from(e));
            return Ok(());
        }
    }
    if kind == "tcp" {
        let reached = nsw_sdk::probe::tcp_connect(a, "127.0.0.1", port()?, 1000)?;
        println!("tcp {value}: {:?}", reached.outcome);
    }
    Ok(())
}

nsw_sdk::export!(Spawner);
