//! Per-lab limits: what a single lab may create and use. Each limit is a
//! [`Quota`]; hitting one is a `quota` error that names the limit and the
//! flag that raises it.

use super::limits::Limits;
use crate::error::{LabError, LabResult};

/// One limit: how much of it is used, and the flag that raises it.
#[derive(Debug, Clone)]
pub struct Quota {
    used: u64,
    limit: u64,
    /// How the error words the count: "the lab has", "the lab has sent".
    has: &'static str,
    /// What is counted: "namespaces", "echo requests".
    noun: &'static str,
    flag: &'static str,
}

impl Quota {
    pub fn new(limit: u64, has: &'static str, noun: &'static str, flag: &'static str) -> Quota {
        Quota { used: 0, limit, has, noun, flag }
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// Refuse `more` if it would pass the limit; `doing` (may be empty)
    /// says what was refused.
    pub fn check(&self, more: u64, doing: &str) -> LabResult<()> {
        if self.used.saturating_add(more) <= self.limit {
            return Ok(());
        }
        let count = format!("{} {} {}", self.has, self.used, self.noun);
        let what = if doing.is_empty() { count } else { format!("{doing}: {count}") };
        Err(quota_error(&what, self.limit, self.flag))
    }

    /// Take `more`, or refuse as [`Quota::check`] does.
    pub fn take(&mut self, more: u64, doing: &str) -> LabResult<()> {
        self.check(more, doing)?;
        self.used += more;
        Ok(())
    }
}

/// Every quota of a running lab.
#[derive(Debug, Clone)]
pub struct Quotas {
    pub netns: Quota,
    pub links: Quota,
    pub bridges: Quota,
    pub addresses: Quota,
    pub routes: Quota,
    pub pings: Quota,
    pub failures: Quota,
    pub rules: Quota,
    pub checks: Quota,
    pub probes: Quota,
    pub services: Quota,
    pub processes: Quota,
    pub node_file_bytes: Quota,
}

impl Quotas {
    pub fn new(limits: &Limits) -> Quotas {
        Quotas {
            netns: Quota::new(limits.netns, "the lab has", "namespaces", "--max-netns"),
            links: Quota::new(limits.links, "the lab has", "links", "--max-links"),
            bridges: Quota::new(limits.bridges, "the lab has", "bridges", "--max-bridges"),
            addresses: Quota::new(limits.addresses, "the lab has", "addresses", "--max-addresses"),
            routes: Quota::new(limits.routes, "the lab has", "routes", "--max-routes"),
            pings: Quota::new(limits.pings, "the lab has sent", "echo requests", "--max-pings"),
            failures: Quota::new(limits.failures, "the script has made", "calls that failed", "--max-failures"),
            rules: Quota::new(limits.rules, "the lab has", "nftables rules", "--max-rules"),
            checks: Quota::new(limits.checks, "the script has recorded", "checks", "--max-checks"),
            probes: Quota::new(limits.probes, "the script has made", "probes", "--max-probes"),
            services: Quota::new(limits.services, "the lab has started", "services", "--max-services"),
            processes: Quota::new(limits.processes, "the lab has started", "processes", "--max-processes"),
            node_file_bytes: Quota::new(limits.node_file_bytes, "the script has written", "bytes into its nodes' files", "--max-node-files"),
        }
    }
}

/// A quota error that names the limit and the flag that raises it.
pub fn quota_error(what: &str, limit: impl std::fmt::Display, flag: &str) -> LabError {
    LabError::quota(format!("{what}: the limit is {limit} (raise it with {flag})"))
}

/// Refuse strings longer than `limit` bytes, before looking at them.
pub fn check_strings(call: &str, strings: &[&str], limit: usize) -> LabResult<()> {
    match strings.iter().find(|s| s.len() > limit) {
        Some(s) => Err(quota_error(&format!("{call} was passed a string of {} bytes", s.len()), format!("{limit} bytes"), "--max-string")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_names_its_limit_and_flag() {
        let mut q = Quota::new(2, "the lab has", "links", "--max-links");
        q.take(2, "").unwrap();
        let err = q.take(1, "").unwrap_err().to_string();
        assert_eq!(err, "quota: the lab has 2 links: the limit is 2 (raise it with --max-links)");
        let err = q.check(1, "cannot create x").unwrap_err().to_string();
        assert!(err.starts_with("quota: cannot create x: the lab has 2 links"), "{err}");
        assert_eq!(q.used(), 2);
    }
}
