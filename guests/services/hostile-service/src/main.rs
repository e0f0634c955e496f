//! A service that tries to get out of its node.
//!
//!     hostile-service reach ADDR:PORT...   try each; one line per target
//!     hostile-service bind                 bind 0.0.0.0 on many ports
//!     hostile-service flood                print until stopped
//!     hostile-service spin                 compute forever
//!
//! `reach` listens on 0.0.0.0:7777 first (so that reaching its own node
//! shows a connection can succeed), then prints `ADDR:PORT reached` or
//! `ADDR:PORT not reached: WHY` for each target, then `done`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("reach") => {
            // Never accepted: the kernel completes handshakes all the same.
            let _listener = TcpListener::bind(("0.0.0.0", 7777));
            for target in &args[1..] {
                let Ok(addr) = target.parse::<SocketAddr>() else {
                    println!("{target} not reached: not an address");
                    continue;
                };
                // On this target connect_timeout returns an unconnected
                // socket for a refusal: ask for the peer to tell.
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(stream) if stream.peer_addr().is_ok() => println!("{target} reached"),
                    Ok(_) => println!("{target} not reached: refused"),
                    Err(e) => println!("{target} not reached: {e}"),
                }
            }
            println!("done");
        }
        Some("bind") => {
            let mut held = Vec::new();
            for port in 20000..20100u16 {
                if let Ok(listener) = TcpListener::bind(("0.0.0.0", port)) {
                    held.push(listener);
                }
            }
            println!("bound {} ports", held.len());
            std::thread::sleep(Duration::from_secs(3600));
        }
        Some("flood") => loop {
            println!("{}", "flood ".repeat(100));
        },
        Some("spin") => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => {
            eprintln!("usage: hostile-service reach ADDR:PORT... | bind | flood | spin");
            std::process::exit(2);
        }
    }
}
