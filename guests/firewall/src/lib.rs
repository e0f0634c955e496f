//! A port forward and a firewall, checked (`nsw test firewall.wasm`):
//! `cli` (10.0.1.2) reaches `srv` (10.0.2.2) only through `router`, which
//! forwards its TCP port 80 to srv's 8080, where the `http-server` service
//! listens. Checks: a TCP connection and an HTTP GET through the forward;
//! then a drop rule on the router's forward path, and the same connection
//! blocked (a time-out); then reject rules, and connections refused at once
//! (a TCP reset, an ICMP port unreachable).

use nsw_sdk::firewall::{self, Action, Direction, Protocol, Rule, Verdict};
use nsw_sdk::probe::{self, ConnectOutcome};
use nsw_sdk::service::{self, Ending};
use nsw_sdk::{Guest, IpFamily, address, check, route, topology};

static HTTP_SERVER: &[u8] = include_bytes!("../../services/target/wasm32-wasip2/release/http-server.wasm");
static HTTP_GET: &[u8] = include_bytes!("../../services/target/wasm32-wasip2/release/http-get.wasm");

struct Firewall;

fn outcome(o: ConnectOutcome) -> &'static str {
    match o {
        ConnectOutcome::Connected => "connected",
        ConnectOutcome::Refused => "refused",
        ConnectOutcome::TimedOut => "timed out",
        ConnectOutcome::Unreachable => "unreachable",
    }
}

impl Guest for Firewall {
    fn run(_args: Vec<String>) -> Result<(), String> {
        let cli = topology::create_netns("cli")?;
        let router = topology::create_netns("router")?;
        let srv = topology::create_netns("srv")?;
        for (node, ifname, mine, theirs, net) in [(&cli, "eth0", "10.0.1.2/24", "10.0.1.1/24", "r-cli"), (&srv, "eth0", "10.0.2.2/24", "10.0.2.1/24", "r-srv")] {
            let (inside, outside) = topology::create_veth(ifname, node, net, &router)?;
            address::add(&inside, mine)?;
            address::add(&outside, theirs)?;
            topology::set_up(&inside)?;
            topology::set_up(&outside)?;
        }
        route::add(&cli, "default", "10.0.1.1")?;
        route::add(&srv, "default", "10.0.2.1")?;
        route::enable_forwarding(&router, IpFamily::Ipv4)?;

        let server = service::start(&srv, "http-server", HTTP_SERVER, &["http-server".into(), "8080".into(), "through the router\n".into()])?;
        let mut up = false;
        for _ in 0..40 {
            if probe::tcp_connect(&router, "10.0.2.2", 8080, 200)?.outcome == ConnectOutcome::Connected {
                up = true;
                break;
            }
            if server.wait(50).is_some() {
                break;
            }
        }
        check::report("http-server listens in srv on 8080", up, &if up { "connected from router".into() } else { server.output() });

        firewall::port_forward(&router, Protocol::Tcp, 80, "10.0.2.2", 8080)?;
        let tcp = probe::tcp_connect(&cli, "10.0.1.1", 80, 1000)?;
        check::report("tcp 10.0.1.1:80 from cli reaches srv:8080", tcp.outcome == ConnectOutcome::Connected, &format!("{} in {:.3} ms", outcome(tcp.outcome), tcp.ms));
        let get = service::start(&cli, "http-get", HTTP_GET, &["http-get".into(), "http://10.0.1.1/".into(), "through the router".into()])?;
        let ending = get.wait(10_000);
        let last = get.output().lines().last().unwrap_or("").to_string();
        check::report("http-get http://10.0.1.1/ from cli", matches!(ending, Some(Ending::Exited(0))), &last);

        // Now the router drops what it would forward to srv's 8080.
        let rule = Rule { direction: Direction::Forward, verdict: Verdict::Drop, protocol: Some(Protocol::Tcp), source: None, destination: Some("10.0.2.2".into()), port: Some(8080) };
        firewall::add_rule(&router, &rule)?;
        let blocked = probe::tcp_connect(&cli, "10.0.1.1", 80, 500)?;
        check::report("a drop rule on the router blocks it", blocked.outcome == ConnectOutcome::TimedOut, outcome(blocked.outcome));
        // The router itself still reaches srv: the rule is on its forward path.
        let direct = probe::tcp_connect(&router, "10.0.2.2", 8080, 1000)?;
        check::report("the router itself still reaches srv:8080", direct.outcome == ConnectOutcome::Connected, outcome(direct.outcome));
        // A reject rule refuses at once instead: a TCP reset to TCP...
        let reject = |direction, protocol, destination: &str| firewall::FilterRule {
            direction,
            action: Action::Reject,
            protocol,
            source: None,
            destination: Some(destination.into()),
            port: protocol.map(|_| 8080),
        };
        firewall::add_filter_rule(&router, &reject(Direction::Output, Some(Protocol::Tcp), "10.0.2.2"))?;
        let reset = probe::tcp_connect(&router, "10.0.2.2", 8080, 2000)?;
        check::report("a reject rule refuses the router's own connection", reset.outcome == ConnectOutcome::Refused, &format!("{} in {:.3} ms", outcome(reset.outcome), reset.ms));
        // ... and an ICMP port unreachable to anything else.
        firewall::add_filter_rule(&cli, &reject(Direction::Output, None, "10.0.1.1"))?;
        let unreachable = probe::tcp_connect(&cli, "10.0.1.1", 80, 2000)?;
        check::report("a reject rule of any protocol refuses too", unreachable.outcome == ConnectOutcome::Refused, &format!("{} in {:.3} ms", outcome(unreachable.outcome), unreachable.ms));
        Ok(())
    }
}

nsw_sdk::export!(Firewall);
