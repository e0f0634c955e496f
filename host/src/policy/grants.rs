//! What the user granted a lab with `--allow`: deny by default, one grant
//! at a time.

use ipnet::IpNet;

use super::names::{parse_prefix, quoted};
use crate::journal::Mode;

/// A capability beyond the contained default, given with `--allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// The lab's host is the machine's own network namespace.
    HostNet,
    /// A contained lab may connect to the machine's network (NATed).
    Uplink,
}

impl Grant {
    pub const ALL: [Grant; 2] = [Grant::HostNet, Grant::Uplink];

    /// The grant as `--allow` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Grant::HostNet => "host-net",
            Grant::Uplink => "uplink",
        }
    }

    /// How `--allow` takes it.
    pub fn usage(self) -> &'static str {
        match self {
            Grant::HostNet => "host-net[=PREFIX,...]",
            Grant::Uplink => "uplink",
        }
    }

    /// What it allows, in a sentence.
    pub fn help(self) -> &'static str {
        match self {
            Grant::HostNet => {
                "the lab's host is this machine's network namespace (as in the tutorial) instead of a namespace of \
                 its own; host-side addresses, routes and NAT must lie inside PREFIXes (default: 10.0.0.0/8, \
                 172.16.0.0/12, 192.168.0.0/16, fc00::/7) and never overlap the machine's own routes; the lab \
                 never touches what it did not create"
            }
            Grant::Uplink => "the script may connect a contained lab to the machine's network through a NATed veth pair (the uplink interface)",
        }
    }
}

/// The host-side prefixes `--allow host-net` grants when it names none:
/// the private ranges. A lab never puts a public address on the machine
/// unless the user names it.
pub const DEFAULT_HOST_PREFIXES: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// What the user granted a lab. Everything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The guest's host is the machine's own network namespace; host-side
    /// addresses, routes and NAT must lie inside these prefixes.
    pub host_net: Option<Vec<IpNet>>,
    /// A contained lab may connect to the machine (the `uplink` interface).
    pub uplink: bool,
}

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
                    let known: Vec<&str> = Grant::ALL.iter().map(|g| g.usage()).collect();
                    anyhow::bail!("unknown grant {}; the grants are: {}", quoted(value), known.join(", "));
                }
            }
        }
        Ok(grants)
    }

    pub fn has(&self, grant: Grant) -> bool {
        match grant {
            Grant::HostNet => self.host_net.is_some(),
            Grant::Uplink => self.uplink,
        }
    }

    /// Where the lab's host is: a namespace of its own unless `host-net`.
    pub fn mode(&self) -> Mode {
        if self.host_net.is_some() { Mode::HostNet } else { Mode::Contained }
    }

    /// The prefixes `host-net` granted (empty without it).
    pub fn host_prefixes(&self) -> &[IpNet] {
        self.host_net.as_deref().unwrap_or(&[])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants() {
        let g = Grants::parse(&["host-net".into()], false).unwrap();
        assert_eq!(g.host_net.as_ref().unwrap().len(), 4);
        assert!(!g.uplink);
        assert_eq!(g.mode(), Mode::HostNet);
        let g = Grants::parse(&["host-net=10.0.0.0/16,fd00::/64".into(), "uplink".into()], false).unwrap();
        assert_eq!(g.names(), ["host-net=10.0.0.0/16,fd00::/64", "uplink"]);
        assert_eq!(Grants::parse(&[], false).unwrap(), Grants::default());
        assert_eq!(Grants::default().mode(), Mode::Contained);
        assert!(Grants::parse(&[], true).unwrap().uplink);
        let err = Grants::parse(&["root".into()], false).unwrap_err().to_string();
        assert!(err.contains("host-net") && err.contains("uplink"), "{err}");
        assert!(Grants::parse(&["host-net=0.0.0.0/0".into()], false).is_err());
        assert!(Grants::parse(&["host-net=10.0.0.1/8".into()], false).is_err());
    }
}
