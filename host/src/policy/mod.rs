//! The policy: the one place that decides what a lab may do. Backends only
//! do; they never decide. Name and address rules ([`names`]), the grants a
//! user gave ([`grants`]), which imports a component may have
//! ([`imports`]), the per-lab limits ([`quota`]) and what may land in the
//! machine's own namespace ([`host_net`]).

pub mod grants;
pub mod host_net;
pub mod imports;
pub mod names;
pub mod ownership;
pub mod quota;

pub use grants::{Grant, Grants, Mode};
pub use imports::{CAPABILITIES, Capability, ImportVerdict, WASI, WIT_PACKAGE, check_imports, judge_import};
pub use names::{MAX_IFNAME_LEN, MAX_NAME_LEN, check_ifname, check_lab_name, check_node_name, lab_name_from, parse_cidr, parse_destination, parse_ip, parse_prefix, quoted};
pub use quota::{Limits, Quota, Quotas, check_strings, quota_error};

/// The help text of `nsw run` about grants and quotas: one place says it.
pub fn run_help() -> String {
    let mut text = String::from("Grants (deny by default; a lab always has its own namespaces to build in):\n");
    for grant in Grant::ALL {
        text += &format!("  --allow {}\n      {}\n", grant.usage(), grant.help());
    }
    text += "  --allow-all\n      every grant, for scripts you wrote yourself\n\n";
    text += "A script that imports a capability it was not granted is refused before it runs.\n";
    let l = Limits::default();
    text += &format!(
        "Quotas (per lab, with their flags): {} namespaces (--max-netns), {} links (--max-links), of them {} bridges \
         (--max-bridges), {} addresses (--max-addresses), {} routes (--max-routes), {} echo requests (--max-pings) at {} \
         per second (--ping-rate), 60 s (--timeout), 64 MiB of memory (--memory), 1024 KiB of output (--max-output), \
         {}-byte strings (--max-string), {} nftables rules: masquerades, filter rules, port forwards (--max-rules), {} failed calls (--max-failures), \
         a {} KiB journal (--max-journal).",
        l.netns, l.links, l.bridges, l.addresses, l.routes, l.pings, l.ping_rate, l.string_bytes, l.rules, l.failures, l.journal_bytes / 1024
    );
    text
}
