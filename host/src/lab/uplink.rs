//! `uplink`: a way out of a contained lab, through user-mode NAT.
//!
//! The lab's host gets a tap device, `uplink0`, from pasta (Debian's
//! `passt`), which carries what comes out of it on sockets of the machine's
//! own: the machine's forwarding, NAT tables and rp_filter are never
//! touched, nothing leaves with a source other than the machine's own
//! address, and no lab can reach another lab's uplink.

use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

use super::{HOST, Lab, LinkId};
use crate::backend::Uplink;
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Mode, NetnsRef, Object};

/// The uplink's interface in the lab's host, and its address pool.
const UPLINK_LAB_END: &str = "uplink0";
const UPLINK_POOL: &str = "100.64.0.0/10";

impl Lab {
    /// Connect a contained lab's host to the outside (the `uplink`
    /// interface): a /30 from 100.64.0.0/10 that overlaps no route of the
    /// machine, the lab's end of it on `uplink0`, a default route through
    /// it, and pasta behind it. Journaled like any object (pasta as a
    /// process: `down` stops it).
    pub async fn connect_uplink(&mut self) -> LabResult<LinkId> {
        self.refuse_if_stopped()?;
        if let Some(link) = self.uplink {
            return Ok(link);
        }
        if !self.grants.uplink {
            return Err(LabError::denied("the uplink was not granted (nsw run --allow uplink)"));
        }
        if self.mode == Mode::HostNet {
            return Err(LabError::invalid("a host-net lab's host is the machine already; it needs no uplink"));
        }
        let what = "connect the uplink";
        if self.links.iter().any(|l| l.ns == HOST && l.name == UPLINK_LAB_END) || self.pending_names.contains(&(HOST, UPLINK_LAB_END.into())) {
            return Err(LabError::exists(format!("{what}: the lab's host already has a link named {UPLINK_LAB_END}")));
        }
        if self.routes.iter().any(|(ns, dest)| *ns == HOST && dest.prefix_len() == 0 && dest.addr().is_ipv4()) {
            return Err(LabError::exists(format!("{what}: the lab's host has a default route already; the uplink brings its own")));
        }
        self.alive(HOST).await?;
        let subnet = self.free_uplink_subnet().await?;
        let mut hosts = subnet.hosts();
        let (gateway, address) = (hosts.next().expect("a /30 has two hosts"), hosts.next().expect("two hosts"));
        let uplink = Uplink {
            ifname: UPLINK_LAB_END.into(),
            address,
            prefix_len: subnet.prefix_len(),
            gateway,
            pid_file: self.state_dir().join(format!("{}.uplink.pid", self.name)),
        };
        let id = self.record_intent(Object::Process { netns: NetnsRef::Machine, program: "pasta".into() })?;
        let process = match self.backend.start_uplink(HOST, &uplink).await {
            Ok(process) => process,
            Err(e) => {
                self.record(Entry::Failed { id })?;
                return Err(LabError::os(what, &e));
            }
        };
        self.record(Entry::Created { id, ident: Some(process.pid as u64), since: Some(process.since) })?;
        let index = self
            .backend
            .wait_link(HOST, UPLINK_LAB_END, Duration::from_secs(5), &self.stop)
            .await
            .map_err(|e| LabError::os(what, &e))?
            .ok_or_else(|| LabError::os(what, &std::io::Error::other("pasta made no uplink0 within 5 s")))?;
        let link = self.push_link(UPLINK_LAB_END, HOST, index, crate::journal::LinkKind::Tun, id);
        let entry = &mut self.links[link];
        entry.up = true;
        entry.addresses.push(IpNet::V4(Ipv4Net::new(address, subnet.prefix_len()).expect("valid")));
        self.routes.insert((HOST, "0.0.0.0/0".parse().expect("valid literal")));
        self.uplink = Some(link);
        Ok(link)
    }

    /// A /30 of the pool that overlaps none of the machine's routes (or
    /// the lab could not reach those networks), the same for a lab of the
    /// same name whenever possible.
    async fn free_uplink_subnet(&mut self) -> LabResult<Ipv4Net> {
        // Opened to read its routes; nothing is made there.
        self.adopt_machine("machine").await?;
        let machine_routes = self.machine.as_ref().map(|(_, rules)| rules.routes().to_vec()).unwrap_or_default();
        let pool: Ipv4Net = UPLINK_POOL.parse().expect("valid literal");
        let start = fnv1a(self.name.as_bytes()) as usize;
        let subnets: Vec<Ipv4Net> = pool.subnets(30).expect("a /30 fits in a /10").collect();
        (0..subnets.len())
            .map(|i| subnets[(start + i) % subnets.len()])
            .find(|net| {
                let net = IpNet::V4(*net);
                !machine_routes.iter().any(|r| r.prefix_len() > 0 && (r.contains(&net) || net.contains(r)))
            })
            .ok_or_else(|| LabError::quota(format!("no free /30 left in {UPLINK_POOL} for an uplink")))
    }
}

/// A small stable hash (FNV-1a) to spread labs over the uplink pool.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ *b as u32).wrapping_mul(0x0100_0193))
}
