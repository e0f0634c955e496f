//! Attacks on what nsw prints and how it ends:
//!
//!     nsw graph after: nsw run outputs.wasm -- nodes web.1 web_1
//!         two nodes whose names a careless encoder merges
//!     nsw test outputs.wasm -- checks N BYTES
//!         N checks whose names and details are BYTES of DEL, U+FFFF and
//!         markup each
//!     nsw run outputs.wasm --timeout 3 -- lossy
//!         a throughput probe over a link that loses 30% of what it carries, running
//!         past the deadline
//!     nsw run outputs.wasm --allow exec=ls -- fds
//!         what descriptors a program gets (printed)
//!     nsw run outputs.wasm --allow exec -- spawn COMMAND...
//!         start each COMMAND with `sh -c` in node `a`, in the background,
//!         and leave them running (to see what `down` leaves)
//!     nsw run outputs.wasm --allow exec -- run PROGRAM ARGS...
//!         run a program in node `a` (addressed 10.0.9.1/24) to its end;
//!         print its status and output

use nsw_sdk::{Guest, PERFECT_LINK, address, check, conditions, probe, process, topology};

struct Outputs;

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i).map(String::as_str).ok_or_else(|| format!("argument {i} is missing"))
}

impl Guest for Outputs {
    fn run(args: Vec<String>) -> Result<(), String> {
        match arg(&args, 0)? {
            "nodes" => {
                let host = topology::host();
                for (i, name) in args[1..].iter().enumerate() {
                    let node = topology::create_netns(name)?;
                    let (a, b) = topology::create_veth(&format!("h{i}"), &host, "eth0", &node)?;
                    topology::set_up(&a)?;
                    topology::set_up(&b)?;
                }
                Ok(())
            }
            "checks" => {
                let n: u32 = arg(&args, 1)?.parse().map_err(|_| "N is not a number")?;
                let size: usize = arg(&args, 2)?.parse().map_err(|_| "BYTES is not a number")?;
                let piece = "\u{7f}\u{ffff}<&\"]]>";
                let text: String = piece.repeat(size / piece.len() + 1).chars().take(size).collect();
                for i in 0..n {
                    check::report(&format!("check {i} {}", &text[..text.len().min(150)]), i % 2 == 0, &text);
                }
                Ok(())
            }
            "lossy" => {
                let a = topology::create_netns("a")?;
                let b = topology::create_netns("b")?;
                let (ea, eb) = topology::create_veth("eth0", &a, "eth0", &b)?;
                address::add(&ea, "10.0.9.1/24")?;
                address::add(&eb, "10.0.9.2/24")?;
                topology::set_up(&ea)?;
                topology::set_up(&eb)?;
                let mut lossy = PERFECT_LINK;
                lossy.loss_percent = Some(30.0);
                conditions::set_conditions(&ea, lossy)?;
                conditions::set_conditions(&eb, lossy)?;
                let got = probe::throughput(&a, &b, "10.0.9.2", 60)?;
                println!("throughput: {} bytes", got.bytes);
                Ok(())
            }
            "fds" => {
                let a = topology::create_netns("a")?;
                let done = process::run(&a, &["ls".into(), "/proc/self/fd".into()], process::RunOptions { timeout_ms: 5000 })?;
                println!("fds: {}", done.stdout.split_whitespace().collect::<Vec<_>>().join(" "));
                Ok(())
            }
            "spawn" => {
                let a = topology::create_netns("a")?;
                for command in &args[1..] {
                    let p = process::spawn(&a, &["sh".into(), "-c".into(), command.clone()])?;
                    println!("spawned pid {}", p.pid());
                }
                Ok(())
            }
            "run" => {
                let a = topology::create_netns("a")?;
                let b = topology::create_netns("b")?;
                let (ea, eb) = topology::create_veth("eth0", &a, "eth0", &b)?;
                address::add(&ea, "10.0.9.1/24")?;
                topology::set_up(&ea)?;
                topology::set_up(&eb)?;
                let done = process::run(&a, &args[1..], process::RunOptions { timeout_ms: 10_000 })?;
                let status = match done.status {
                    process::ExitStatus::Code(c) => format!("code {c}"),
                    process::ExitStatus::Signal(s) => format!("signal {s}"),
                };
                println!("status: {status}");
                for line in done.stdout.lines() {
                    println!("stdout: {line}");
                }
                for line in done.stderr.lines() {
                    println!("stderr: {line}");
                }
                Ok(())
            }
            other => Err(format!("unknown attack {other:?}")),
        }
    }
}

nsw_sdk::export!(Outputs);
