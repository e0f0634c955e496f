//! The lab's own nftables tables: one per family (`inet` for NAT and
//! filtering, `netdev` for per-link loss) in each namespace that needs one,
//! all called `nsw-<lab>`. A table is created with its marker chain in the
//! same transaction as its first change, after the journal recorded it;
//! every later change proves the marker first (see the kernel's `nft`).

use super::{Lab, random_u64};
use crate::backend::NsId;
use crate::backend::rules::{LabTable, TableChange, TableFamily};
use crate::error::{LabError, LabResult};
use crate::journal::Object;

impl Lab {
    /// The name of the lab's tables.
    pub fn table_name(&self) -> String {
        crate::naming::nft_table(&self.name)
    }

    /// Make `changes` to the lab's `family` table in `ns`, creating it on
    /// first use. A table of that name that is not the lab's is never
    /// used, nor touched.
    pub(super) async fn change_table(&mut self, ns: NsId, family: TableFamily, what: &str, changes: &[TableChange]) -> LabResult<()> {
        let name = self.table_name();
        let (nonce, intent) = match self.tables.get(&(ns, family)) {
            Some(nonce) => (*nonce, None),
            None => {
                let nonce = random_u64();
                let object = Object::NftTable { netns: self.netns[ns].kernel.clone(), family, name: name.clone() };
                (nonce, Some(self.record_intent_as(object, Some(nonce))?))
            }
        };
        let table = LabTable { family, name: name.clone(), nonce, create: intent.is_some() };
        let outcome = self.backend.change_table(ns, &table, changes).await;
        let Some(id) = intent else {
            return outcome.map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOENT) {
                    LabError::not_found(format!(
                        "{what}: the lab's table {} {name} is gone from {} or is not the lab's any more (its marker is missing)",
                        family.name(),
                        self.describe_ns(ns)
                    ))
                } else {
                    LabError::os(what, &e)
                }
            });
        };
        if outcome.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EEXIST) {
            self.confirm(&[id], outcome, String::new).ok();
            return Err(LabError::exists(format!(
                "{what}: {} already has an nftables table {} {name}, which this lab did not make; \
                 nsw never adds to, nor deletes, a table that is not its own",
                self.describe_ns(ns),
                family.name()
            )));
        }
        self.confirm(&[id], outcome.map(|()| nonce), || what.to_string())?;
        self.tables.insert((ns, family), nonce);
        Ok(())
    }
}
