//! `nsw:lab/probe`: pings.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::probe::{self, PingOptions, PingStats};

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl probe::Host for HostState {
    async fn ping(&mut self, source: Resource<NetnsHandle>, target: String, options: PingOptions) -> Result<PingStats, LabError> {
        let ns = self.ns_id(&source)?;
        let stats = self.lab.ping(ns, &target, options.count, options.timeout_ms).await?;
        Ok(PingStats {
            sent: stats.sent,
            received: stats.received,
            min_ms: ms(stats.min),
            avg_ms: ms(stats.avg),
            max_ms: ms(stats.max),
        })
    }
}
