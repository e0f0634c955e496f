//! How a lab's kernel objects are named, from the lab's name and its
//! nodes' names: one place, so that what one module creates another finds
//! (and the broker and teardown agree on what is the lab's).

/// The node name of the lab's host (`topology.host()`): a namespace named
/// after the lab itself, or the machine's in a host-net lab.
pub const HOST: &str = "host";

/// How the journal names a lab's init, the PID 1 of the lab's PID
/// namespace (a process of its host): `down` stops it first.
pub const LAB_INIT: &str = "nsw-init";

/// The namespace of node `node` of lab `lab` (`pbj-pb`); the lab's host is
/// [`host_netns`]. A lab name has no `-`, so no two (lab, node) pairs meet
/// in one name.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The namespace of a contained lab's host: the lab's own name.
pub fn host_netns(lab: &str) -> String {
    lab.to_string()
}

/// Whether `netns` is a namespace name of lab `lab`: `LAB` (its host) or
/// `LAB-NODE`.
pub fn netns_of_lab(netns: &str, lab: &str) -> bool {
    netns.strip_prefix(lab).is_some_and(|rest| rest.is_empty() || rest.starts_with('-')) && !netns.contains('/')
}

/// Ids (uids and gids) a lab behind the privilege boundary has of its own
/// on the machine, from the first one root reserved for it.
pub const IDS_PER_LAB: u32 = 65_536;

/// The range of a lab's ids on the machine, from its first.
pub fn lab_ids(first: u32) -> std::ops::Range<u32> {
    first..first.saturating_add(IDS_PER_LAB)
}

/// The lab's own nftables tables (`inet` and `netdev`), in every
/// namespace it has one.
pub fn nft_table(lab: &str) -> String {
    format!("nsw-{lab}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_owns_its_host_and_its_nodes_names_only() {
        assert_eq!(node_netns("pbj", "pb"), "pbj-pb");
        assert!(netns_of_lab(&node_netns("pbj", "pb"), "pbj") && netns_of_lab(&host_netns("pbj"), "pbj"));
        for other in ["pbjx", "pb", "x-pbj", "pbj/../x", "pbj-a/b"] {
            assert!(!netns_of_lab(other, "pbj"), "{other}");
        }
    }
}
