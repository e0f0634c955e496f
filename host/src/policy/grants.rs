//! What the user granted a lab with `--allow`: deny by default, one grant
//! at a time.

use ipnet::IpNet;

use super::names::{parse_prefix, quoted};
use serde::{Deserialize, Serialize};

/// How the lab's host is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The lab has a namespace of its own, named after it, as its host.
    Contained,
    /// The lab's host is the machine's namespace (the `host-net` grant).
    HostNet,
}

/// A capability beyond the contained default, given with `--allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// The lab's host is the machine's own network namespace.
    HostNet,
    /// A contained lab may connect to the machine's network (NATed).
    Uplink,
    /// Programs of the machine may run inside the lab's nodes.
    Exec,
}

impl Grant {
    pub const ALL: [Grant; 3] = [Grant::HostNet, Grant::Uplink, Grant::Exec];

    /// The grant as `--allow` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Grant::HostNet => "host-net",
            Grant::Uplink => "uplink",
            Grant::Exec => "exec",
        }
    }

    /// How `--allow` takes it.
    pub fn usage(self) -> &'static str {
        match self {
            Grant::HostNet => "host-net[=PREFIX,...]",
            Grant::Uplink => "uplink",
            Grant::Exec => "exec[=PROGRAM,...]",
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
            Grant::Uplink => "the script may connect a contained lab to the machine's network through user-mode NAT (the uplink interface)",
            Grant::Exec => {
                "the script may run programs of the machine inside the lab's nodes (the process interface), any program or \
                 only the PROGRAMs named, as an unprivileged user (--exec-user) that cannot gain privileges"
            }
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
    /// Programs may run in the lab's nodes: `Some(empty)` any program,
    /// else only these (names or absolute paths).
    pub exec: Option<Vec<String>>,
    /// Who those programs run as (uid, gid): `nobody` unless
    /// `--exec-user` says otherwise.
    pub exec_user: Option<(u32, u32)>,
    /// Why this run may not write its nodes' files, if it may not
    /// ([`super::node_files::refusal`], settled where the run knows which
    /// side of the boundary it is on).
    pub node_files_refused: Option<String>,
}

impl Grants {
    /// Parse the values of `--allow` (and `--allow-all`).
    pub fn parse(values: &[String], all: bool) -> anyhow::Result<Grants> {
        let mut grants = Grants::default();
        if all {
            grants.host_net = Some(default_host_prefixes());
            grants.uplink = true;
            grants.exec = Some(Vec::new());
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
                ("exec", None) => grants.exec = Some(Vec::new()),
                ("exec", Some(list)) => {
                    let programs: Vec<String> = list.split(',').map(str::to_string).collect();
                    if let Some(bad) = programs.iter().find(|p| p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control())) {
                        anyhow::bail!("--allow exec: {} is not a program name", quoted(bad));
                    }
                    grants.exec = Some(programs);
                }
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
            Grant::Exec => self.exec.is_some(),
        }
    }

    /// Where the lab's host is: a namespace of its own unless `host-net`.
    pub fn mode(&self) -> Mode {
        if self.host_net.is_some() { Mode::HostNet } else { Mode::Contained }
    }

    /// Whether root runs this lab behind the privilege boundary
    /// ([`crate::boundary`]), its programs running as `exec_uid`: every
    /// contained lab but one whose uplink needs the machine's
    /// `/dev/net/tun`, or whose programs run as the machine's root.
    pub fn behind_boundary(&self, exec_uid: u32) -> bool {
        self.host_net.is_none() && !self.uplink && exec_uid != 0
    }

    /// Who programs run as, if programs may run at all.
    pub fn exec_as(&self) -> Option<(u32, u32)> {
        self.exec.as_ref().map(|_| self.exec_user.unwrap_or((65534, 65534)))
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
        match &self.exec {
            Some(programs) if programs.is_empty() => names.push("exec".to_string()),
            Some(programs) => names.push(format!("exec={}", programs.join(","))),
            None => {}
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
        let g = Grants::parse(&["exec=iperf3,/usr/bin/ping".into()], false).unwrap();
        assert_eq!(g.names(), ["exec=iperf3,/usr/bin/ping"]);
        assert!(Grants::parse(&["exec=a b".into()], false).is_err());
    }
}
