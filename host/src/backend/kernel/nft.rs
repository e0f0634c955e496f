//! NAT with nftables: typed JSON from the `nftables` crate, applied
//! atomically by the `nft` binary (as Podman's netavark does), from a thread
//! inside the target namespace so that `nft` inherits it.

use std::borrow::Cow;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ipnet::IpNet;
use nftables::batch::Batch;
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

/// The table with its postrouting NAT chain (adding existing ones is a no-op
/// in nft), then `ip[6] saddr SOURCE masquerade`.
pub fn masquerade_batch(table_name: &str, source: IpNet) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(table_name)));
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
    let matches_source = Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed("saddr"),
        }))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(source.network().to_string()))),
            len: source.prefix_len() as u32,
        })),
        op: Operator::EQ,
    });
    batch.add(NfListObject::Rule(Rule {
        family: FAMILY,
        table: Cow::Owned(table_name.to_string()),
        chain: Cow::Borrowed(CHAIN),
        expr: Cow::Owned(vec![matches_source, Statement::Masquerade(None)]),
        ..Default::default()
    }));
    batch.to_nftables()
}

pub fn delete_table_batch(table_name: &str) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.delete(NfListObject::Table(table(table_name)));
    batch.to_nftables()
}

/// Apply a batch inside namespace `ns`.
pub async fn apply(ns: Arc<OwnedFd>, batch: nftables::schema::Nftables<'static>) -> io::Result<()> {
    netns::run_in_async(ns, move || apply_here(&batch)).await
}

/// Apply a batch in the calling thread's namespace.
pub fn apply_here(batch: &nftables::schema::Nftables<'_>) -> io::Result<()> {
    nftables::helper::apply_ruleset(batch).map_err(|e| match e {
        nftables::helper::NftablesError::NftExecution { inner, .. } if inner.kind() == io::ErrorKind::NotFound => {
            io::Error::new(io::ErrorKind::NotFound, "the nft program is not installed (apt-get install nftables)")
        }
        nftables::helper::NftablesError::NftFailed { stderr, .. } => {
            io::Error::other(format!("nft: {}", stderr.trim()))
        }
        other => io::Error::other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_json() {
        let json = serde_json::to_string(&masquerade_batch("nsw-pbj", "10.0.0.0/16".parse().unwrap())).unwrap();
        assert!(json.contains(r#""family":"inet","name":"nsw-pbj""#), "{json}");
        assert!(json.contains(r#""hook":"postrouting""#), "{json}");
        assert!(json.contains(r#""protocol":"ip","field":"saddr""#), "{json}");
        assert!(json.contains(r#""addr":"10.0.0.0","len":16"#), "{json}");
        assert!(json.contains(r#""masquerade""#), "{json}");
        let v6 = serde_json::to_string(&masquerade_batch("t", "fd00::/64".parse().unwrap())).unwrap();
        assert!(v6.contains(r#""protocol":"ip6""#), "{v6}");
    }
}
