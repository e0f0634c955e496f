//! The policy: what a lab may do is decided here, from facts the lab and
//! the backends bring (backends only do; the lab carries a verdict out). Name and address rules ([`names`]), the grants a
//! user gave ([`grants`]), which imports a component may have
//! ([`imports`]), the per-lab limits ([`quota`]) and what may land in the
//! machine's own namespace ([`host_net`]), what of a node's files a script
//! reaches ([`node_files`]), what a bridge may be set to ([`bridges`]), a route of several gateways
//! ([`routes`]).

pub mod bridges;
pub mod conditions;
pub mod grants;
pub mod host_net;
pub mod imports;
pub mod names;
pub mod node_files;
pub mod ownership;
pub mod programs;
pub mod limits;
pub mod quota;
pub mod routes;

pub use grants::{Grant, Grants, Mode};
pub use imports::{CAPABILITIES, Capability, ImportVerdict, WASI, WIT_PACKAGE, check_imports, judge_import};
pub use names::{MAX_IFNAME_LEN, MAX_NAME_LEN, check_ifname, check_lab_name, check_node_name, lab_name_from, parse_cidr, parse_destination, parse_ip, parse_prefix, quoted};
pub use limits::{LIMITS, Limit, Limits};
pub use quota::{Quota, Quotas, check_strings, quota_error};

/// The help text of `nsw run` about grants and quotas: one place says it.
pub fn run_help() -> String {
    let mut text = String::from("Grants (deny by default; a lab always has its own namespaces to build in):\n");
    for grant in Grant::ALL {
        text += &format!("  --allow {}\n      {}\n", grant.usage(), grant.help());
    }
    text += "  --allow-all\n      every grant, for scripts you wrote yourself\n\n";
    text += "A script that imports a capability it was not granted is refused before it runs.\n";
    text += &format!("Limits (per lab, with their flags): {}.", limits::summary());
    text
}
