//! `probe`: pings from the lab's namespaces.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Lab;
use crate::backend::{NsId, PingStats};
use crate::error::{LabError, LabResult};
use crate::policy;

impl Lab {
    pub async fn ping(&mut self, ns: NsId, target: &str, count: u32, timeout_ms: u32) -> LabResult<PingStats> {
        self.refuse_if_stopped()?;
        self.check_strings("probe.ping", &[target])?;
        let target = policy::parse_ip(target)?;
        if !(1..=100).contains(&count) {
            return Err(LabError::invalid(format!("ping count {count} is out of range 1-100")));
        }
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("ping timeout {timeout_ms} ms is out of range 1-10000")));
        }
        let what = format!("ping {target} from {}", self.describe_ns(ns));
        if let Some(rules) = self.machine_rules(ns) {
            rules.check_ping(&what, target)?;
        }
        self.quotas.pings.check(count as u64, "")?;
        self.alive(ns).await?;
        self.flush().await?;
        self.wait_for_carriers().await?;
        self.quotas.pings.take(count as u64, "")?;
        let interval = Duration::from_secs(1) / self.limits.ping_rate.max(1);
        // The rate holds across calls too.
        if let Some(last) = self.last_ping {
            let since = last.elapsed();
            if since < interval {
                tokio::time::sleep(interval - since).await;
            }
        }
        let stats = self
            .backend
            .ping(ns, target, count, Duration::from_millis(timeout_ms as u64), interval, &self.stop)
            .await
            .map_err(|e| LabError::os(&what, &e));
        self.last_ping = Some(Instant::now());
        if let Ok(PingStats { received: 0, .. }) = stats {
            if let Some(hint) = self.why_no_reply(ns, target) {
                crate::tell::say!("nsw: {what} got no reply; {hint}");
            }
        }
        stats
    }

    /// When a ping gets nothing back: the links on its way that the lab
    /// made but never set up, or whose other end is down (no carrier).
    /// "On its way": the links of the namespace it was sent from and of
    /// the one that has the target address, as far as the lab knows.
    fn why_no_reply(&self, from: NsId, target: IpAddr) -> Option<String> {
        let to = self.links.iter().find(|l| l.addresses.iter().any(|a| a.addr() == target)).map(|l| l.ns);
        let mut down = Vec::new();
        let mut no_carrier = Vec::new();
        for link in &self.links {
            if link.ns != from && Some(link.ns) != to {
                continue;
            }
            let place = format!("{} in {}", link.name, self.describe_ns(link.ns));
            if !link.up {
                down.push(place);
            } else if let Some(peer) = link.peer.filter(|p| !self.links[*p].up) {
                no_carrier.push(format!("{place} (its peer {} is down)", self.links[peer].name));
            }
        }
        let mut parts = Vec::new();
        if !down.is_empty() {
            parts.push(format!("the lab never set up {}", down.join(", ")));
        }
        if !no_carrier.is_empty() {
            parts.push(format!("no carrier on {}", no_carrier.join(", ")));
        }
        if parts.is_empty() { None } else { Some(parts.join("; ")) }
    }
}
