//! `address`: addresses on the lab's links.

use ipnet::IpNet;

use super::{Lab, LinkId};
use crate::error::{LabError, LabResult};
use crate::journal::Object;
use crate::policy;

impl Lab {
    pub async fn add_address(&mut self, link: LinkId, cidr: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("address.add", &[cidr])?;
        let l = &self.links[link];
        let on = format!("on {} in {}", l.name, self.describe_ns(l.ns));
        let cidr = policy::parse_cidr(cidr).map_err(|e| e.context(&on))?;
        let what = format!("add address {cidr} to {} in {}", l.name, self.describe_ns(l.ns));
        // Refused here, before the journal or the kernel hears of it: a
        // script repeating this in a loop costs nothing but its quota.
        if l.addresses.contains(&cidr) {
            return Err(LabError::exists(format!("{what}: the link has it already")));
        }
        self.quotas.addresses.check(1, "")?;
        if let Some(rules) = self.machine_rules(l.ns) {
            rules.check_address(&what, cidr)?;
        }
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.add_address_unchecked(link, cidr, what).await?;
        self.forwarded(|| super::forward::LabOp::AddAddress { link, cidr: cidr.to_string() })?;
        self.quotas.addresses.take(1, "")
    }

    /// The addresses `link` has now, as the kernel has them.
    pub async fn link_addresses(&mut self, link: LinkId) -> LabResult<Vec<IpNet>> {
        self.refuse_if_stopped()?;
        let what = format!("list the addresses of {} in {}", self.links[link].name, self.describe_ns(self.links[link].ns));
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.link_addresses(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))
    }

    /// An address the policy has cleared (or that nsw itself adds).
    pub(super) async fn add_address_unchecked(&mut self, link: LinkId, cidr: IpNet, what: String) -> LabResult<()> {
        let l = &self.links[link];
        let id = self.record_intent(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.confirm(&[id], outcome, || what)?;
        self.links[link].addresses.push(cidr);
        let ns = self.links[link].ns;
        if let Some((machine, rules)) = self.machine.as_mut() {
            if *machine == ns {
                rules.note_address(cidr);
            }
        }
        Ok(())
    }
}
