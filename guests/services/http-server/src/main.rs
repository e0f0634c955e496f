//! `http-server`: a minimal HTTP/1.1 server for lab hosts.
//!
//! Usage: `http-server PORT [BODY]`
//!
//! Listens on `0.0.0.0:PORT` (IPv4) and answers every request, whatever its
//! method or path, with `200 OK`, a `text/plain` body (BODY if given, else
//! `hello from nsw\n`) and `Connection: close`. Connections are served one
//! after another, forever. It prints `listening on 0.0.0.0:PORT` once, then
//! `served METHOD PATH to IP:PORT` per request; problems with a single
//! client go to stderr and the server carries on.
//!
//! Built for wasm32-wasip2 with std only: sockets come from wasi:sockets,
//! and there is no file system, environment or DNS.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: http-server PORT [BODY]";
const DEFAULT_BODY: &str = "hello from nsw\n";
/// The most request-head bytes read before answering anyway.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may stay silent while sending its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, body) = match args.as_slice() {
        [port] => (port, DEFAULT_BODY),
        [port, body] => (port, body.as_str()),
        _ => return usage_error("expected a PORT and an optional BODY"),
    };
    let Ok(port) = port.parse::<u16>() else {
        return usage_error(&format!("invalid port {port:?}"));
    };

    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("http-server: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With port 0 the system picks one: report the real port.
    let port = listener.local_addr().map_or(port, |addr| addr.port());
    say(&format!("listening on 0.0.0.0:{port}"));

    let response = response(body);
    loop {
        match listener.accept() {
            Ok((stream, peer)) => serve(stream, peer, &response),
            Err(e) => eprintln!("http-server: accept failed: {e}"),
        }
    }
}

/// The one response sent to every request.
fn response(body: &str) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body.as_bytes()].concat()
}

/// Read one request head from `stream`, answer it, and close.
fn serve(mut stream: TcpStream, peer: SocketAddr, response: &[u8]) {
    // Best effort: without a timeout the size bound still holds.
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(e) if is_timeout(&e) => {
            eprintln!("http-server: {peer}: no request within {} s", READ_TIMEOUT.as_secs());
            return;
        }
        Err(e) => {
            eprintln!("http-server: {peer}: reading the request failed: {e}");
            return;
        }
    };
    let Some((method, path)) = request_line(&head) else {
        eprintln!("http-server: {peer}: no HTTP request line received");
        return;
    };
    match stream.write_all(response).and_then(|()| stream.flush()) {
        Ok(()) => say(&format!("served {method} {path} to {peer}")),
        Err(e) => eprintln!("http-server: {peer}: sending the response failed: {e}"),
    }
}

/// Read until the blank line that ends the request head, the client closes,
/// or `MAX_HEAD` bytes have come. A timeout after some bytes is not an
/// error: whatever arrived is answered.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) && !head.is_empty() => break,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&buf[..n.min(MAX_HEAD - head.len())]);
    }
    Ok(head)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The method and target of the request line (`GET /path HTTP/1.1`).
fn request_line(head: &[u8]) -> Option<(String, String)> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = String::from_utf8_lossy(&head[..end]);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?, words.next()?);
    Some((method.to_owned(), path.to_owned()))
}

/// Print a line to stdout; a closed stdout must not stop the server.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("http-server: {message} ({USAGE})");
    ExitCode::from(2)
}
