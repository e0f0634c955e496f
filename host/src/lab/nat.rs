//! `nat`: masquerade, in an nftables table of the lab's own.

use super::{Lab, random_u64};
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
        if self.nat_rules.contains(&(ns, source)) {
            return Err(LabError::exists(format!("{what}: the lab masquerades {source} there already")));
        }
        self.quotas.nat_rules.check(1, &what)?;
        self.alive(ns).await?;
        let nonce = self.own_nft_table(ns, &what).await?;
        let table = self.nat_table();
        // Rules go with their table: they need no journal line of their own.
        self.backend.masquerade(ns, &table, nonce, source).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                LabError::not_found(format!(
                    "{what}: the lab's table {NFT_FAMILY} {table} is gone from {} or is not the lab's any more (its marker is missing)",
                    self.describe_ns(ns)
                ))
            } else {
                LabError::os(&what, &e)
            }
        })?;
        self.nat_rules.insert((ns, source));
        self.quotas.nat_rules.take(1, "")
    }

    /// The lab's table in `ns`, created (with its marker) on first use;
    /// returns the marker's nonce. A table of that name that is not the
    /// lab's is never used, nor touched.
    async fn own_nft_table(&mut self, ns: NsId, what: &str) -> LabResult<u64> {
        if let Some(nonce) = self.nat_tables.get(&ns) {
            return Ok(*nonce);
        }
        let table = self.nat_table();
        let nonce = random_u64();
        let object = Object::NftTable { netns: self.netns[ns].kernel.clone(), family: NFT_FAMILY.into(), name: table.clone() };
        let id = self.record_intent_as(object, Some(nonce))?;
        let outcome = self.backend.create_nft_table(ns, &table, nonce).await;
        if let Err(e) = &outcome {
            if e.raw_os_error() == Some(libc::EEXIST) {
                self.confirm(&[id], outcome, String::new).ok();
                return Err(LabError::exists(format!(
                    "{what}: {} already has an nftables table {NFT_FAMILY} {table}, which this lab did not make; \
                     nsw never adds to, nor deletes, a table that is not its own",
                    self.describe_ns(ns)
                )));
            }
        }
        self.confirm(&[id], outcome.map(|()| nonce), || what.to_string())?;
        self.nat_tables.insert(ns, nonce);
        Ok(nonce)
    }
}
