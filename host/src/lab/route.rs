//! `route`: routes and forwarding.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Family, Lab};
use crate::backend::NsId;
use crate::error::{LabError, LabResult};
use crate::journal::Object;
use crate::policy;

impl Lab {
    pub async fn add_route(&mut self, ns: NsId, destination: &str, via: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("route.add", &[destination, via])?;
        let via = policy::parse_ip(via)?;
        let destination = policy::parse_destination(destination, via)?;
        let what = format!("add route to {destination} via {via} in {}", self.describe_ns(ns));
        if let Some(rules) = self.machine_rules(ns) {
            rules.check_route(&what, destination, via)?;
        }
        self.add_route_unchecked(ns, destination, via).await
    }

    /// A route the policy has cleared (or that nsw itself adds).
    pub(super) async fn add_route_unchecked(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> LabResult<()> {
        self.quotas.routes.check(1, "")?;
        let what = format!("add route to {destination} via {via} in {}", self.describe_ns(ns));
        self.alive(ns).await?;
        let id = self.record_intent(Object::Route {
            netns: self.netns[ns].kernel.clone(),
            destination: destination.to_string(),
            via: via.to_string(),
        })?;
        let outcome = self.backend.add_route(ns, destination, via).await;
        self.confirm(&[id], outcome, || what)?;
        self.quotas.routes.take(1, "")
    }

    pub async fn enable_forwarding(&mut self, ns: NsId, family: Family) -> LabResult<()> {
        self.refuse_if_stopped()?;
        if self.forwarding.contains(&(ns, family)) {
            return Ok(());
        }
        let key = match family {
            Family::V4 => "net/ipv4/ip_forward",
            Family::V6 => "net/ipv6/conf/all/forwarding",
        };
        let what = format!("enable forwarding ({key}) in {}", self.describe_ns(ns));
        if let (Family::V6, Some(rules)) = (family, self.machine_rules(ns)) {
            rules.check_ipv6_forwarding(&what)?;
        }
        self.alive(ns).await?;
        let old = self.backend.read_sysctl(ns, key).await.map_err(|e| LabError::os(&what, &e))?;
        // Record the old value first: it is what `down` puts back.
        let id = self.record_intent(Object::Sysctl { netns: self.netns[ns].kernel.clone(), key: key.into(), old })?;
        let outcome = self.backend.write_sysctl(ns, key, "1").await;
        self.confirm(&[id], outcome, || what)?;
        self.forwarding.insert((ns, family));
        Ok(())
    }
}
