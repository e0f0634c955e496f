//! The plan backend: a model of the kernel in memory. It creates nothing;
//! it answers as the kernel would (a taken name is `EEXIST`, a gateway off
//! every subnet is `ENETUNREACH`) and logs each operation as the `ip` or
//! `nft` command that would do it. The policy, the guest logic, rollback
//! and `down` run against it without root, and the property tests use it
//! to check that a lab never touches an object it did not create and that
//! teardown leaves the machine as it was.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use super::{Backend, FoundLink, LinkRef, NsId, PingStats, Teardown};
use crate::stop::Stop;

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
}

#[derive(Debug, Clone, Default)]
pub struct PlanNs {
    /// `None` for the machine's namespace.
    pub name: Option<String>,
    pub links: Vec<PlanLink>,
    /// (destination, gateway, made by the lab)
    pub routes: Vec<(IpNet, Option<IpAddr>, bool)>,
    pub sysctls: HashMap<String, String>,
    pub nat: Vec<(String, IpNet)>,
}

impl PlanNs {
    /// A link left this namespace: as in the kernel, the routes through it
    /// (its subnets, and gateways on them no other link has) go with it.
    fn forget_routes_of(&mut self, link: &PlanLink) {
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
    /// The commands that would build the lab.
    pub log: Vec<String>,
    /// Operations that reached for something the lab does not own.
    pub violations: Vec<String>,
    next_index: u32,
}

#[derive(Clone, Default)]
pub struct PlanBackend {
    pub state: Arc<Mutex<PlanState>>,
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl PlanBackend {
    /// A machine with `lo` and `eth0` (10.1.0.2/24, default via 10.1.0.1)
    /// that the lab must leave alone.
    pub fn new() -> PlanBackend {
        PlanBackend::default()
    }

    /// The machine as the plan starts it, before any lab touched it.
    pub fn fresh_machine() -> PlanNs {
        let link = |name: &str, index: u32, kind: &str, addr: &str| PlanLink {
            name: name.into(),
            index,
            kind: kind.into(),
            owned: false,
            up: true,
            master: None,
            addresses: vec![addr.parse().expect("valid literal")],
        };
        let mut sysctls = HashMap::new();
        sysctls.insert("net/ipv4/ip_forward".to_string(), "0".to_string());
        sysctls.insert("net/ipv6/conf/all/forwarding".to_string(), "0".to_string());
        PlanNs {
            name: None,
            links: vec![link("lo", 1, "loopback", "127.0.0.1/8"), link("eth0", 2, "ether", "10.1.0.2/24")],
            routes: vec![
                ("0.0.0.0/0".parse().unwrap(), Some("10.1.0.1".parse().unwrap()), false),
                ("10.1.0.0/24".parse().unwrap(), None, false),
            ],
            sysctls,
            nat: Vec::new(),
        }
    }
}

impl PlanState {
    /// The machine's namespace, if the lab ever opened it.
    pub fn machine_ns(&mut self) -> Option<&mut PlanNs> {
        self.namespaces.values_mut().find(|n| n.name.is_none())
    }

    fn ns(&mut self, id: NsId) -> io::Result<&mut PlanNs> {
        self.namespaces.get_mut(&id).ok_or_else(|| err(libc::EBADF))
    }

    fn ns_label(&self, id: NsId) -> String {
        match self.namespaces.get(&id).and_then(|n| n.name.clone()) {
            Some(name) => format!("-n {name} "),
            None => String::new(),
        }
    }

    /// The lab's link behind `link`, or a violation if it is not the lab's.
    fn owned(&mut self, link: &LinkRef) -> io::Result<&mut PlanLink> {
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
            Some(true) => Ok(self
                .ns(link.ns)?
                .links
                .iter_mut()
                .find(|l| l.index == link.index)
                .expect("found above")),
        }
    }

    fn add_link(&mut self, ns: NsId, name: &str, kind: &str) -> io::Result<u32> {
        self.next_index += 1;
        let index = 100 + self.next_index;
        let space = self.ns(ns)?;
        if space.links.iter().any(|l| l.name == name) {
            return Err(err(libc::EEXIST));
        }
        space.links.push(PlanLink {
            name: name.into(),
            index,
            kind: kind.into(),
            owned: true,
            up: false,
            master: None,
            addresses: Vec::new(),
        });
        Ok(index)
    }
}

#[async_trait]
impl Backend for PlanBackend {
    async fn adopt_machine(&mut self, id: NsId) -> io::Result<()> {
        self.state.lock().unwrap().namespaces.insert(id, PlanBackend::fresh_machine());
        Ok(())
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
        };
        s.namespaces.insert(id, PlanNs { name: Some(name.to_string()), links: vec![lo], ..PlanNs::default() });
        s.log.push(format!("ip netns add {name}"));
        s.log.push(format!("ip -n {name} link set lo up"));
        Ok(inode_of(id))
    }

    async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId) -> io::Result<(u32, u32)> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?;
        s.ns(peer_ns)?;
        if s.ns(ns)?.links.iter().any(|l| l.name == name) || s.ns(peer_ns)?.links.iter().any(|l| l.name == peer) || (ns == peer_ns && name == peer) {
            return Err(err(libc::EEXIST));
        }
        let a = s.add_link(ns, name, "veth")?;
        let b = s.add_link(peer_ns, peer, "veth")?;
        let peer_where = match s.namespaces.get(&peer_ns).and_then(|n| n.name.clone()) {
            Some(n) if ns != peer_ns => format!(" netns {n}"),
            _ => String::new(),
        };
        let line = format!("ip {}link add {name} type veth peer name {peer}{peer_where}", s.ns_label(ns));
        s.log.push(line);
        Ok((a, b))
    }

    async fn create_bridge(&mut self, name: &str, ns: NsId) -> io::Result<u32> {
        let mut s = self.state.lock().unwrap();
        let index = s.add_link(ns, name, "bridge")?;
        let line = format!("ip {}link add {name} type bridge", s.ns_label(ns));
        s.log.push(line);
        Ok(index)
    }

    async fn move_link(&mut self, link: &LinkRef, to: NsId) -> io::Result<u32> {
        let mut s = self.state.lock().unwrap();
        let moved = s.owned(link)?.clone();
        if moved.kind == "bridge" {
            return Err(err(libc::EINVAL));
        }
        if s.ns(to)?.links.iter().any(|l| l.name == link.name) {
            return Err(err(libc::EEXIST));
        }
        s.ns(link.ns)?.links.retain(|l| l.index != link.index);
        s.ns(link.ns)?.forget_routes_of(&moved);
        // A moved link arrives down, without addresses or master.
        s.ns(to)?.links.push(PlanLink { up: false, master: None, addresses: Vec::new(), ..moved });
        let target = s.namespaces.get(&to).and_then(|n| n.name.clone()).unwrap_or_else(|| "1".into());
        let line = format!("ip {}link set {} netns {target}", s.ns_label(link.ns), link.name);
        s.log.push(line);
        Ok(link.index)
    }

    async fn set_master(&mut self, port: &LinkRef, bridge: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let kind = s.owned(bridge)?.kind.clone();
        if kind != "bridge" {
            return Err(err(libc::EOPNOTSUPP));
        }
        s.owned(port)?.master = Some(bridge.index);
        let line = format!("ip {}link set {} master {}", s.ns_label(port.ns), port.name, bridge.name);
        s.log.push(line);
        Ok(())
    }

    async fn set_up(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?.up = true;
        let line = format!("ip {}link set {} up", s.ns_label(link.ns), link.name);
        s.log.push(line);
        Ok(())
    }

    async fn link_exists(&mut self, ns: NsId, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.links.iter().any(|l| l.name == name))
    }

    async fn wait_oper_up(&mut self, link: &LinkRef, _timeout: Duration, _stop: &Stop) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        Ok(s.owned(link)?.up)
    }

    async fn disable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.owned(link)?;
        let line = format!("ip {}link set {} addrgenmode none", s.ns_label(link.ns), link.name);
        s.log.push(line);
        Ok(())
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
        let line = format!("ip {}address add {cidr} dev {}", s.ns_label(link.ns), link.name);
        s.log.push(line);
        Ok(())
    }

    async fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let space = s.ns(ns)?;
        if !space.links.iter().flat_map(|l| &l.addresses).any(|a| a.trunc().contains(&via)) {
            return Err(err(libc::ENETUNREACH));
        }
        if space.routes.iter().any(|(d, _, _)| *d == destination) {
            return Err(err(libc::EEXIST));
        }
        space.routes.push((destination, Some(via), true));
        let line = format!("ip {}route add {destination} via {via}", s.ns_label(ns));
        s.log.push(line);
        Ok(())
    }

    async fn read_sysctl(&mut self, ns: NsId, key: &str) -> io::Result<String> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()))
    }

    async fn write_sysctl(&mut self, ns: NsId, key: &str, value: &str) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?.sysctls.insert(key.to_string(), value.to_string());
        let line = format!("ip netns exec {} sysctl -w {}={value}", s.ns_label(ns).trim_start_matches("-n ").trim(), key.replace('/', "."));
        s.log.push(line);
        Ok(())
    }

    async fn masquerade(&mut self, ns: NsId, table: &str, source: IpNet) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?.nat.push((table.to_string(), source));
        let family = if source.addr().is_ipv4() { "ip" } else { "ip6" };
        let line = format!("nft add rule inet {table} postrouting {family} saddr {source} masquerade");
        s.log.push(line);
        Ok(())
    }

    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, _timeout: Duration, _interval: Duration, _stop: &Stop) -> io::Result<PingStats> {
        let mut s = self.state.lock().unwrap();
        s.ns(ns)?;
        let line = format!("ip netns exec {} ping -c {count} {target}", s.ns_label(ns).trim_start_matches("-n ").trim());
        s.log.push(line);
        // Nothing is sent in a plan: nothing comes back.
        Ok(PingStats::from_rtts(count, &[]))
    }

    async fn routes(&mut self, ns: NsId) -> io::Result<Vec<IpNet>> {
        let mut s = self.state.lock().unwrap();
        Ok(s.ns(ns)?.routes.iter().map(|(d, _, _)| *d).collect())
    }

    async fn netns_alive(&mut self, id: NsId) -> io::Result<bool> {
        Ok(self.state.lock().unwrap().namespaces.contains_key(&id))
    }
}

/// What a namespace id stands for in the plan: its inode.
fn inode_of(id: NsId) -> u64 {
    1000 + id as u64
}

#[async_trait]
impl Teardown for PlanBackend {
    fn machine_inode(&self) -> io::Result<u64> {
        Ok(1)
    }

    async fn netns_inode(&mut self, name: &str) -> io::Result<Option<u64>> {
        let s = self.state.lock().unwrap();
        Ok(s.namespaces.iter().find(|(_, n)| n.name.as_deref() == Some(name)).map(|(id, _)| inode_of(*id)))
    }

    async fn delete_netns(&mut self, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        let id = s.namespaces.iter().find(|(_, n)| n.name.as_deref() == Some(name)).map(|(id, _)| *id);
        let named = s.named.iter().any(|n| n == name);
        s.named.retain(|n| n != name);
        if let Some(id) = id {
            s.namespaces.remove(&id);
        }
        s.log.push(format!("ip netns delete {name}"));
        Ok(id.is_some() || named)
    }

    async fn machine_link(&mut self, name: &str) -> io::Result<Option<FoundLink>> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Ok(None) };
        Ok(machine.links.iter().find(|l| l.name == name).map(|l| FoundLink { index: l.index, kind: Some(l.kind.clone()) }))
    }

    async fn delete_machine_link(&mut self, index: u32) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENODEV)) };
        let Some(at) = machine.links.iter().position(|l| l.index == index) else { return Err(err(libc::ENODEV)) };
        let link = machine.links.remove(at);
        machine.forget_routes_of(&link);
        if !link.owned {
            s.violations.push(format!("teardown deleted {}, which the lab did not create", link.name));
        }
        s.log.push(format!("ip link delete {}", link.name));
        Ok(())
    }

    async fn delete_machine_route(&mut self, destination: IpNet, via: IpAddr) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ESRCH)) };
        let Some(at) = machine.routes.iter().position(|(d, g, _)| *d == destination && *g == Some(via)) else {
            return Err(err(libc::ESRCH));
        };
        let (_, _, by_lab) = machine.routes.remove(at);
        if !by_lab {
            s.violations.push(format!("teardown deleted the machine's route to {destination}"));
        }
        s.log.push(format!("ip route delete {destination} via {via}"));
        Ok(())
    }

    async fn delete_machine_nft_table(&mut self, family: &str, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Ok(false) };
        let before = machine.nat.len();
        machine.nat.retain(|(table, _)| table != name);
        let found = machine.nat.len() != before;
        s.log.push(format!("nft delete table {family} {name}"));
        Ok(found)
    }

    async fn read_machine_sysctl(&mut self, key: &str) -> io::Result<String> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENOENT)) };
        Ok(machine.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()))
    }

    async fn write_machine_sysctl(&mut self, key: &str, value: &str) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENOENT)) };
        machine.sysctls.insert(key.to_string(), value.to_string());
        s.log.push(format!("sysctl -w {}={value}", key.replace('/', ".")));
        Ok(())
    }
}
