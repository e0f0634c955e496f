//! `conditions`: links that behave like real ones (a rate, delay, loss...)
//! and fail (down, up), with their MTU and MAC. Conditions act on what a
//! link sends, as `tc` does; the kernel's queueing disciplines carry them
//! out (tbf, netem), and where this kernel has no netem, loss alone is an
//! nftables rule where the link's veth peer receives instead.

use super::{Lab, LinkId};
use crate::backend::rules::{Netem, Queue, QueueFeatures, TableChange, TableFamily};
use crate::error::{LabError, LabResult};
pub use crate::policy::conditions::Conditions;
use crate::journal::{Entry, Object, Setting};

/// netem's part of a link's conditions.
fn netem(c: &Conditions) -> Netem {
    Netem {
        delay_us: c.delay_us.unwrap_or(0),
        jitter_us: c.jitter_us.unwrap_or(0),
        loss_percent: c.loss_percent.unwrap_or(0.0),
        loss_correlation_percent: c.loss_correlation_percent.unwrap_or(0.0),
        duplicate_percent: c.duplicate_percent.unwrap_or(0.0),
        corrupt_percent: c.corrupt_percent.unwrap_or(0.0),
        reorder_percent: c.reorder_percent.unwrap_or(0.0),
    }
}

/// How a set of conditions is carried out on this kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Carried {
    /// The link's queue (`None`: the default one).
    queue: Option<Queue>,
    /// Loss by an nftables rule, for want of netem.
    nft_loss: Option<f64>,
}

/// Decide how `c` is carried out with what the kernel has, or say what is
/// missing.
fn carry(c: &Conditions, features: QueueFeatures) -> Result<Carried, String> {
    if let Some(what) = c.needs_netem() {
        if !features.netem {
            return Err(format!("{what} needs the kernel's sch_netem (modprobe sch_netem), which this kernel lacks"));
        }
    }
    let loss = c.loss_percent.filter(|p| *p > 0.0);
    let with_netem = c.needs_netem().is_some() || (loss.is_some() && features.netem);
    let nft_loss = if with_netem { None } else { loss };
    if nft_loss.is_some() && !features.nft_loss {
        return Err("loss needs the kernel's sch_netem (modprobe sch_netem), or nftables with netdev ingress hooks and numgen; this kernel has neither".into());
    }
    if c.rate_bps.is_some() && !features.tbf {
        return Err("a rate needs the kernel's sch_tbf (modprobe sch_tbf), which this kernel lacks".into());
    }
    let queue = Queue { rate_bps: c.rate_bps, limit_packets: c.queue_packets, netem: with_netem.then(|| netem(c)) };
    let queue = (queue.rate_bps.is_some() || queue.netem.is_some() || queue.limit_packets.is_some()).then_some(queue);
    if queue.is_some_and(|q| q.rate_bps.is_none() && q.netem.is_none()) {
        // A queue limit alone: netem without impairments is the queue that
        // takes one; without netem, a limit needs a rate to go with.
        if !features.netem {
            return Err("a queue limit without a rate needs the kernel's sch_netem (modprobe sch_netem), which this kernel lacks".into());
        }
        return Ok(Carried { queue: Some(Queue { netem: Some(Netem::default()), ..queue.expect("checked") }), nft_loss });
    }
    Ok(Carried { queue, nft_loss })
}

impl Lab {
    /// What the kernel offers, asked once per lab.
    async fn features(&mut self) -> LabResult<QueueFeatures> {
        if let Some(f) = self.queue_features {
            return Ok(f);
        }
        let f = self.backend.queue_features().await.map_err(|e| LabError::os("probe the kernel's queueing disciplines", &e))?;
        self.queue_features = Some(f);
        Ok(f)
    }

    pub(super) fn describe_link(&self, link: LinkId) -> String {
        format!("{} in {}", self.links[link].name, self.describe_ns(self.links[link].ns))
    }

    /// Record a link's new setting (`nsw link --show` reads it back).
    pub(super) fn record_setting(&mut self, link: LinkId, key: Setting, value: serde_json::Value) -> LabResult<()> {
        self.check_journal_room()?;
        self.record(Entry::Set { id: self.links[link].journal_id, key, value })
    }

    pub async fn set_conditions(&mut self, link: LinkId, c: Conditions) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set conditions on {}", self.describe_link(link));
        c.check().map_err(|why| LabError::invalid(format!("{what}: {why}")))?;
        let features = self.features().await?;
        let carried = carry(&c, features).map_err(|why| LabError::unsupported(format!("{what}: {why}")))?;
        self.materialize(link).await?;
        self.alive_link(link).await?;
        let l = self.link_ref(link);
        self.backend.set_queue(&l, carried.queue.as_ref()).await.map_err(|e| LabError::os(&what, &e))?;
        match carried.nft_loss {
            Some(percent) => {
                // Dropped where the peer receives (see TableChange::Loss).
                let Some(peer) = self.links[link].peer else {
                    return Err(LabError::unsupported(format!("{what}: loss on a {} without sch_netem (modprobe sch_netem): nsw drops at a veth's peer instead, and it has none", self.links[link].kind)));
                };
                self.materialize(peer).await?;
                let p = self.link_ref(peer);
                self.change_table(p.ns, TableFamily::Netdev, &what, &[TableChange::Loss { link: p.name.clone(), percent: Some(percent) }]).await?;
                self.nft_loss.insert(link);
            }
            None => self.clear_nft_loss(link, &what).await?,
        }
        let recorded = if c == Conditions::default() { serde_json::Value::Null } else { serde_json::to_value(c).map_err(|e| LabError::Trap(e.into()))? };
        self.record_setting(link, Setting::Conditions, recorded)
    }

    pub async fn clear_conditions(&mut self, link: LinkId) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("clear the conditions of {}", self.describe_link(link));
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_queue(&self.link_ref(link), None).await.map_err(|e| LabError::os(&what, &e))?;
        self.clear_nft_loss(link, &what).await?;
        self.record_setting(link, Setting::Conditions, serde_json::Value::Null)
    }

    async fn clear_nft_loss(&mut self, link: LinkId, what: &str) -> LabResult<()> {
        if let Some(peer) = self.links[link].peer.filter(|_| self.nft_loss.remove(&link)) {
            let p = self.link_ref(peer);
            self.change_table(p.ns, TableFamily::Netdev, what, &[TableChange::Loss { link: p.name, percent: None }]).await?;
        }
        Ok(())
    }

    /// Take a link down: a failure (`set-up` brings it back).
    pub async fn set_down(&mut self, link: LinkId) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set {} down", self.describe_link(link));
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_down(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))?;
        self.links[link].up = false;
        self.failed_links.insert(link);
        self.forwarded(|| super::forward::LabOp::SetDown { link })?;
        self.record_setting(link, Setting::State, "down".into())
    }

    /// Add again the lab's routes through `link` that the kernel deleted
    /// when it went down (Linux drops a link's routes with it), as the
    /// journal has them: those whose gateway is on one of its subnets.
    pub(super) async fn restore_routes(&mut self, link: LinkId) -> LabResult<()> {
        let l = self.link_ref(link);
        let place = self.netns[l.ns].kernel.clone();
        let record = self.journal.record();
        let subnets: Vec<ipnet::IpNet> = record
            .objects
            .iter()
            .filter_map(|o| match &o.object {
                Object::Address { netns, link, cidr } if *netns == place && *link == l.name => cidr.parse::<ipnet::IpNet>().ok().map(|c| c.trunc()),
                _ => None,
            })
            .collect();
        // Each route with its gateways (one, or a multipath route's all).
        let routes: Vec<(ipnet::IpNet, Vec<crate::policy::routes::NextHop>)> = record
            .objects
            .iter()
            .filter(|o| o.confirmed)
            .filter_map(|o| match &o.object {
                Object::Route { netns, destination, via } if *netns == place => {
                    let hops = crate::policy::routes::from_journal_via(via)
                        .or_else(|| Some(vec![crate::policy::routes::NextHop { via: via.parse().ok()?, weight: 1 }]))?;
                    Some((destination.parse().ok()?, hops))
                }
                _ => None,
            })
            .filter(|(_, hops)| hops.iter().any(|h| subnets.iter().any(|s| s.contains(&h.via))))
            .collect();
        for (destination, hops) in routes {
            let via = hops.iter().map(|h| h.via.to_string()).collect::<Vec<_>>().join(", ");
            let what = format!("restore the route to {destination} via {via} in {}", self.describe_ns(l.ns));
            let restored = match hops.as_slice() {
                [one] => self.backend.add_route(l.ns, destination, one.via).await,
                many => self.backend.add_multipath_route(l.ns, destination, many).await,
            };
            match restored {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(LabError::os(&what, &e)),
                _ => {}
            }
        }
        Ok(())
    }

    pub async fn set_mtu(&mut self, link: LinkId, mtu: u32) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set the MTU of {} to {mtu}", self.describe_link(link));
        if !(68..=65535).contains(&mtu) {
            return Err(LabError::invalid(format!("{what}: an MTU is 68-65535 bytes")));
        }
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_mtu(&self.link_ref(link), mtu).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                LabError::invalid(format!("{what}: the kernel refuses that MTU for a {} link", self.links[link].kind))
            } else {
                LabError::os(&what, &e)
            }
        })?;
        self.forwarded(|| super::forward::LabOp::SetMtu { link, mtu })?;
        self.record_setting(link, Setting::Mtu, mtu.into())
    }

    pub async fn set_mac(&mut self, link: LinkId, mac: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("topology.set-mac", &[mac])?;
        let what = format!("set the MAC address of {} to {}", self.describe_link(link), crate::policy::quoted(mac));
        let octets = parse_mac(mac).map_err(|why| LabError::invalid(format!("{what}: {why}")))?;
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_mac(&self.link_ref(link), octets).await.map_err(|e| LabError::os(&what, &e))?;
        self.forwarded(|| super::forward::LabOp::SetMac { link, mac: mac.to_string() })?;
        self.record_setting(link, Setting::Mac, mac.to_ascii_lowercase().into())
    }
}

/// `02:00:00:00:00:01`: six octets in hex, unicast, not all zero.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let mut octets = [0u8; 6];
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return Err("a MAC address is six octets in hex, 02:00:00:00:00:01".into());
    }
    for (octet, part) in octets.iter_mut().zip(&parts) {
        *octet = u8::from_str_radix(part, 16).map_err(|_| "a MAC address is six octets in hex, 02:00:00:00:00:01".to_string())?;
    }
    if octets[0] & 1 == 1 {
        return Err("that is a multicast address (the lowest bit of the first octet is set)".into());
    }
    if octets == [0; 6] {
        return Err("all zero is no address".into());
    }
    Ok(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: QueueFeatures = QueueFeatures { netem: true, tbf: true, nft_loss: true };
    const NO_NETEM: QueueFeatures = QueueFeatures { netem: false, tbf: true, nft_loss: true };

    #[test]
    fn absurd_values_are_refused_by_name() {
        let bad = [
            (Conditions { rate_bps: Some(0), ..Default::default() }, "rate 0"),
            (Conditions { loss_percent: Some(200.0), ..Default::default() }, "loss 200%"),
            (Conditions { loss_percent: Some(-1.0), ..Default::default() }, "loss -1%"),
            (Conditions { jitter_us: Some(5), ..Default::default() }, "needs a delay"),
            (Conditions { delay_us: Some(10), jitter_us: Some(50), ..Default::default() }, "larger than the delay"),
            (Conditions { queue_packets: Some(0), ..Default::default() }, "queue of 0"),
        ];
        for (c, expected) in bad {
            let why = c.check().unwrap_err();
            assert!(why.contains(expected), "{why}");
        }
        assert!(parse_mac("01:00:5e:00:00:01").unwrap_err().contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00").is_err() && parse_mac("02:00:00:00:00").is_err() && parse_mac("zz:00:00:00:00:01").is_err());
        assert_eq!(parse_mac("02:AA:00:00:00:01").unwrap(), [2, 0xaa, 0, 0, 0, 1]);
    }

    #[test]
    fn without_netem_loss_is_an_nft_rule_and_delay_is_unsupported() {
        let loss = Conditions { loss_percent: Some(20.0), ..Default::default() };
        assert_eq!(carry(&loss, NO_NETEM).unwrap(), Carried { queue: None, nft_loss: Some(20.0) });
        assert_eq!(carry(&loss, ALL).unwrap().nft_loss, None, "netem does loss where it exists");
        let delay = Conditions { delay_us: Some(10_000), ..Default::default() };
        assert!(carry(&delay, NO_NETEM).unwrap_err().starts_with("delay needs the kernel's sch_netem"));
        let rate = Conditions { rate_bps: Some(20_000_000), loss_percent: Some(5.0), ..Default::default() };
        let carried = carry(&rate, NO_NETEM).unwrap();
        assert_eq!((carried.queue.unwrap().rate_bps, carried.queue.unwrap().netem, carried.nft_loss), (Some(20_000_000), None, Some(5.0)));
    }
}
