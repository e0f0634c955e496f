//! `tcp-echo`: a TCP echo server for lab hosts.
//!
//! Usage: `tcp-echo PORT`
//!
//! Listens on `0.0.0.0:PORT` (IPv4), prints `listening on 0.0.0.0:PORT`,
//! and sends back every byte each client sends until that client closes
//! its side; then prints `echoed N bytes to IP:PORT` and takes the next
//! connection, one after another, forever. Problems with a single client
//! go to stderr and the server carries on.
//!
//! Built for wasm32-wasip2 with std only: sockets come from wasi:sockets.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;

const USAGE: &str = "usage: tcp-echo PORT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port] = args.as_slice() else {
        return usage_error("expected exactly one argument, the PORT");
    };
    let Ok(port) = port.parse::<u16>() else {
        return usage_error(&format!("invalid port {port:?}"));
    };

    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("tcp-echo: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With port 0 the system picks one: report the real port.
    let port = listener.local_addr().map_or(port, |addr| addr.port());
    say(&format!("listening on 0.0.0.0:{port}"));

    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => match echo(&mut stream) {
                Ok(n) => say(&format!("echoed {n} bytes to {peer}")),
                Err(e) => eprintln!("tcp-echo: {peer}: {e}"),
            },
            Err(e) => eprintln!("tcp-echo: accept failed: {e}"),
        }
    }
}

/// Copy everything the client sends back to it until it closes its side;
/// returns how many bytes were echoed.
fn echo(stream: &mut TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
    stream.flush()?;
    // Tell the client the echo is complete; it may already be gone.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(total)
}

/// Print a line to stdout; a closed stdout must not stop the server.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("tcp-echo: {message} ({USAGE})");
    ExitCode::from(2)
}
