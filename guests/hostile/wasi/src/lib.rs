//! Reaching for WASI beyond stdout: files, sockets, the environment. Each
//! attempt prints `NAME: denied (...)` or `NAME: GOT ...`; the script fails
//! if anything was reachable.

use std::io::Read;

use nsw_sdk::Guest;

struct Attack;

fn attempt(name: &str, got: Result<String, String>, report: &mut Vec<String>) {
    match got {
        Ok(what) => {
            println!("{name}: GOT {what}");
            report.push(name.to_string());
        }
        Err(why) => println!("{name}: denied ({why})"),
    }
}

impl Guest for Attack {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let mut leaks = Vec::new();
        let e = |e: std::io::Error| e.to_string();
        attempt("read /etc/passwd", std::fs::read_to_string("/etc/passwd").map(|s| format!("{} bytes", s.len())).map_err(e), &mut leaks);
        attempt("list /", std::fs::read_dir("/").map(|d| format!("{} entries", d.count())).map_err(e), &mut leaks);
        attempt("list .", std::fs::read_dir(".").map(|d| format!("{} entries", d.count())).map_err(e), &mut leaks);
        attempt("create /tmp/nsw-hostile", std::fs::write("/tmp/nsw-hostile", b"x").map(|()| "written".into()).map_err(e), &mut leaks);
        attempt("tcp 127.0.0.1:22", std::net::TcpStream::connect("127.0.0.1:22").map(|_| "connected".into()).map_err(e), &mut leaks);
        attempt(
            "udp send",
            std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", "127.0.0.1:53")).map(|n| format!("sent {n}")).map_err(e),
            &mut leaks,
        );
        attempt(
            "dns",
            std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| format!("{} addresses", a.count())).map_err(e),
            &mut leaks,
        );
        let vars: Vec<(String, String)> = std::env::vars().collect();
        attempt("environment", if vars.is_empty() { Err("empty".into()) } else { Ok(format!("{vars:?}")) }, &mut leaks);
        let argv: Vec<String> = std::env::args().collect();
        attempt("arguments", if argv.is_empty() { Err("empty".into()) } else { Ok(format!("{argv:?}")) }, &mut leaks);
        let mut input = Vec::new();
        let read = std::io::stdin().read_to_end(&mut input);
        attempt("stdin", if input.is_empty() { Err(format!("empty ({read:?})")) } else { Ok(format!("{} bytes", input.len())) }, &mut leaks);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        println!("clock: {} (reading the time is allowed)", if now > 0 { "readable" } else { "zero" });
        if leaks.is_empty() { Ok(()) } else { Err(format!("reached: {}", leaks.join(", "))) }
    }
}

nsw_sdk::export!(Attack);
