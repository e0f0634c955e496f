//! `address`: addresses on the lab's links.

use super::{Lab, LinkId};
use crate::error::LabResult;
use crate::journal::Object;
use crate::policy;

impl Lab {
    pub async fn add_address(&mut self, link: LinkId, cidr: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("address.add", &[cidr])?;
        let cidr = policy::parse_cidr(cidr)?;
        self.quotas.addresses.check(1, "")?;
        let l = &self.links[link];
        let what = format!("add address {cidr} to {} in {}", l.name, self.describe_ns(l.ns));
        if let Some(rules) = self.machine_rules(l.ns) {
            rules.check_address(&what, cidr)?;
        }
        self.materialize(link).await?;
        self.alive_link(link).await?;
        let l = &self.links[link];
        let id = self.record_intent(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.confirm(&[id], outcome, || what)?;
        self.quotas.addresses.take(1, "")?;
        let ns = self.links[link].ns;
        if let Some((machine, rules)) = self.machine.as_mut() {
            if *machine == ns {
                rules.note_address(cidr);
            }
        }
        Ok(())
    }
}
