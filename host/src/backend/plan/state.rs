//! What the plan knows: its model of namespaces, links, routes, sysctls,
//! tables and processes.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{err, sh};
use crate::backend::rules::{Queue, TableChange, TableFamily};
use crate::backend::{LinkRef, NsId, ProcessId};

#[derive(Debug, Clone)]
pub struct PlanLink {
    pub name: String,
    pub index: u32,
    pub kind: String,
    /// Made by the lab (not there before it started).
    pub owned: bool,
    pub up: bool,
    pub master: Option<u32>,
    pub addresses: Vec<IpNet>,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    /// Its conditions' queue, if any.
    pub queue: Option<Queue>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanNs {
    /// `None` for the machine's namespace.
    pub name: Option<String>,
    pub links: Vec<PlanLink>,
    /// (destination, gateway, made by the lab)
    pub routes: Vec<(IpNet, Option<IpAddr>, bool)>,
    pub sysctls: HashMap<String, String>,
    /// nftables tables, with the marker nonce they were made with.
    pub tables: Vec<(TableFamily, String, u64)>,
    /// The changes made to them: (family, table, change).
    pub table_changes: Vec<(TableFamily, String, TableChange)>,
    /// Processes running in it: (pid, command).
    pub processes: Vec<(u32, String)>,
    /// Its node's own files the script wrote, by path.
    pub files: HashMap<String, Vec<u8>>,
}

impl PlanNs {
    /// A link left this namespace: as in the kernel, the routes through it
    /// (its subnets, and gateways on them no other link has) go with it.
    pub(super) fn forget_routes_of(&mut self, link: &PlanLink) {
        let gone: Vec<IpNet> = link.addresses.iter().map(|a| a.trunc()).collect();
        let still: Vec<IpNet> = self.links.iter().flat_map(|l| l.addresses.iter().map(|a| a.trunc())).collect();
        let lost = |net: &IpNet| gone.contains(net) && !still.contains(net);
        self.routes.retain(|(d, g, _)| match g {
            None => !lost(d),
            Some(via) => !gone.iter().any(|net| net.contains(via) && lost(net)),
        });
    }
}

/// Everything the plan backend knows, shared with whoever inspects it.
#[derive(Debug, Default)]
pub struct PlanState {
    pub namespaces: HashMap<NsId, PlanNs>,
    /// Names taken under /run/netns.
    pub named: Vec<String>,
    /// The commands that would build the lab, as a shell script's lines.
    pub log: Vec<String>,
    /// Operations that reached for something the lab does not own.
    pub violations: Vec<String>,
    /// Processes the lab started (the uplink's pasta): pid to namespace.
    pub started: Vec<(ProcessId, Option<String>)>,
    pub(super) next_index: u32,
    /// Programs started so far (their pids are 200001 and up).
    pub(super) programs: u32,
}

impl PlanState {
    /// The machine's namespace, if the lab ever opened it.
    pub fn machine_ns(&mut self) -> Option<&mut PlanNs> {
        self.namespaces.values_mut().find(|n| n.name.is_none())
    }

    pub(super) fn ns(&mut self, id: NsId) -> io::Result<&mut PlanNs> {
        self.namespaces.get_mut(&id).ok_or_else(|| err(libc::EBADF))
    }

    pub(super) fn ns_name(&self, id: NsId) -> Option<String> {
        self.namespaces.get(&id).and_then(|n| n.name.clone())
    }

    /// `ip -n NAME ` for a lab namespace, nothing for the machine's.
    pub(super) fn ip(&self, id: NsId) -> String {
        match self.ns_name(id) {
            Some(name) => format!("ip -n {} ", sh(&name)),
            None => "ip ".to_string(),
        }
    }

    /// `ip link set BRIDGE type bridge ...`, times in hundredths of a
    /// second as ip takes them.
    pub(super) fn set_bridge_options(&mut self, bridge: &LinkRef, o: &crate::policy::bridges::BridgeOptions) -> io::Result<()> {
        self.owned(bridge)?;
        let mut words = vec![format!("stp_state {}", u8::from(o.stp))];
        let centi = |v: Option<u8>| v.map(|s| u32::from(s) * 100);
        let numbers = [("priority", o.priority.map(u32::from)), ("forward_delay", centi(o.forward_delay_secs)), ("hello_time", centi(o.hello_secs)), ("max_age", centi(o.max_age_secs)), ("ageing_time", o.ageing_secs.map(|s| s.saturating_mul(100)))];
        words.extend(numbers.iter().filter_map(|(name, v)| v.map(|v| format!("{name} {v}"))));
        words.extend([("mcast_snooping", o.multicast_snooping), ("vlan_filtering", o.vlan_filtering)].iter().filter_map(|(name, v)| v.map(|v| format!("{name} {}", u8::from(v)))));
        let line = format!("{}link set dev {} type bridge {}", self.ip(bridge.ns), sh(&bridge.name), words.join(" "));
        self.log.push(line);
        Ok(())
    }

    /// `ip link set PORT type bridge_slave cost N`.
    pub(super) fn set_port_cost(&mut self, port: &LinkRef, cost: u32) -> io::Result<()> {
        self.owned(port)?;
        let line = format!("{}link set dev {} type bridge_slave cost {cost}", self.ip(port.ns), sh(&port.name));
        self.log.push(line);
        Ok(())
    }

    /// A node's own file: the plan's nodes have none (its programs run in
    /// the machine's files), so what the script writes is kept, for it to
    /// read back, and noted with `:`, a command that does nothing, so the
    /// plan stays a runnable script.
    pub(super) fn node_file(&mut self, ns: NsId, path: &crate::policy::node_files::NodePath, op: crate::backend::NodeFileOp) -> io::Result<Vec<u8>> {
        use crate::backend::NodeFileOp;
        let node = self.ns_name(ns).unwrap_or_default();
        let shown = path.shown();
        let space = self.ns(ns)?;
        let note = match op {
            NodeFileOp::Write { contents, mode, owner } => {
                let line = format!("writes {} bytes to {} (mode {mode:o}, owner {}:{})", contents.len(), sh(&shown), owner.0, owner.1);
                space.files.insert(shown, contents);
                line
            }
            NodeFileOp::MakeDir { mode, owner } => format!("makes directory {} (mode {mode:o}, owner {}:{})", sh(&shown), owner.0, owner.1),
            NodeFileOp::Exists => return Ok(Vec::new()),
            NodeFileOp::Read { max } => {
                // A node starts with the machine's users and groups (which
                // every user may read); nothing else of the machine's is read.
                let machine = || ["/etc/passwd", "/etc/group"].contains(&shown.as_str()).then(|| std::fs::read(&shown).ok()).flatten();
                let found = space.files.get(&shown).cloned().or_else(machine).ok_or_else(|| err(libc::ENOENT))?;
                return if found.len() > max { Err(err(libc::EFBIG)) } else { Ok(found) };
            }
        };
        self.log.push(format!(": node {} {note}", sh(&node)));
        Ok(Vec::new())
    }

    /// `ip route add DESTINATION via A proto static` (proto static: what
    /// the kernel backend marks its routes with).
    pub(super) fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()> {
        let line = format!("{}route add {} via {via} proto static", self.ip(ns), shown(destination));
        self.add_planned_route(ns, destination, &[via], line)
    }

    /// `ip route add DESTINATION proto static nexthop via A weight W ...`.
    pub(super) fn add_multipath_route(&mut self, ns: NsId, destination: IpNet, hops: &[crate::policy::routes::NextHop]) -> io::Result<()> {
        let words: String = hops.iter().map(|h| format!(" nexthop via {} weight {}", h.via, h.weight)).collect();
        let line = format!("{}route add {} proto static{words}", self.ip(ns), shown(destination));
        let vias: Vec<IpAddr> = hops.iter().map(|h| h.via).collect();
        self.add_planned_route(ns, destination, &vias, line)
    }

    /// A route whose every gateway is on one of the namespace's subnets, as
    /// the kernel wants them, and its plan's `line`.
    fn add_planned_route(&mut self, ns: NsId, destination: IpNet, vias: &[IpAddr], line: String) -> io::Result<()> {
        let space = self.ns(ns)?;
        if !vias.iter().all(|via| space.links.iter().flat_map(|l| &l.addresses).any(|a| a.trunc().contains(via))) {
            return Err(err(libc::ENETUNREACH));
        }
        if space.routes.iter().any(|(d, _, _)| *d == destination) {
            return Err(err(libc::EEXIST));
        }
        space.routes.push((destination, vias.first().copied(), true));
        self.log.push(line);
        Ok(())
    }

    /// The line that starts a program: `setpriv` to its user. Uid 0 of the
    /// lab's own user namespace (`lab_root`) is never the machine's root in
    /// its place: the plan says so and runs the program as nobody.
    pub(super) fn program_lines(&mut self, ns: NsId, spec: &crate::backend::ProgramSpec, lab_root: bool) {
        let words: Vec<String> = spec.argv.iter().map(|w| sh(w)).collect();
        let (uid, gid) = if lab_root && spec.uid == 0 {
            self.log.push("# nsw runs this as root of the lab's own user namespace (capabilities over the lab's namespaces only); a plan has none, so here it runs as nobody".into());
            (65534, 65534)
        } else {
            (spec.uid, spec.gid)
        };
        if self.programs == 0 {
            self.log.push(format!(
                "# nsw puts the lab's programs in a pids cgroup of their own (nsw/{}, where the machine has a cgroup v1 pids hierarchy): at most {} processes and threads at once (--max-tasks), all of them stopped by down",
                spec.tasks.lab, spec.tasks.max
            ));
            self.log.push(
                "# nsw starts them in a PID namespace of the lab's own, whose init (pid 1) is nsw's: a node's ps lists the lab only, and down ends everything in it with the init; this script runs them in the machine's".into(),
            );
        }
        // A program in the background (a daemon) must not hold the script.
        let background = if spec.log.is_some() { " &" } else { "" };
        let line = format!("{}setpriv --reuid={uid} --regid={gid} --clear-groups --no-new-privs -- {}{background}", self.inside(ns), words.join(" "));
        self.log.push(line);
    }

    /// What a real run would wait for before a program is ready, as a
    /// command that does nothing.
    pub(super) fn ready_line(&mut self, ns: NsId, probe: &crate::backend::ReadyProbe) {
        use crate::backend::ReadyProbe;
        let node = self.ns_name(ns).unwrap_or_else(|| "machine".into());
        let until = match probe {
            ReadyProbe::Port { udp: false, port } => format!("a TCP socket listens on port {port}"),
            ReadyProbe::Port { udp: true, port } => format!("a UDP socket is bound to port {port}"),
            ReadyProbe::Path(path) => format!("{} exists", sh(&path.shown())),
            ReadyProbe::Output { text, .. } => format!("the program's output holds {}", sh(text)),
        };
        self.log.push(format!(": node {} waits until {until}", sh(&node)));
    }

    /// A command run inside namespace `id` (`ip netns exec NAME `).
    pub(super) fn inside(&self, id: NsId) -> String {
        match self.ns_name(id) {
            Some(name) => format!("ip netns exec {} ", sh(&name)),
            None => String::new(),
        }
    }

    /// The lab's link behind `link`, or a violation if it is not the lab's.
    pub(super) fn owned(&mut self, link: &LinkRef) -> io::Result<&mut PlanLink> {
        let found = self
            .namespaces
            .get(&link.ns)
            .and_then(|ns| ns.links.iter().find(|l| l.index == link.index && l.name == link.name))
            .map(|l| l.owned);
        match found {
            None => Err(err(libc::ENODEV)),
            Some(false) => {
                self.violations.push(format!("touched {} in namespace #{}, which the lab did not create", link.name, link.ns));
                Err(err(libc::EPERM))
            }
            Some(true) => Ok(self.ns(link.ns)?.links.iter_mut().find(|l| l.index == link.index).expect("found above")),
        }
    }

    pub(super) fn add_link(&mut self, ns: NsId, name: &str, kind: &str, index: Option<u32>) -> io::Result<u32> {
        let index = match index {
            Some(index) => index,
            None => {
                self.next_index += 1;
                100 + self.next_index
            }
        };
        let space = self.ns(ns)?;
        if space.links.iter().any(|l| l.name == name || l.index == index) {
            return Err(err(libc::EEXIST));
        }
        space.links.push(PlanLink { name: name.into(), index, kind: kind.into(), owned: true, up: false, master: None, addresses: Vec::new(), mtu: 1500, mac: None, queue: None });
        Ok(index)
    }
}


/// A program in a plan: it ran (nothing did), and ended at once.
pub(super) struct PlannedProgram {
    pub(super) id: crate::backend::ProcessId,
    /// Started in the background: it runs until signalled.
    pub(super) daemon: bool,
    pub(super) stopped: std::sync::Mutex<Option<i32>>,
}

impl crate::backend::Program for PlannedProgram {
    fn id(&self) -> crate::backend::ProcessId {
        self.id
    }
    fn try_wait(&mut self) -> std::io::Result<Option<crate::backend::Exit>> {
        let stopped = *self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match (self.daemon, stopped) {
            (_, Some(signal)) => Some(crate::backend::Exit::Signal(signal)),
            (true, None) => None,
            (false, None) => Some(crate::backend::Exit::Code(0)),
        })
    }
    fn take_pipes(&mut self) -> Option<(Box<dyn std::io::Read + Send>, Box<dyn std::io::Read + Send>)> {
        Some((Box::new(std::io::empty()), Box::new(std::io::empty())))
    }
    fn signal(&self, signal: nix::sys::signal::Signal) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(signal as i32);
    }
}

/// A route's destination as ip takes it: a prefix, or `default`.
fn shown(destination: IpNet) -> String {
    if destination.prefix_len() == 0 { "default".to_string() } else { destination.to_string() }
}

impl super::PlanBackend {
    /// The machine as the plan starts it, before any lab touched it: `lo`
    /// and `eth0` (10.1.0.2/24, default via 10.1.0.1), which a lab must
    /// leave alone.
    pub fn fresh_machine() -> PlanNs {
        let link = |name: &str, index: u32, kind: &str, addr: &str| PlanLink {
            name: name.into(),
            index,
            kind: kind.into(),
            owned: false,
            up: true,
            master: None,
            addresses: vec![addr.parse().expect("valid literal")],
            mtu: if kind == "loopback" { 65536 } else { 1500 },
            mac: None,
            queue: None,
        };
        let mut sysctls = HashMap::new();
        for (k, v) in [
            ("net/ipv4/ip_forward", "0"),
            ("net/ipv6/conf/all/forwarding", "0"),
            ("net/ipv4/conf/all/forwarding", "0"),
            ("net/ipv4/conf/eth0/forwarding", "0"),
            ("net/ipv4/conf/all/accept_redirects", "1"),
        ] {
            sysctls.insert(k.to_string(), v.to_string());
        }
        PlanNs {
            name: None,
            links: vec![link("lo", 1, "loopback", "127.0.0.1/8"), link("eth0", 2, "ether", "10.1.0.2/24")],
            routes: vec![
                ("0.0.0.0/0".parse().unwrap(), Some("10.1.0.1".parse().unwrap()), false),
                ("10.1.0.0/24".parse().unwrap(), None, false),
            ],
            sysctls,
            ..PlanNs::default()
        }
    }
}
