//! `http-get`: fetch one URL over HTTP/1.1 and check the answer.
//!
//! Usage: `http-get URL [EXPECTED_BODY]`
//!
//! URL is `http://IP[:PORT][/path]`, IP an IPv4 literal or a bracketed IPv6
//! one (`http://[fd00::1]:8080/`); the port defaults to 80 and the path to
//! `/`. Host names are refused: there is no DNS here. It sends
//! `GET path HTTP/1.1` with `Host` and `Connection: close`, reads the
//! response (the body by `Content-Length` when given, by chunks when
//! chunked, else to the end), prints `status CODE, N bytes` and then the
//! body to stdout.
//!
//! Exit status: 0 if the status is 200 and the body is EXPECTED_BODY (as
//! is, or with a newline added) when that is given; 1 otherwise, with the
//! reason on one line of stderr; 2 for bad arguments.
//!
//! Built for wasm32-wasip2 with std only: sockets come from wasi:sockets.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: http-get http://IP[:PORT][/PATH] [EXPECTED_BODY]";
/// Bound on connecting, and on each read or write once connected.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response kept; anything bigger is an error.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Where to send the request.
struct Target {
    addr: SocketAddr,
    /// The `Host` header: the URL's authority as written.
    host: String,
    path: String,
}

/// A parsed response.
struct Response {
    status: u16,
    body: Vec<u8>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, expected) = match args.as_slice() {
        [url] => (url, None),
        [url, expected] => (url, Some(expected.as_str())),
        _ => return usage_error("expected a URL and an optional EXPECTED_BODY"),
    };
    let target = match parse_url(url) {
        Ok(target) => target,
        Err(message) => return usage_error(&message),
    };

    let response = match fetch(&target) {
        Ok(response) => response,
        Err(message) => return fail(&message),
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "status {}, {} bytes", response.status, response.body.len());
    let _ = out.write_all(&response.body).and_then(|()| out.flush());
    drop(out);

    if response.status != 200 {
        return fail(&format!("expected status 200, got {}", response.status));
    }
    if let Some(expected) = expected {
        let body = response.body.as_slice();
        let with_newline = [expected.as_bytes(), b"\n"].concat();
        if body != expected.as_bytes() && body != with_newline.as_slice() {
            let got = String::from_utf8_lossy(body);
            return fail(&format!("body differs: expected {:?}, got {:?}", clip(expected), clip(&got)));
        }
    }
    ExitCode::SUCCESS
}

/// Split `http://AUTHORITY/path` into an address, a Host header and a path.
fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
    let path = path.split('#').next().unwrap_or("/").to_owned();

    let (ip, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or_else(|| format!("unclosed '[' in {url:?}"))?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| format!("unexpected {after:?} after ']' in {url:?}"))?),
        };
        (IpAddr::V6(ip), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let ip: Ipv4Addr = host.parse().map_err(|_| {
            format!("{host:?} is not an IPv4 address (no DNS here: use an IP literal, IPv6 in brackets)")
        })?;
        (IpAddr::V4(ip), port)
    };
    let port = match port {
        None => 80,
        Some(port) => port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("invalid port {port:?}"))?,
    };
    Ok(Target { addr: SocketAddr::new(ip, port), host: authority.to_owned(), path })
}

/// Connect, send the request, read and parse the response.
fn fetch(target: &Target) -> Result<Response, String> {
    let addr = target.addr;
    let mut stream = connect(addr).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!("connecting to {addr} timed out"),
        _ => format!("cannot connect to {addr}: {e}"),
    })?;
    // Best effort: a target without socket timeouts just waits.
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));

    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: nsw-http-get\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the request to {addr} failed: {e}"))?;
    read_response(&mut stream).map_err(|e| format!("reading the response from {addr} failed: {e}"))
}

/// Connect with a timeout where the target supports one, else plainly.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(stream) if stream.peer_addr().is_ok() => Ok(stream),
        // On wasm32-wasip2, std's connect_timeout reports a connect that
        // failed at once (refused, unreachable) as a success with an
        // unconnected socket; a plain connect fails just as fast and says
        // why. (A connect that hangs does end in TimedOut above.)
        Ok(_) => TcpStream::connect(addr),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => TcpStream::connect(addr),
        Err(e) => Err(e),
    }
}

/// Read the status line and headers, then the body as they describe it.
fn read_response(stream: &mut TcpStream) -> Result<Response, String> {
    let mut data = Vec::new();
    // The head: until the blank line.
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if data.len() > 64 * 1024 {
            return Err("response headers longer than 64 KiB".into());
        }
        if read_more(stream, &mut data)? == 0 {
            return Err(if data.is_empty() { "connection closed without a response".into() } else { "connection closed inside the response headers".into() });
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", clip(status_line)))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let mut body = data.split_off(head_end);

    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        read_to_end(stream, &mut body)?;
        return Ok(Response { status, body: dechunk(&body)? });
    }
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
        if length > MAX_RESPONSE {
            return Err(format!("body of {length} bytes is too large"));
        }
        while body.len() < length {
            if read_more(stream, &mut body)? == 0 {
                return Err(format!("connection closed after {} of {length} body bytes", body.len()));
            }
        }
        body.truncate(length);
    } else {
        read_to_end(stream, &mut body)?;
    }
    Ok(Response { status, body })
}

/// Append what one read returns to `data`; 0 at the end of the stream.
fn read_more(stream: &mut TcpStream, data: &mut Vec<u8>) -> Result<usize, String> {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(n) => {
                if data.len() + n > MAX_RESPONSE {
                    return Err("response larger than 16 MiB".into());
                }
                data.extend_from_slice(&buf[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err("timed out waiting for the server".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn read_to_end(stream: &mut TcpStream, data: &mut Vec<u8>) -> Result<(), String> {
    while read_more(stream, data)? > 0 {}
    Ok(())
}

/// Decode a `Transfer-Encoding: chunked` body (trailers are ignored).
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size line")?;
        let line = String::from_utf8_lossy(&data[..eol]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {:?}", clip(size)))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// At most 200 characters of `text`, for messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("http-get: {message}");
    ExitCode::FAILURE
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("http-get: {message} ({USAGE})");
    ExitCode::from(2)
}
