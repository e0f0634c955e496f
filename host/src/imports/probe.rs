//! `nsw:lab/probe`: pings, TCP connections, throughput, traces.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::backend::ConnectOutcome;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::probe::{self, ConnectStats, Hop, PingOptions, PingStats, ThroughputStats};

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

    async fn tcp_connect(&mut self, source: Resource<NetnsHandle>, address: String, port: u16, timeout_ms: u32) -> Result<ConnectStats, LabError> {
        let ns = self.ns_id(&source)?;
        let (outcome, took) = self.lab.tcp_connect(ns, &address, port, timeout_ms).await?;
        let outcome = match outcome {
            ConnectOutcome::Connected => probe::ConnectOutcome::Connected,
            ConnectOutcome::Refused => probe::ConnectOutcome::Refused,
            ConnectOutcome::TimedOut => probe::ConnectOutcome::TimedOut,
            ConnectOutcome::Unreachable => probe::ConnectOutcome::Unreachable,
        };
        Ok(ConnectStats { outcome, ms: ms(took) })
    }

    async fn throughput(&mut self, sender: Resource<NetnsHandle>, receiver: Resource<NetnsHandle>, address: String, seconds: u32) -> Result<ThroughputStats, LabError> {
        let (sender, receiver) = (self.ns_id(&sender)?, self.ns_id(&receiver)?);
        let stats = self.lab.throughput(sender, receiver, &address, seconds).await?;
        Ok(ThroughputStats {
            bits_per_second: stats.bytes as f64 * 8.0 / stats.seconds,
            bytes: stats.bytes,
            seconds: stats.seconds,
            retransmits: stats.retransmits,
        })
    }

    async fn trace(&mut self, source: Resource<NetnsHandle>, target: String) -> Result<Vec<Hop>, LabError> {
        let ns = self.ns_id(&source)?;
        let hops = self.lab.trace(ns, &target).await?;
        Ok(hops.into_iter().map(|h| Hop { ttl: h.ttl, address: h.address.map(|a| a.to_string()), ms: ms(h.rtt) }).collect())
    }
}
