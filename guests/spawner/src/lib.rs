//! Start `sleep 1000` in node `a` and leave it running (the lab stays up
//! with it), or, with `hang`, then wait forever (for a test to kill nsw).
//!
//!     nsw run spawner.wasm --allow exec=sleep [-- hang|files-first]
//!     nsw run spawner.wasm --allow exec=sleep,sh -- many N [stubborn]
//!
//! `many N`: N more programs in `a` (sleep; with `stubborn`, a shell that
//! ignores SIGTERM), for the benchmark of starting and stopping programs.
//!
//! `files-first`: a file of `a` written before the lab has addresses,
//! then `b` wired to `a` (10.0.0.1, 10.0.0.2): `a`'s `/etc/hosts` must
//! still name `b` once sleep runs.

use nsw_sdk::{Guest, process, topology};

struct Spawner;

impl Guest for Spawner {
    fn run(args: Vec<String>) -> Result<(), String> {
        let a = topology::create_netns("a")?;
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

nsw_sdk::export!(Spawner);
