//! `uplink`: a way out of a contained lab, through the machine.

use ipnet::IpNet;

use super::{Family, HOST, Lab, LinkId};
use crate::error::{LabError, LabResult};
use crate::journal::Mode;
use crate::journal::Object;

/// Names of the uplink's lab end and its address pool.
const UPLINK_LAB_END: &str = "uplink0";
const UPLINK_POOL: &str = "100.64.0.0/10";

impl Lab {
    /// Connect a contained lab's host to the machine (the `uplink`
    /// interface): a veth pair, a /30 from 100.64.0.0/10 that overlaps no
    /// route of the machine, a default route in the lab's host, forwarding
    /// and masquerade in the machine. All journaled like any object.
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
        let machine = self.adopt_machine("machine").await?;
        let machine_routes = self.machine.as_ref().map(|(_, rules)| rules.routes().to_vec()).unwrap_or_default();
        let pool: IpNet = UPLINK_POOL.parse().expect("valid literal");
        let start = fnv1a(self.name.as_bytes());
        let subnets: Vec<IpNet> = pool.subnets(30).expect("a /30 fits in a /10").collect();
        let free = (0..subnets.len())
            .map(|i| subnets[(start as usize + i) % subnets.len()])
            .find(|net| !machine_routes.iter().any(|r| r.prefix_len() > 0 && (r.contains(net) || net.contains(r))))
            .ok_or_else(|| LabError::quota(format!("no free /30 left in {UPLINK_POOL} for an uplink")))?;
        let mut hosts = free.hosts();
        let (machine_addr, lab_addr) = (hosts.next().expect("a /30 has two hosts"), hosts.next().expect("two hosts"));
        let machine_end = format!("nsu{:06x}", start & 0xff_ffff);
        let (lab_link, machine_link) = self.create_veth(UPLINK_LAB_END, HOST, &machine_end, machine).await?;
        let prefix = free.prefix_len();
        self.uplink_address(machine_link, IpNet::new(machine_addr, prefix).expect("valid")).await?;
        self.uplink_address(lab_link, IpNet::new(lab_addr, prefix).expect("valid")).await?;
        self.set_up(machine_link).await?;
        self.set_up(lab_link).await?;
        self.add_route_unchecked(HOST, "0.0.0.0/0".parse().expect("valid literal"), machine_addr).await?;
        self.enable_forwarding(machine, Family::V4).await?;
        self.masquerade_unchecked(machine, free, format!("masquerade the uplink {free} in the machine's namespace")).await?;
        self.uplink = Some(lab_link);
        Ok(lab_link)
    }

    async fn uplink_address(&mut self, link: LinkId, cidr: IpNet) -> LabResult<()> {
        self.materialize(link).await?;
        let l = &self.links[link];
        let what = format!("add address {cidr} to {} in {}", l.name, self.describe_ns(l.ns));
        let id = self.record_intent(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.confirm(&[id], outcome, || what)
    }
}

/// A small stable hash (FNV-1a) to spread labs over the uplink pool.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ *b as u32).wrapping_mul(0x0100_0193))
}
