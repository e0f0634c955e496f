//! `nat`: masquerade, in an nftables table of the lab's own.

use super::Lab;
use crate::backend::NsId;
use crate::backend::rules::{TableChange, TableFamily};
use crate::error::{LabError, LabResult};
use crate::policy::{self, host_net};

impl Lab {
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
        self.quotas.rules.check(1, &what)?;
        self.alive(ns).await?;
        // Rules go with their table: they need no journal line of their own.
        self.change_table(ns, TableFamily::Inet, &what, &[TableChange::Masquerade { source }]).await?;
        self.nat_rules.insert((ns, source));
        self.forwarded(|| super::forward::LabOp::Masquerade { ns, source: source.to_string() })?;
        self.quotas.rules.take(1, "")
    }
}
