//! `probe`: pings from the lab's namespaces.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Lab;
use crate::backend::{ConnectOutcome, Hop, NsId, PingStats, Throughput};
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
        let timeout = Duration::from_millis(timeout_ms as u64);
        let stats = match &mut self.forward {
            // Where the namespace is, after everything before it.
            Some(forward) => forward.ping(ns, target, count, timeout).await,
            None => self.backend.ping(ns, target, count, timeout, interval, &self.stop).await.map_err(|e| LabError::os(&what, &e)),
        };
        self.last_ping = Some(Instant::now());
        if let Ok(PingStats { received: 0, .. }) = stats {
            if let Some(hint) = self.why_no_reply(ns, target) {
                crate::tell::say!("nsw: {what} got no reply; {hint}");
            }
        }
        if let Ok(s) = &stats {
            let result = format!("{}/{} replies, avg {:.3} ms", s.received, s.sent, s.avg.as_secs_f64() * 1e3);
            self.note_probe("ping", self.netns[ns].node.clone(), target.to_string(), result);
        }
        stats
    }

    /// Before a probe: the common checks, the namespace alive, every link
    /// made and its carrier settled.
    async fn prepare_probe(&mut self, ns: NsId, what: &str, target: IpAddr) -> LabResult<()> {
        self.not_across_machines(what)?;
        if let Some(rules) = self.machine_rules(ns) {
            rules.check_ping(what, target)?;
        }
        self.quotas.probes.take(1, what)?;
        self.alive(ns).await?;
        self.flush().await?;
        self.wait_for_carriers().await
    }

    pub async fn tcp_connect(&mut self, ns: NsId, address: &str, port: u16, timeout_ms: u32) -> LabResult<(ConnectOutcome, Duration)> {
        self.refuse_if_stopped()?;
        self.check_strings("probe.tcp-connect", &[address])?;
        let address = policy::parse_ip(address)?;
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("tcp-connect timeout {timeout_ms} ms is out of range 1-10000")));
        }
        let to = std::net::SocketAddr::new(address, port);
        let what = format!("tcp-connect to {to} from {}", self.describe_ns(ns));
        self.prepare_probe(ns, &what, address).await?;
        let (outcome, took) = self
            .backend
            .tcp_connect(ns, to, Duration::from_millis(timeout_ms as u64), &self.stop)
            .await
            .map_err(|e| LabError::os(&what, &e))?;
        let result = format!("{} in {:.3} ms", describe_connect(outcome), took.as_secs_f64() * 1e3);
        self.note_probe("tcp-connect", self.netns[ns].node.clone(), to.to_string(), result);
        Ok((outcome, took))
    }

    pub async fn throughput(&mut self, sender: NsId, receiver: NsId, address: &str, seconds: u32) -> LabResult<Throughput> {
        self.refuse_if_stopped()?;
        self.check_strings("probe.throughput", &[address])?;
        let address = policy::parse_ip(address)?;
        if !(1..=60).contains(&seconds) {
            return Err(LabError::invalid(format!("throughput seconds {seconds} is out of range 1-60")));
        }
        let what = format!("throughput from {} to {address} in {}", self.describe_ns(sender), self.describe_ns(receiver));
        self.prepare_probe(sender, &what, address).await?;
        self.alive(receiver).await?;
        // The receiver listens on an address its namespace has now: one the
        // lab gave it, or one it got otherwise (DHCP).
        let stats = self.backend.throughput(sender, receiver, address, Duration::from_secs(seconds as u64), &self.stop).await.map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => LabError::invalid(format!("{what}: {address} is not an address of {}", self.describe_ns(receiver))),
            _ => LabError::os(&what, &e),
        })?;
        let result = format!("{:.1} Mbit/s, {} retransmits", stats.bytes as f64 * 8.0 / stats.seconds / 1e6, stats.retransmits);
        let from = self.netns[sender].node.clone();
        self.note_probe("throughput", from, format!("{address} in {}", self.netns[receiver].node), result);
        Ok(stats)
    }

    pub async fn trace(&mut self, ns: NsId, target: &str) -> LabResult<Vec<Hop>> {
        self.refuse_if_stopped()?;
        self.check_strings("probe.trace", &[target])?;
        let target = policy::parse_ip(target)?;
        let what = format!("trace {target} from {}", self.describe_ns(ns));
        self.prepare_probe(ns, &what, target).await?;
        let hops = self.backend.trace(ns, target, &self.stop).await.map_err(|e| LabError::os(&what, &e))?;
        let path: Vec<String> = hops.iter().map(|h| h.address.map(|a| a.to_string()).unwrap_or_else(|| "*".into())).collect();
        self.note_probe("trace", self.netns[ns].node.clone(), target.to_string(), path.join(" "));
        Ok(hops)
    }

    /// When a ping gets nothing back: the links on its way that the lab
    /// made but never set up, or whose other end is down (no carrier).
    /// "On its way": the links of the namespace it was sent from and of
    /// the one that has the target address, as far as the lab knows.
    fn why_no_reply(&self, from: NsId, target: IpAddr) -> Option<String> {
        let to = self.links.iter().find(|l| l.addresses.iter().any(|a| a.addr() == target)).map(|l| l.ns);
        let mut down = Vec::new();
        let mut no_carrier = Vec::new();
        // Links the script took down on purpose (`set-down`) explain
        // themselves: no hint for them.
        for (id, link) in self.links.iter().enumerate() {
            if link.ns != from && Some(link.ns) != to || self.failed_links.contains(&id) {
                continue;
            }
            let place = format!("{} in {}", link.name, self.describe_ns(link.ns));
            if !link.up {
                down.push(place);
            } else if let Some(peer) = link.peer.filter(|p| !self.links[*p].up && !self.failed_links.contains(p)) {
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

fn describe_connect(outcome: ConnectOutcome) -> &'static str {
    match outcome {
        ConnectOutcome::Connected => "connected",
        ConnectOutcome::Refused => "refused",
        ConnectOutcome::TimedOut => "timed out",
        ConnectOutcome::Unreachable => "unreachable",
    }
}
