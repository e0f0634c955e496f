//! NAT with nftables: typed JSON from the `nftables` crate, applied
//! atomically by the `nft` binary (as Podman's netavark does), from a thread
//! inside the target namespace so that `nft` inherits it.
//!
//! A lab's table proves it is the lab's: it is created (`create` fails if
//! the name is taken) together with an empty marker chain named after a
//! nonce the journal recorded first. Every later change to the table, and
//! its deletion, starts with deleting that marker chain (and, for a change,
//! adding it back) in the same transaction: if the table is not the one the
//! lab made, the marker is missing and nft refuses the whole batch.

use std::borrow::Cow;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::schema::NfCmd;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::netns;

/// Family of every nsw table: one table serves IPv4 and IPv6.
pub const FAMILY: NfFamily = NfFamily::INet;
pub const FAMILY_NAME: &str = "inet";
const CHAIN: &str = "postrouting";
/// `srcnat`, the priority iptables' nat POSTROUTING uses.
const SRCNAT: i32 = 100;

fn table(name: &str) -> Table<'static> {
    Table { family: FAMILY, name: Cow::Owned(name.to_string()), handle: None }
}

/// The marker chain that proves a table is the lab's (see above).
fn owner_chain(table_name: &str, nonce: u64) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: FAMILY,
        table: Cow::Owned(table_name.to_string()),
        name: Cow::Owned(format!("nsw-owner-{nonce:016x}")),
        ..Default::default()
    })
}

/// Create the lab's table with its marker chain; fails if the name is taken.
pub fn create_table_batch(table_name: &str, nonce: u64) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.add_cmd(NfCmd::Create(NfListObject::Table(table(table_name))));
    batch.add(owner_chain(table_name, nonce));
    batch.to_nftables()
}

/// Start a batch that changes the lab's table: it fails unless the table
/// still carries the lab's marker.
fn owned_batch(table_name: &str, nonce: u64) -> Batch<'static> {
    let mut batch = Batch::new();
    batch.delete(owner_chain(table_name, nonce));
    batch.add(owner_chain(table_name, nonce));
    batch
}

/// The postrouting NAT chain (adding an existing one is a no-op in nft),
/// then `ip[6] saddr SOURCE ip[6] daddr != SOURCE masquerade`, in the lab's
/// table `table_name`.
pub fn masquerade_batch(table_name: &str, nonce: u64, source: IpNet) -> nftables::schema::Nftables<'static> {
    let mut batch = owned_batch(table_name, nonce);
    batch.add(NfListObject::Chain(Chain {
        family: FAMILY,
        table: Cow::Owned(table_name.to_string()),
        name: Cow::Borrowed(CHAIN),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        prio: Some(SRCNAT),
        policy: Some(NfChainPolicy::Accept),
        ..Default::default()
    }));
    let protocol = if source.addr().is_ipv4() { "ip" } else { "ip6" };
    let address_in_source = |field: &'static str, op: Operator| {
        Statement::Match(Match {
            left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
                protocol: Cow::Borrowed(protocol),
                field: Cow::Borrowed(field),
            }))),
            right: Expression::Named(NamedExpression::Prefix(Prefix {
                addr: Box::new(Expression::String(Cow::Owned(source.network().to_string()))),
                len: source.prefix_len() as u32,
            })),
            op,
        })
    };
    // Traffic that stays inside the prefix is never rewritten: where
    // br_netfilter is loaded, bridged traffic between two nodes passes this
    // hook too, and would otherwise reach its peer from the bridge's address.
    let matches = vec![address_in_source("saddr", Operator::EQ), address_in_source("daddr", Operator::NEQ), Statement::Masquerade(None)];
    batch.add(NfListObject::Rule(Rule {
        family: FAMILY,
        table: Cow::Owned(table_name.to_string()),
        chain: Cow::Borrowed(CHAIN),
        expr: Cow::Owned(matches),
        ..Default::default()
    }));
    batch.to_nftables()
}

/// Delete the lab's table, if it still carries the lab's marker.
pub fn delete_owned_table_batch(table_name: &str, nonce: u64) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.delete(owner_chain(table_name, nonce));
    batch.delete(NfListObject::Table(table(table_name)));
    batch.to_nftables()
}

/// Delete a table by name (journals of older nsw versions, which recorded
/// no marker).
pub fn delete_table_batch(table_name: &str) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.delete(NfListObject::Table(table(table_name)));
    batch.to_nftables()
}

/// Whether the calling thread's namespace has a table `inet NAME`.
pub fn table_exists_here(table_name: &str) -> io::Result<bool> {
    let args = ["list", "table", FAMILY_NAME, table_name];
    match nftables::helper::get_current_ruleset_raw(nftables::helper::DEFAULT_NFT, args) {
        Ok(_) => Ok(true),
        Err(nftables::helper::NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(false),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// Apply a batch inside namespace `ns`.
pub async fn apply(ns: Arc<OwnedFd>, batch: nftables::schema::Nftables<'static>) -> io::Result<()> {
    netns::run_in_async(ns, move || apply_here(&batch)).await
}

/// Apply a batch in the calling thread's namespace: `nft -j -f -`, one
/// transaction. (Run here rather than with the crate's `apply_ruleset`,
/// which lets nft's error text through to nsw's stderr instead of
/// returning it.)
pub fn apply_here(batch: &nftables::schema::Nftables<'_>) -> io::Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let payload = serde_json::to_vec(batch).map_err(io::Error::other)?;
    let mut child = match Command::new("nft").args(["-j", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the nft program is not installed (apt-get install nftables)"));
        }
        Err(e) => return Err(e),
    };
    let written = child.stdin.take().expect("piped").write_all(&payload);
    let out = child.wait_with_output()?;
    written?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Keep the kernel's answer as an errno where nft names it, so that a
    // taken or missing name reads as `exists` or `not-found`.
    if stderr.contains("File exists") {
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    if stderr.contains("No such file or directory") {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let why: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Err(io::Error::other(format!("nft: {}", why.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_json() {
        let json = serde_json::to_string(&masquerade_batch("nsw-pbj", 7, "10.0.0.0/16".parse().unwrap())).unwrap();
        // The ownership proof comes first.
        assert!(json.starts_with(r#"{"nftables":[{"delete":{"chain":{"family":"inet","table":"nsw-pbj","name":"nsw-owner-0000000000000007"}}}"#), "{json}");
        assert!(json.contains(r#""family":"inet","table":"nsw-pbj","chain":"postrouting""#), "{json}");
        assert!(json.contains(r#""hook":"postrouting""#), "{json}");
        assert!(json.contains(r#""protocol":"ip","field":"saddr""#), "{json}");
        assert!(json.contains(r#""addr":"10.0.0.0","len":16"#), "{json}");
        assert!(json.contains(r#""masquerade""#), "{json}");
        // Not inside the prefix.
        assert!(json.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":16}},"op":"!="}}"#), "{json}");
        let v6 = serde_json::to_string(&masquerade_batch("t", 1, "fd00::/64".parse().unwrap())).unwrap();
        assert!(v6.contains(r#""protocol":"ip6""#), "{v6}");
    }
}
