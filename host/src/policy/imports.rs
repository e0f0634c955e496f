//! Imports are requests: each WIT interface a component imports is one
//! capability it asks for, judged here before the component is
//! instantiated.

use super::grants::{Grant, Grants};
use super::names::quoted;

/// The nsw version of the WIT package this host implements.
pub const WIT_PACKAGE: &str = "nsw:lab@0.1.5";

/// The versions of the package a script may have been built against: 0.1.x
/// only adds to 0.1.0, so every earlier one runs unchanged (wasmtime links
/// an import of `@0.1.0` to the host's `@0.1.4`).
pub const WIT_VERSIONS: &[&str] = &["0.1.0", "0.1.1", "0.1.2", "0.1.3", "0.1.4", "0.1.5"];

/// One WIT interface: one capability a script may ask for by importing it.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    pub interface: &'static str,
    /// The `--allow` grant it needs; `None`: granted to every lab, because
    /// it acts only inside the lab (contained) or inside the host the user
    /// chose with `--allow host-net`.
    pub grant: Option<Grant>,
    pub what: &'static str,
}

impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        self.interface == other.interface
    }
}
impl Eq for Capability {}

pub const CAPABILITIES: &[Capability] = &[
    Capability { interface: "types", grant: None, what: "handle types and errors (no capability)" },
    Capability { interface: "topology", grant: None, what: "namespaces, veth pairs and bridges of the lab" },
    Capability { interface: "address", grant: None, what: "addresses on the lab's links" },
    Capability { interface: "route", grant: None, what: "routes and forwarding in the lab" },
    Capability { interface: "nat", grant: None, what: "masquerade in the lab's own nftables table" },
    Capability { interface: "probe", grant: None, what: "pings, TCP connections, throughput and traces from the lab's namespaces" },
    Capability { interface: "check", grant: None, what: "checks with a verdict, for nsw test's report" },
    Capability { interface: "service", grant: None, what: "WebAssembly services in the lab's nodes (sockets inside the lab only)" },
    Capability { interface: "conditions", grant: None, what: "rate, delay, loss and the like on the lab's own links" },
    Capability { interface: "firewall", grant: None, what: "filter rules and port forwards in the lab's own nftables tables" },
    Capability { interface: "files", grant: None, what: "files of the lab's nodes (their own /etc, /run, /tmp, /var/lib...), for their programs" },
    Capability { interface: "uplink", grant: Some(Grant::Uplink), what: "a NATed way out through the machine" },
    Capability { interface: "process", grant: Some(Grant::Exec), what: "programs of the machine run inside the lab's nodes" },
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

/// The interfaces a lab across machines (`nsw run --store`) may import:
/// those whose every call the machines' agents can do again.
pub const ACROSS_MACHINES: &[&str] = &["types", "topology", "address", "route", "nat", "probe", "check"];

/// Refuse a component that imports what a lab across machines cannot do.
pub fn check_across_machines<'a>(imports: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
    let refused: Vec<&str> = imports
        .into_iter()
        .filter(|name| name.strip_prefix("nsw:lab/").is_some_and(|i| !ACROSS_MACHINES.contains(&i.split('@').next().unwrap_or(i))))
        .collect();
    if !refused.is_empty() {
        anyhow::bail!(
            "it imports {}, which a lab across machines cannot use yet (it may import {})",
            refused.join(", "),
            ACROSS_MACHINES.iter().map(|i| format!("nsw:lab/{i}")).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Judge one import name (`nsw:lab/topology@0.1.0`) against the grants.
pub fn judge_import(name: &str, grants: &Grants) -> ImportVerdict {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    if let Some(interface) = path.strip_prefix("nsw:lab/") {
        let Some(cap) = CAPABILITIES.iter().find(|c| c.interface == interface) else { return ImportVerdict::Unknown };
        if version.is_some_and(|v| !WIT_VERSIONS.contains(&v)) {
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
                cap.grant.map(Grant::name).unwrap_or_default()
            )),
            ImportVerdict::Unknown => {
                problems.push(format!("it imports {}, which nsw does not provide (nsw provides {WIT_PACKAGE} and WASI 0.2)", quoted(name)))
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { anyhow::bail!("{}", problems.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(judge_import("nsw:lab/topology@0.1.2", &none), ImportVerdict::Granted(_)));
        assert!(matches!(judge_import("nsw:lab/process@0.1.2", &none), ImportVerdict::NeedsGrant(_)));
        assert_eq!(judge_import("nsw:lab/topology@0.2.0", &none), ImportVerdict::Unknown);
        let err = check_imports(["nsw:lab/topology@0.1.0", "nsw:lab/uplink@0.1.0"], &none).unwrap_err().to_string();
        assert!(err.contains("--allow uplink"), "{err}");
        assert!(check_imports(["nsw:lab/topology@0.1.0", "wasi:io/streams@0.2.0"], &none).is_ok());
    }
}
