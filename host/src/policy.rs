//! The policy: the one place that decides what a lab may do. Backends only
//! do; they never decide. This module holds the name rules, the grants a
//! user gave on the command line and the per-lab limits.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::{LabError, LabResult};

/// Longest lab or node name. Kernel netns names are `<lab>-<node>`.
pub const MAX_NAME_LEN: usize = 32;
/// Interface names are at most IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest string the host will even look at from a guest.
pub const MAX_GUEST_STRING: usize = 4096;

/// Check a lab name (`pbj`). It names the lab's own namespace, the prefix of
/// its nodes' namespaces, its journal file and its nftables table.
pub fn check_lab_name(name: &str) -> LabResult<()> {
    check_safe_name("lab name", name)
}

/// Check a node name (`jelly`); the namespace becomes `<lab>-<node>`.
pub fn check_node_name(name: &str) -> LabResult<()> {
    check_safe_name("netns name", name)?;
    if name == "host" {
        return Err(LabError::invalid("netns name \"host\" is reserved for the lab's host"));
    }
    Ok(())
}

/// A name that is also a safe file name under /run: 1-32 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit (so never `.`, `..`
/// or an option-looking `-x`).
fn check_safe_name(what: &str, name: &str) -> LabResult<()> {
    let shown = shown(name);
    if name.is_empty() {
        return Err(LabError::invalid(format!("{what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(LabError::invalid(format!(
            "{what} {shown} is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(LabError::invalid(format!(
            "{what} {shown} contains {}; use letters, digits, '_', '.' and '-'",
            describe_char(bad)
        )));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(LabError::invalid(format!("{what} {shown} must start with a letter or digit")));
    }
    Ok(())
}

/// Check an interface name the way the kernel's `dev_valid_name` does, and
/// a little stricter: printable ASCII only, no `%` (the kernel's `%d`
/// template character).
pub fn check_ifname(name: &str) -> LabResult<()> {
    let shown = shown(name);
    if name.is_empty() {
        return Err(LabError::invalid("interface name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(LabError::invalid(format!(
            "interface name {shown} is {} bytes long; the kernel's limit is {MAX_IFNAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(LabError::invalid(format!("interface name {shown} is not allowed")));
    }
    if let Some(bad) = name.chars().find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '%')) {
        return Err(LabError::invalid(format!(
            "interface name {shown} contains {}",
            describe_char(bad)
        )));
    }
    Ok(())
}

/// An address with its prefix length: `10.0.0.10/16`.
pub fn parse_cidr(text: &str) -> LabResult<IpNet> {
    bounded(text)?;
    if !text.contains('/') {
        return Err(LabError::invalid(format!(
            "address {} has no prefix length (write e.g. 10.0.0.10/16)",
            shown(text)
        )));
    }
    IpNet::from_str(text).map_err(|_| LabError::invalid(format!("address {} is not an IP address/prefix", shown(text))))
}

/// A network prefix without host bits: `10.0.0.0/16`.
pub fn parse_prefix(text: &str) -> LabResult<IpNet> {
    let net = parse_cidr(text)?;
    if net.trunc() != net {
        return Err(LabError::invalid(format!(
            "prefix {} has host bits set; did you mean {}?",
            shown(text),
            net.trunc()
        )));
    }
    Ok(net)
}

/// A plain address: `10.0.0.1`, `fd00::1`.
pub fn parse_ip(text: &str) -> LabResult<IpAddr> {
    bounded(text)?;
    IpAddr::from_str(text).map_err(|_| LabError::invalid(format!("{} is not an IP address", shown(text))))
}

/// A route destination: a prefix, or `default` (for the gateway's family).
pub fn parse_destination(text: &str, via: IpAddr) -> LabResult<IpNet> {
    let dest = if text == "default" {
        match via {
            IpAddr::V4(_) => IpNet::from_str("0.0.0.0/0").expect("valid literal"),
            IpAddr::V6(_) => IpNet::from_str("::/0").expect("valid literal"),
        }
    } else {
        parse_prefix(text)?
    };
    if dest.addr().is_ipv4() != via.is_ipv4() {
        return Err(LabError::invalid(format!(
            "route to {} via {via} mixes IPv4 and IPv6",
            shown(text)
        )));
    }
    Ok(dest)
}

fn bounded(text: &str) -> LabResult<()> {
    if text.len() > 64 {
        return Err(LabError::invalid(format!("address {} is too long to be one", shown(text))));
    }
    Ok(())
}

/// A guest string made safe to print: quoted, escaped, and cut short.
pub fn shown(text: &str) -> String {
    const SHOW: usize = 40;
    let mut out: String = text.chars().take(SHOW).collect::<String>().escape_debug().collect();
    if text.chars().count() > SHOW {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

fn describe_char(c: char) -> String {
    if c.is_whitespace() {
        "whitespace".into()
    } else if c.is_control() {
        format!("control character {:?}", c)
    } else {
        format!("{c:?}")
    }
}

/// The nsw version of the WIT package this host implements.
pub const WIT_PACKAGE: &str = "nsw:lab@0.1.0";

/// One WIT interface: one capability a script may ask for by importing it.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    pub interface: &'static str,
    /// The `--allow` grant it needs; `None`: granted to every lab, because
    /// it acts only inside the lab (contained) or inside the host the user
    /// chose with `--allow host-net`.
    pub grant: Option<&'static str>,
    pub what: &'static str,
}

pub const CAPABILITIES: &[Capability] = &[
    Capability { interface: "types", grant: None, what: "handle types and errors (no capability)" },
    Capability { interface: "topology", grant: None, what: "namespaces, veth pairs and bridges of the lab" },
    Capability { interface: "address", grant: None, what: "addresses on the lab's links" },
    Capability { interface: "route", grant: None, what: "routes and forwarding in the lab" },
    Capability { interface: "nat", grant: None, what: "masquerade in the lab's own nftables table" },
    Capability { interface: "probe", grant: None, what: "pings from the lab's namespaces" },
    Capability { interface: "uplink", grant: Some("uplink"), what: "a NATed way out through the machine" },
];

/// WASI interfaces nsw links, by name prefix (most specific first), and
/// what a guest gets from each.
pub const WASI: &[(&str, &str)] = &[
    ("wasi:cli/environment", "no environment variables, no arguments"),
    ("wasi:cli/stdin", "an empty stdin"),
    ("wasi:cli/stdout", "shown to you, control characters removed, size capped"),
    ("wasi:cli/stderr", "shown to you, control characters removed, size capped"),
    ("wasi:cli/terminal-", "no terminal"),
    ("wasi:cli/", "exit"),
    ("wasi:io/", "streams (stdout and stderr)"),
    ("wasi:clocks/", "the time"),
    ("wasi:random/", "random numbers"),
    ("wasi:filesystem/", "nothing: no directory is ever shared"),
    ("wasi:sockets/", "nothing: every address is refused"),
];

/// How nsw answers one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportVerdict {
    /// A capability the lab has.
    Granted(Capability),
    /// A capability that needs a grant the user did not give.
    NeedsGrant(Capability),
    /// A WASI interface nsw links (with what it gives).
    Wasi(&'static str),
    /// Not something nsw provides.
    Unknown,
}

impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        self.interface == other.interface
    }
}
impl Eq for Capability {}

/// Judge one import name (`nsw:lab/topology@0.1.0`) against the grants.
pub fn judge_import(name: &str, grants: &Grants) -> ImportVerdict {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    if let Some(interface) = path.strip_prefix("nsw:lab/") {
        let ours = WIT_PACKAGE.split_once('@').map(|(_, v)| v);
        let Some(cap) = CAPABILITIES.iter().find(|c| c.interface == interface) else { return ImportVerdict::Unknown };
        if version.is_some() && version != ours {
            return ImportVerdict::Unknown;
        }
        return match cap.grant {
            Some(grant) if !grants.has(grant) => ImportVerdict::NeedsGrant(*cap),
            _ => ImportVerdict::Granted(*cap),
        };
    }
    match WASI.iter().find(|(prefix, _)| path.starts_with(prefix)) {
        Some((_, what)) if version.is_none_or(|v| v.starts_with("0.2.")) => ImportVerdict::Wasi(what),
        _ => ImportVerdict::Unknown,
    }
}

/// Refuse a component whose imports are not all granted and provided,
/// with a message that says what to do.
pub fn check_imports<'a>(imports: impl IntoIterator<Item = &'a str>, grants: &Grants) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for name in imports {
        match judge_import(name, grants) {
            ImportVerdict::Granted(_) | ImportVerdict::Wasi(_) => {}
            ImportVerdict::NeedsGrant(cap) => problems.push(format!(
                "it imports {name} ({}), which was not granted: add --allow {}",
                cap.what,
                cap.grant.unwrap_or_default()
            )),
            ImportVerdict::Unknown => {
                problems.push(format!("it imports {}, which nsw does not provide (nsw provides {WIT_PACKAGE} and WASI 0.2)", shown(name)))
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { anyhow::bail!("{}", problems.join("; ")) }
}

/// The host-side prefixes `--allow host-net` grants when it names none:
/// the private ranges. A lab never puts a public address on the machine
/// unless the user names it.
pub const DEFAULT_HOST_PREFIXES: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// What the user granted a lab with `--allow`. Everything not granted is
/// denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The guest's host is the machine's own network namespace; host-side
    /// addresses, routes and NAT must lie inside these prefixes.
    pub host_net: Option<Vec<IpNet>>,
    /// A contained lab may connect to the machine (the `uplink` interface).
    pub uplink: bool,
}

/// Every grant `--allow` takes, with what it means.
pub const GRANTS: &[(&str, &str)] = &[
    (
        "host-net[=PREFIX,...]",
        "the lab's host is this machine's network namespace (as in the tutorial) instead of a namespace of \
         its own; host-side addresses, routes and NAT must lie inside PREFIXes (default: 10.0.0.0/8, \
         172.16.0.0/12, 192.168.0.0/16, fc00::/7) and never overlap the machine's own routes",
    ),
    ("uplink", "the script may connect a contained lab to the machine's network (NATed), with the uplink interface"),
];

impl Grants {
    /// Parse the values of `--allow` (and `--allow-all`).
    pub fn parse(values: &[String], all: bool) -> anyhow::Result<Grants> {
        let mut grants = Grants::default();
        if all {
            grants.host_net = Some(default_host_prefixes());
            grants.uplink = true;
        }
        for value in values {
            let (name, scope) = match value.split_once('=') {
                Some((name, scope)) => (name, Some(scope)),
                None => (value.as_str(), None),
            };
            match (name, scope) {
                ("host-net", None) => grants.host_net = Some(default_host_prefixes()),
                ("host-net", Some(list)) => {
                    let mut prefixes = Vec::new();
                    for text in list.split(',') {
                        let prefix = parse_prefix(text).map_err(|e| anyhow::anyhow!("--allow host-net: {}", e.message()))?;
                        if prefix.prefix_len() == 0 {
                            anyhow::bail!("--allow host-net: {prefix} is every address; name the prefixes the lab may use");
                        }
                        prefixes.push(prefix);
                    }
                    grants.host_net = Some(prefixes);
                }
                ("uplink", None) => grants.uplink = true,
                _ => {
                    let known: Vec<&str> = GRANTS.iter().map(|(name, _)| *name).collect();
                    anyhow::bail!("unknown grant {}; the grants are: {}", shown(value), known.join(", "));
                }
            }
        }
        Ok(grants)
    }

    pub fn has(&self, grant: &str) -> bool {
        match grant {
            "host-net" => self.host_net.is_some(),
            "uplink" => self.uplink,
            _ => false,
        }
    }

    /// The grants as `--allow` would spell them, for display and the journal.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(prefixes) = &self.host_net {
            let list: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
            names.push(format!("host-net={}", list.join(",")));
        }
        if self.uplink {
            names.push("uplink".to_string());
        }
        names
    }
}

fn default_host_prefixes() -> Vec<IpNet> {
    DEFAULT_HOST_PREFIXES.iter().map(|p| p.parse().expect("valid literal")).collect()
}

/// Why a host-side prefix (an address's subnet, a route's destination, a
/// NAT source) may not be used in host-net mode, if it may not: it must
/// lie inside a granted prefix and overlap none of the machine's routes.
pub fn check_host_prefix(what: &str, prefix: IpNet, granted: &[IpNet], machine_routes: &[IpNet]) -> LabResult<()> {
    let prefix = prefix.trunc();
    if !granted.iter().any(|g| g.contains(&prefix)) {
        let list: Vec<String> = granted.iter().map(|p| p.to_string()).collect();
        return Err(LabError::denied(format!(
            "{what}: {prefix} is outside the host prefixes this lab was granted ({}); grant it with --allow host-net={prefix}",
            list.join(", ")
        )));
    }
    if let Some(route) = machine_routes.iter().find(|r| r.prefix_len() > 0 && (r.contains(&prefix) || prefix.contains(*r))) {
        return Err(LabError::denied(format!(
            "{what}: {prefix} overlaps the machine's own route to {route}; a lab never shadows the machine's networks"
        )));
    }
    Ok(())
}

/// Per-lab limits: what a single lab may create and use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub netns: usize,
    pub links: usize,
    /// Bridges count twice: besides being links, each costs the kernel an
    /// RCU grace period (about 16 ms here) to delete, with the rtnl lock
    /// held, so thousands would stall the machine's networking for minutes.
    pub bridges: usize,
    pub addresses: usize,
    pub routes: usize,
    /// Echo requests over the whole run.
    pub pings: u64,
    /// Echo requests per second.
    pub ping_rate: u32,
    /// Longest string a guest may pass to a host call.
    pub string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { netns: 1024, links: 4096, bridges: 256, addresses: 4096, routes: 4096, pings: 10_000, ping_rate: 1000, string_bytes: MAX_GUEST_STRING }
    }
}

/// A quota error that names the limit and the flag that raises it.
pub fn quota_error(what: &str, limit: impl std::fmt::Display, flag: &str) -> LabError {
    LabError::quota(format!("{what}: the limit is {limit} (raise it with {flag})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn kind<T: std::fmt::Debug>(r: LabResult<T>) -> ErrorKind {
        r.unwrap_err().kind().unwrap()
    }

    #[test]
    fn node_names() {
        assert!(check_node_name("pb").is_ok());
        assert!(check_node_name("r1.core-2_a").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "-x", ".hidden", "a b", "a\0b", "host", &"x".repeat(33)] {
            assert_eq!(kind(check_node_name(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        let msg = check_node_name("a/b").unwrap_err().to_string();
        assert!(msg.contains("\"a/b\"") && msg.contains("'/'"), "{msg}");
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("bread-pb-veth").is_ok());
        assert!(check_ifname("x".repeat(15).as_str()).is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "eth%d", "a\tb", "é", &"x".repeat(16)] {
            assert_eq!(kind(check_ifname(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        let msg = check_ifname("veth-much-too-long").unwrap_err().to_string();
        assert!(msg.contains("18 bytes") && msg.contains("15"), "{msg}");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_cidr("10.0.0.10/16").unwrap().to_string(), "10.0.0.10/16");
        assert_eq!(parse_cidr("fd00::10/64").unwrap().to_string(), "fd00::10/64");
        for bad in ["10.0.0.10", "10.0.0.300/16", "10.0.0.1/33", "x/8", "", "10.0.0.1/16 "] {
            assert_eq!(kind(parse_cidr(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        assert!(parse_prefix("10.0.0.0/16").is_ok());
        let msg = parse_prefix("10.0.0.5/16").unwrap_err().to_string();
        assert!(msg.contains("10.0.0.0/16"), "{msg}");
    }

    #[test]
    fn destinations() {
        let via = parse_ip("10.0.0.1").unwrap();
        assert_eq!(parse_destination("default", via).unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(parse_destination("default", parse_ip("fd00::1").unwrap()).unwrap().to_string(), "::/0");
        assert_eq!(kind(parse_destination("fd00::/64", via)), ErrorKind::Invalid);
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        assert!(shown(&"y".repeat(100)).ends_with("...\""));
    }

    #[test]
    fn grants() {
        let g = Grants::parse(&["host-net".into()], false).unwrap();
        assert_eq!(g.host_net.as_ref().unwrap().len(), 4);
        assert!(!g.uplink);
        let g = Grants::parse(&["host-net=10.0.0.0/16,fd00::/64".into(), "uplink".into()], false).unwrap();
        assert_eq!(g.names(), ["host-net=10.0.0.0/16,fd00::/64", "uplink"]);
        assert_eq!(Grants::parse(&[], false).unwrap(), Grants::default());
        assert!(Grants::parse(&[], true).unwrap().uplink);
        let err = Grants::parse(&["root".into()], false).unwrap_err().to_string();
        assert!(err.contains("host-net") && err.contains("uplink"), "{err}");
        assert!(Grants::parse(&["host-net=0.0.0.0/0".into()], false).is_err());
        assert!(Grants::parse(&["host-net=10.0.0.1/8".into()], false).is_err());
    }

    #[test]
    fn imports_are_requests() {
        let none = Grants::default();
        assert!(matches!(judge_import("nsw:lab/topology@0.1.0", &none), ImportVerdict::Granted(_)));
        assert!(matches!(judge_import("nsw:lab/uplink@0.1.0", &none), ImportVerdict::NeedsGrant(_)));
        let uplink = Grants { uplink: true, ..Grants::default() };
        assert!(matches!(judge_import("nsw:lab/uplink@0.1.0", &uplink), ImportVerdict::Granted(_)));
        assert!(matches!(judge_import("wasi:cli/stdout@0.2.6", &none), ImportVerdict::Wasi(_)));
        assert_eq!(judge_import("wasi:http/outgoing-handler@0.2.6", &none), ImportVerdict::Unknown);
        assert_eq!(judge_import("nsw:lab/exec@0.1.0", &none), ImportVerdict::Unknown);
        assert_eq!(judge_import("nsw:lab/topology@0.2.0", &none), ImportVerdict::Unknown);
        let err = check_imports(["nsw:lab/topology@0.1.0", "nsw:lab/uplink@0.1.0"], &none).unwrap_err().to_string();
        assert!(err.contains("--allow uplink"), "{err}");
        assert!(check_imports(["nsw:lab/topology@0.1.0", "wasi:io/streams@0.2.0"], &none).is_ok());
    }

    #[test]
    fn host_prefixes() {
        let granted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let routes: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "10.9.0.0/16".parse().unwrap()];
        assert!(check_host_prefix("x", "10.0.0.1/16".parse().unwrap(), &granted, &routes).is_ok());
        let k = |r: LabResult<()>| r.unwrap_err().kind().unwrap();
        assert_eq!(k(check_host_prefix("x", "192.168.1.0/24".parse().unwrap(), &granted, &routes)), ErrorKind::Denied);
        assert_eq!(k(check_host_prefix("x", "10.9.1.0/24".parse().unwrap(), &granted, &routes)), ErrorKind::Denied);
        assert_eq!(k(check_host_prefix("x", "10.0.0.0/8".parse().unwrap(), &granted, &routes)), ErrorKind::Denied);
    }
}
