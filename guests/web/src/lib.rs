//! A web lab, tested: nodes `srv` and `cli` on a bridge, the `http-server`
//! service in srv on port 8080, then from cli a TCP connection and the
//! `http-get` service, each recorded as a check.
//!
//!     nsw test web.wasm --junit report.xml [-- PORT]
//!
//! PORT (8080 by default) is the port cli aims at: any other fails both
//! checks, naming the port. The script carries its services: they are
//! built first (guests/services), then embedded here.

use nsw_sdk::service::{self, Ending};
use nsw_sdk::{Guest, address, check, probe, topology};

static HTTP_SERVER: &[u8] = include_bytes!("../../services/target/wasm32-wasip2/release/http-server.wasm");
static HTTP_GET: &[u8] = include_bytes!("../../services/target/wasm32-wasip2/release/http-get.wasm");

const SERVER: &str = "10.0.0.1";
const PAGE: &str = "hello from nsw";

struct Web;

impl Guest for Web {
    fn run(args: Vec<String>) -> Result<(), String> {
        let port: u16 = args.first().map(|p| p.parse().map_err(|_| format!("{p:?} is not a port"))).transpose()?.unwrap_or(8080);
        let host = topology::host();
        let bridge = topology::create_bridge("br0", &host)?;
        topology::set_up(&bridge)?;
        let mut nodes = Vec::new();
        for (name, ip) in [("srv", "10.0.0.1/24"), ("cli", "10.0.0.2/24")] {
            let node = topology::create_netns(name)?;
            let (eth, port) = topology::create_veth("eth0", &node, &format!("{name}0"), &host)?;
            address::add(&eth, ip)?;
            topology::set_up(&eth)?;
            topology::set_master(&port, &bridge)?;
            topology::set_up(&port)?;
            nodes.push(node);
        }
        let (srv, cli) = (&nodes[0], &nodes[1]);

        let server = service::start(srv, "http-server", HTTP_SERVER, &["http-server".into(), "8080".into(), format!("{PAGE}\n")])?;
        // Up once it takes connections (it binds at once; allow it 2 s).
        let mut up = false;
        for _ in 0..40 {
            if probe::tcp_connect(cli, SERVER, 8080, 200)?.outcome == probe::ConnectOutcome::Connected {
                up = true;
                break;
            }
            if server.wait(50).is_some() {
                break;
            }
        }
        check::report("http-server listens in srv on 8080", up, &if up { "connected from cli".into() } else { server.output() });

        let tcp = probe::tcp_connect(cli, SERVER, port, 1000)?;
        let connected = tcp.outcome == probe::ConnectOutcome::Connected;
        let outcome = match tcp.outcome {
            probe::ConnectOutcome::Connected => "connected",
            probe::ConnectOutcome::Refused => "refused",
            probe::ConnectOutcome::TimedOut => "timed out",
            probe::ConnectOutcome::Unreachable => "unreachable",
        };
        check::report(&format!("tcp {SERVER}:{port} from cli"), connected, &format!("{outcome} in {:.3} ms", tcp.ms));

        let url = format!("http://{SERVER}:{port}/");
        let get = service::start(cli, "http-get", HTTP_GET, &["http-get".into(), url.clone(), PAGE.into()])?;
        let ending = get.wait(10_000);
        let said = get.output();
        let last = said.lines().last().unwrap_or("").to_string();
        let ok = matches!(ending, Some(Ending::Exited(0)));
        let detail = match &ending {
            Some(Ending::Exited(code)) => format!("exit {code}: {last}"),
            Some(Ending::Crashed(why)) => format!("crashed: {why}"),
            Some(Ending::Stopped) => "stopped".into(),
            None => "no answer within 10 s".into(),
        };
        check::report(&format!("http-get {url} from cli"), ok, &detail);
        Ok(())
    }
}

nsw_sdk::export!(Web);
