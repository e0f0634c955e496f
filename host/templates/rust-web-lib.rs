//! A lab script with services: node `a` joined to the lab's host by a veth
//! pair; the stock `http-server` serves in `a`, the stock `http-get` asks
//! it from the host. The services are built from `services/` (their
//! source, yours to change) and carried in this script: build them first,
//! then the lab (see README.md), and run it with
//! `sudo nsw run target/wasm32-wasip2/release/NAME.wasm`.

wit_bindgen::generate!({
    path: "wit",
    // Every capability nsw has: a Rust script imports only what it calls,
    // so it asks for no grant it does not need (`nsw inspect` shows which).
    world: "everything",
});

use nsw::lab::service::Ending;
use nsw::lab::types::Error;
use nsw::lab::{address, probe, service, topology};

/// The stock services, as `cargo build --release` in services/ made them.
static HTTP_SERVER: &[u8] = include_bytes!("../services/target/wasm32-wasip2/release/http-server.wasm");
static HTTP_GET: &[u8] = include_bytes!("../services/target/wasm32-wasip2/release/http-get.wasm");

struct Lab;

impl Guest for Lab {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let host = topology::host();
        let a = topology::create_netns("a")?;
        let (inside, outside) = topology::create_veth("eth0", &a, "a-eth0", &host)?;
        address::add(&inside, "192.168.7.2/24")?;
        address::add(&outside, "192.168.7.1/24")?;
        topology::set_up(&inside)?;
        topology::set_up(&outside)?;
        let server = service::start(&a, "http-server", HTTP_SERVER, &["http-server".into(), "8080".into()])?;
        // Up once it takes connections.
        let mut up = false;
        for _ in 0..40 {
            if probe::tcp_connect(&host, "192.168.7.2", 8080, 200)?.outcome == probe::ConnectOutcome::Connected {
                up = true;
                break;
            }
            if server.wait(50).is_some() {
                break;
            }
        }
        if !up {
            return Err(format!("http-server did not listen: {}", server.output()));
        }
        let get = service::start(&host, "http-get", HTTP_GET, &["http-get".into(), "http://192.168.7.2:8080/".into(), "hello from nsw\n".into()])?;
        match get.wait(10_000) {
            Some(Ending::Exited(0)) => println!("the host got a's page over HTTP"),
            other => return Err(format!("http-get ended {other:?}: {}", get.output())),
        }
        Ok(())
    }
}

/// `?` turns an nsw error into `kind: message`, the way nsw prints it.
impl From<Error> for String {
    fn from(e: Error) -> String {
        let (kind, message) = match e {
            Error::Denied(m) => ("denied", m),
            Error::Invalid(m) => ("invalid", m),
            Error::Exists(m) => ("exists", m),
            Error::NotFound(m) => ("not-found", m),
            Error::Quota(m) => ("quota", m),
            Error::Os(m) => ("os", m),
        };
        format!("{kind}: {message}")
    }
}

export!(Lab);
