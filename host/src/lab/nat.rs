//! `nat`: masquerade, in an nftables table of the lab's own.

use ipnet::IpNet;

use super::Lab;
use crate::backend::NsId;
use crate::error::{LabError, LabResult};
use crate::journal::Object;
use crate::policy::{self, host_net};

/// Family of every nsw table: one table serves IPv4 and IPv6.
pub const NFT_FAMILY: &str = "inet";

impl Lab {
    /// The lab's own nftables table.
    pub fn nat_table(&self) -> String {
        format!("nsw-{}", self.name)
    }

    pub async fn masquerade(&mut self, ns: NsId, source: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("nat.masquerade", &[source])?;
        let source = policy::parse_prefix(source)?;
        let what = format!("masquerade {source} in {}", self.describe_ns(ns));
        host_net::check_masquerade_source(&what, source)?;
        if let Some(rules) = self.machine_rules(ns) {
            rules.check_masquerade(&what, source)?;
        }
        self.masquerade_unchecked(ns, source, what).await
    }

    /// A masquerade rule the policy has cleared (or that nsw itself adds).
    pub(super) async fn masquerade_unchecked(&mut self, ns: NsId, source: IpNet, what: String) -> LabResult<()> {
        self.alive(ns).await?;
        let table = self.nat_table();
        if !self.nat_tables.contains(&ns) {
            let id = self.record_intent(Object::NftTable { netns: self.netns[ns].kernel.clone(), family: NFT_FAMILY.into(), name: table.clone() })?;
            let outcome = self.backend.masquerade(ns, &table, source).await;
            self.confirm(&[id], outcome, || what)?;
            self.nat_tables.insert(ns);
            return Ok(());
        }
        self.backend.masquerade(ns, &table, source).await.map_err(|e| LabError::os(&what, &e))
    }
}
