//! The plan backend: a model of the kernel in memory. It creates nothing;
//! it answers as the kernel would (a taken name is `EEXIST`, a gateway off
//! every subnet is `ENETUNREACH`) and logs each operation as the shell
//! command that would do it (`ip`, `nft`, `sysctl`, `pasta`), so `nsw plan`
//! can print a script that builds the same lab. The policy, the guest
//! logic, rollback and `down` run against it without root, and the
//! property tests use it to check that a lab never touches an object it
//! did not create and that teardown leaves the machine as it was.
//!
//! Every link name reaches `ip` after `dev` or `name`: a link may be
//! called `up`, `help` or `type`, which `ip link set NAME` would read as
//! its keywords.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

mod render;
mod state;
mod teardown;

pub use state::{PlanLink, PlanNs, PlanState};
use state::PlannedProgram;
pub use crate::encode::shell::word as sh;

use super::rules::{LabTable, Queue, QueueFeatures, TableChange};
use super::{Backend, ConnectOutcome, Hop, LinkRef, NsId, PingStats, ProcessId, Throughput, Uplink};
use crate::stop::Stop;

#[derive(Clone)]
pub struct PlanBackend {
    pub state: Arc<Mutex<PlanState>>,
    /// The kernel the plan models: one with every queueing discipline and
    /// nftables hook nsw uses, unless a test says otherwise.
    pub features: QueueFeatures,
    /// Programs of uid 0 run as root of the lab's own user namespace (root's
    /// contained lab), which a plan run as a script has not.
    pub lab_root: bool,
}

impl Default for PlanBackend {
    fn default() -> PlanBackend {
        PlanBackend { state: Arc::default(), features: QueueFeatures { netem: true, tbf: true, nft_loss: true }, lab_root: false }
    }
}

pub(super) fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl PlanBackend {
    pub fn new() -> PlanBackend {
        PlanBackend::default()
    }
}

/// What a namespace id stands for in the plan: its inode.
pub(super) fn inode_of(id: NsId) -> u64 {
    1000 + id as u64
}

#[async_trait]
impl Backend for PlanBackend {
    async fn adopt_machine(&mut self, id: NsId) -> io::Result<()> {
        self.state.lock().unwrap().namespaces.insert(id, PlanBackend::fresh_machine());
        Ok(())
    }

    async fn attach_netns(&mut self, id: NsId, name: &str, inode: u64) -> io::Result<()> {
        let s = self.state.lock().unwrap();
        match s.namespaces.iter().find(|(_, n)| n.name.as_deref() == Some(name)) {
            Some((found, _)) if *found == id && inode_of(id) == inode => Ok(()),
            _ => Err(err(libc::ENOENT)),
        }
    }

    async fn create_netns(&mut self, id: NsId, name: &str) -> io::Result<u64> {
        let mut s = self.state.lock().unwrap();
        if s.named.iter().any(|n| n == name) {
            return Err(err(libc::EEXIST));
        }
        s.named.push(name.to_string());
        let lo = PlanLink {
            name: "lo".into(),
            index: 1,
            kind: "loopback".into(),
            owned: false,
            up: true,
            master: None,
            addresses: vec!["127.0.0.1/8".parse().unwrap()],
            mtu: 65536,
            mac: None,
            queue: None,
        };
        s.namespaces.insert(id, PlanNs { name: Some(name.to_string()), links: vec![lo], ..PlanNs::default() });
        s.log.push(format!("ip netns add {}", sh(name)));
        s.log.push(format!("ip -n {} link set dev lo up", sh(name)));
        s.log.push(format!("ip netns exec {} sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0", sh(name)));
        Ok(inode_of(id))
    }

    async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId, indexes: Option<(u32, u32)>) -> io::Result<(u32, u32)> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?;
        s.ns(peer_ns)?;
        if s.ns(ns)?.links.iter().any(|l| l.name == name) || s.ns(peer_ns)?.links.iter().any(|l| l.name == peer) || (ns == peer_ns && name == peer) {
            return Err(err(libc::EEXIST));
        }
        let a = s.add_link(ns, name, "veth", indexes.map(|i| i.0))?;
        let b = match s.add_link(peer_ns, peer, "veth", indexes.map(|i| i.1)) {
            Ok(b) => b,
            Err(e) => {
                s.ns(ns)?.links.retain(|l| l.index != a);
                return Err(e);
            }
        };
        let peer_where = match s.ns_name(peer_ns) {
            Some(n) if ns != peer_ns => format!(" netns {}", sh(&n)),
            None if ns != peer_ns => " netns $$".to_string(),
            _ => String::new(),
        };
        let (index, peer_index) = match indexes {
            Some((i, j)) => (format!(" index {i}"), format!(" index {j}")),
            None => (String::new(), String::new()),
        };
        let line = format!("{}link add name {}{index} type veth peer name {}{peer_index}{peer_where}", s.ip(ns), sh(name), sh(peer));
        s.log.push(line);
        Ok((a, b))
    }

    async fn create_bridge(&mut self, name: &str, ns: NsId, index: Option<u32>) -> io::Result<u32> {
        let mut s = self.state.lock().unwrap();
        let index = s.add_link(ns, name, "bridge", index)?;
        let line = format!("{}link add name {} type bridge", s.ip(ns), sh(name));
        s.log.push(line);
        Ok(index)
    }

    async fn create_tunnel(&mut self, name: &str, ns: NsId, t: &crate::backend::Tunnel) -> io::Result<u32> {
        let mut s = self.state.lock().unwrap();
        let index = s.add_link(ns, name, "vxlan", None)?;
        let netns = s.ns_name(ns).map(|n| format!(" netns {}", sh(&n))).unwrap_or_default();
        let line = format!("ip link add name {}{netns} mtu {} type vxlan id {} local {} remote {} dstport {} nolearning", sh(name), t.mtu, t.vni, t.local, t.remote, t.port);
        s.log.push(line);
        Ok(index)
    }

    async fn move_link(&mut self, link: &LinkRef, to: NsId, index: Option<u32>) -> io::Result<u32> {
        let mut s = self.state.lock().unwrap();
        let moved = s.owned(link)?.clone();
        if moved.kind == "bridge" {
            return Err(err(libc::EINVAL));
        }
        let new_index = index.unwrap_or(moved.index);
        if s.ns(to)?.links.iter().any(|l| l.name == link.name || l.index == new_index) {
            return Err(err(libc::EEXIST));
        }
        s.ns(link.ns)?.links.retain(|l| l.index != link.index);
        s.ns(link.ns)?.forget_routes_of(&moved);
        s.ns(link.ns)?.sysctls.retain(|k, _| !k.contains(&format!("/conf/{}/", moved.name)));
        // A moved link arrives down, without addresses or master.
        s.ns(to)?.links.push(PlanLink { up: false, master: None, addresses: Vec::new(), index: new_index, queue: None, ..moved });
        let target = s.ns_name(to).map(|n| sh(&n)).unwrap_or_else(|| "$$".into());
        let line = format!("{}link set dev {} netns {target}", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(new_index)
    }

    async fn set_master(&mut self, port: &LinkRef, bridge: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let kind = s.owned(bridge)?.kind.clone();
        if kind != "bridge" {
            return Err(err(libc::EOPNOTSUPP));
        }
        s.owned(port)?.master = Some(bridge.index);
        let line = format!("{}link set dev {} master {}", s.ip(port.ns), sh(&port.name), sh(&bridge.name));
        s.log.push(line);
        Ok(())
    }

    async fn set_up(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.up = true;
        let line = format!("{}link set dev {} up", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn set_down(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.up = false;
        let line = format!("{}link set dev {} down", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn set_mtu(&mut self, link: &LinkRef, mtu: u32) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.mtu = mtu;
        let line = format!("{}link set dev {} mtu {mtu}", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn set_bridge_options(&mut self, bridge: &LinkRef, options: &crate::policy::bridges::BridgeOptions) -> io::Result<()> {
        self.state.lock().unwrap().set_bridge_options(bridge, options)
    }

    async fn set_port_cost(&mut self, port: &LinkRef, cost: u32) -> io::Result<()> {
        self.state.lock().unwrap().set_port_cost(port, cost)
    }

    async fn set_mac(&mut self, link: &LinkRef, mac: [u8; 6]) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.mac = Some(mac);
        let text = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let line = format!("{}link set dev {} address {text}", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn link_exists(&mut self, ns: NsId, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.links.iter().any(|l| l.name == name))
    }

    async fn wait_link(&mut self, ns: NsId, name: &str, _timeout: Duration, _stop: &Stop) -> io::Result<Option<u32>> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.links.iter().find(|l| l.name == name).map(|l| l.index))
    }

    async fn link_is(&mut self, ns: NsId, index: u32, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.links.iter().any(|l| l.index == index && l.name == name))
    }

    async fn wait_carrier_settled(&mut self, link: &LinkRef, _timeout: Duration, _stop: &Stop) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?;
        Ok(true)
    }

    async fn disable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?;
        let line = format!("{}link set dev {} addrgenmode none", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn enable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?;
        let line = format!("{}link set dev {} addrgenmode eui64", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn link_addresses(&mut self, link: &LinkRef) -> io::Result<Vec<IpNet>> {
        Ok(self.state.lock().unwrap().owned(link)?.addresses.clone())
    }

    async fn add_address(&mut self, link: &LinkRef, cidr: IpNet) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let owned = s.owned(link)?;
        if owned.addresses.contains(&cidr) {
            return Err(err(libc::EEXIST));
        }
        owned.addresses.push(cidr);
        let space = s.ns(link.ns)?;
        if !space.routes.iter().any(|(d, g, _)| *d == cidr.trunc() && g.is_none()) {
            space.routes.push((cidr.trunc(), None, true));
        }
        let nodad = if cidr.addr().is_ipv6() { " nodad" } else { "" };
        let line = format!("{}address add {cidr} dev {}{nodad}", s.ip(link.ns), sh(&link.name));
        s.log.push(line);
        Ok(())
    }

    async fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()> {
        self.state.lock().unwrap().add_route(ns, destination, via)
    }

    async fn add_multipath_route(&mut self, ns: NsId, destination: IpNet, hops: &[crate::policy::routes::NextHop]) -> io::Result<()> {
        self.state.lock().unwrap().add_multipath_route(ns, destination, hops)
    }

    async fn read_sysctl(&mut self, ns: NsId, key: &str) -> io::Result<String> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()))
    }

    async fn write_sysctl(&mut self, ns: NsId, key: &str, value: &str) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        write_modelled_sysctl(s.ns(ns)?, key, value);
        let line = render::sysctl_line(&s.inside(ns), key, value);
        s.log.push(line);
        Ok(())
    }

    async fn sysctl_tree(&mut self, ns: NsId, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
        let mut s = self.state.lock().unwrap();
        Ok(tree_of(s.ns(ns)?, roots))
    }

    async fn change_table(&mut self, ns: NsId, table: &LabTable, changes: &[TableChange]) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let inside = s.inside(ns);
        let space = s.ns(ns)?;
        let exists = space.tables.iter().any(|(f, t, _)| *f == table.family && *t == table.name);
        let ours = space.tables.iter().any(|(f, t, n)| *f == table.family && *t == table.name && *n == table.nonce);
        if table.create && exists {
            return Err(err(libc::EEXIST));
        }
        if !table.create && !ours {
            return Err(err(libc::ENOENT));
        }
        let lines = render::nft_lines(&inside, table, changes);
        if table.create {
            space.tables.push((table.family, table.name.clone(), table.nonce));
        }
        space.table_changes.extend(changes.iter().map(|c| (table.family, table.name.clone(), c.clone())));
        s.log.extend(lines);
        Ok(())
    }

    async fn set_queue(&mut self, link: &LinkRef, queue: Option<&Queue>) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.queue = queue.copied();
        let lines = render::tc_lines(&s.inside(link.ns), &link.name, queue);
        s.log.extend(lines);
        Ok(())
    }

    async fn queue_features(&mut self) -> io::Result<QueueFeatures> {
        Ok(self.features)
    }

    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, _timeout: Duration, _interval: Duration, _stop: &Stop) -> io::Result<PingStats> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?;
        let from = s.ns_name(ns).unwrap_or_else(|| "the machine".into());
        s.log.push(format!("# probe: {count} echo request{} to {target} from {from}", if count == 1 { "" } else { "s" }));
        // Nothing is sent in a plan; it assumes every echo is answered, so
        // that a script that insists on replies goes on to the end.
        Ok(PingStats::from_rtts(count, &vec![Duration::ZERO; count as usize]))
    }

    async fn tcp_connect(&mut self, ns: NsId, to: std::net::SocketAddr, _timeout: Duration, _stop: &Stop) -> io::Result<(ConnectOutcome, Duration)> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?;
        let from = s.ns_name(ns).unwrap_or_else(|| "the machine".into());
        s.log.push(format!("# probe: a TCP connection to {to} from {from}"));
        // A plan assumes it would connect (see `ping`).
        Ok((ConnectOutcome::Connected, Duration::ZERO))
    }

    async fn throughput(&mut self, sender: NsId, receiver: NsId, address: IpAddr, duration: Duration, _stop: &Stop) -> io::Result<Throughput> {
        let mut s = self.state.lock().unwrap();
        let (from, to) = (s.ns_name(sender).unwrap_or_default(), s.ns_name(receiver).unwrap_or_default());
        s.log.push(format!("# probe: TCP throughput from {from} to {address} in {to} for {} s", duration.as_secs()));
        Ok(Throughput { bytes: 0, seconds: duration.as_secs_f64(), retransmits: 0 })
    }

    async fn trace(&mut self, ns: NsId, target: IpAddr, _stop: &Stop) -> io::Result<Vec<Hop>> {
        let mut s = self.state.lock().unwrap();
        let from = s.ns_name(ns).unwrap_or_default();
        s.log.push(format!("# probe: trace {target} from {from}"));
        Ok(Vec::new())
    }

    async fn routes(&mut self, ns: NsId) -> io::Result<Vec<IpNet>> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.routes.iter().map(|(d, _, _)| *d).collect())
    }

    async fn peers(&mut self, ns: NsId) -> io::Result<Vec<IpAddr>> {
        let mut s = self.state.lock().unwrap();
        let space = s.ns(ns)?;
        // The plan's machine talks to its gateway and a resolver beyond it.
        Ok(if space.name.is_none() { vec!["10.1.0.1".parse().unwrap(), "10.9.9.53".parse().unwrap()] } else { Vec::new() })
    }

    async fn netns_alive(&mut self, id: NsId) -> io::Result<bool> {
        Ok(self.state.lock().unwrap().namespaces.contains_key(&id))
    }

    fn start_program(&mut self, ns: NsId, spec: &super::ProgramSpec) -> io::Result<Box<dyn super::Program>> {
        let mut s = self.state.lock().unwrap();
        s.program_lines(ns, spec, self.lab_root);
        s.programs += 1;
        let id = ProcessId { pid: 200_000 + s.programs, since: 1 };
        if let Some(space) = s.namespaces.get_mut(&ns) {
            space.processes.push((id.pid, spec.argv.first().cloned().unwrap_or_default()));
        }
        // A program run to its end ends at once (a plan assumes it
        // succeeds); one started in the background (logged: a daemon) runs
        // until it is stopped, as the lab's teardown stops it.
        Ok(Box::new(PlannedProgram { id, daemon: spec.log.is_some(), stopped: std::sync::Mutex::new(None) }))
    }

    async fn node_file(&mut self, ns: NsId, _node: &super::NodeIdentity, path: &crate::policy::node_files::NodePath, op: super::NodeFileOp) -> io::Result<Vec<u8>> {
        self.state.lock().unwrap().node_file(ns, path, op)
    }

    async fn program_ready(&mut self, ns: NsId, _node: Option<&super::NodeIdentity>, probe: &super::ReadyProbe) -> io::Result<bool> {
        // A plan's programs are ready at once.
        self.state.lock().unwrap().ready_line(ns, probe);
        Ok(true)
    }

    fn start_thread_in(&mut self, ns: NsId, name: &str, _body: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        // A plan runs nothing: the service is only noted.
        let mut s = self.state.lock().unwrap();
        let node = s.ns_name(ns).unwrap_or_default();
        s.log.push(format!("# service {name}: a WebAssembly service of the script's, in {node}"));
        Ok(())
    }

    async fn start_uplink(&mut self, ns: NsId, uplink: &Uplink) -> io::Result<ProcessId> {
        let mut s = self.state.lock().unwrap();
        let Some(name) = s.ns_name(ns) else { return Err(err(libc::EINVAL)) };
        let net = IpNet::new(IpAddr::V4(uplink.address), uplink.prefix_len).map_err(|_| err(libc::EINVAL))?;
        let index = s.add_link(ns, &uplink.ifname, "tun", None)?;
        let space = s.ns(ns)?;
        let link = space.links.iter_mut().find(|l| l.index == index).expect("added above");
        link.up = true;
        link.addresses.push(net);
        space.routes.push((net.trunc(), None, true));
        space.routes.push(("0.0.0.0/0".parse().unwrap(), Some(IpAddr::V4(uplink.gateway)), true));
        let id = ProcessId { pid: 100_000 + s.started.len() as u32, since: 1 };
        s.started.push((id, Some(name.clone())));
        s.log.push(format!(
            "pasta --quiet --runas 0 --netns /run/netns/{} --config-net --ns-ifname {} --address {} --netmask {} --gateway {} \
             --ipv4-only --no-map-gw --no-dhcp --tcp-ports none --udp-ports none --tcp-ns none --udp-ns none",
            sh(&name),
            sh(&uplink.ifname),
            uplink.address,
            uplink.prefix_len,
            uplink.gateway
        ));
        Ok(id)
    }
}

/// Write a modelled sysctl, with the kernel's side effects of `ip_forward`.
pub(super) fn write_modelled_sysctl(space: &mut PlanNs, key: &str, value: &str) {
    space.sysctls.insert(key.to_string(), value.to_string());
    if key == "net/ipv4/ip_forward" {
        let devices: Vec<String> = space.links.iter().map(|l| l.name.clone()).chain(["all".into(), "default".into()]).collect();
        for dev in devices {
            let k = format!("net/ipv4/conf/{dev}/forwarding");
            if space.sysctls.contains_key(&k) {
                space.sysctls.insert(k, value.to_string());
            }
        }
        space.sysctls.insert("net/ipv4/conf/all/accept_redirects".into(), if value == "1" { "0" } else { "1" }.into());
    }
}

pub(super) fn tree_of(space: &PlanNs, roots: &[&str]) -> BTreeMap<String, String> {
    space.sysctls.iter().filter(|(k, _)| roots.iter().any(|r| k.starts_with(r))).map(|(k, v)| (k.clone(), v.clone())).collect()
}

