//! `nsw:lab/conditions`: how the lab's links behave.

use wasmtime::component::Resource;

use super::HostState;
use super::types::LinkHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::conditions::{self, LinkConditions};
use crate::lab::conditions::Conditions;

fn from_wit(c: LinkConditions) -> Conditions {
    let percent = |p: Option<f32>| p.map(f64::from);
    Conditions {
        rate_bps: c.rate_bps,
        delay_us: c.delay_us,
        jitter_us: c.jitter_us,
        loss_percent: percent(c.loss_percent),
        loss_correlation_percent: percent(c.loss_correlation_percent),
        duplicate_percent: percent(c.duplicate_percent),
        corrupt_percent: percent(c.corrupt_percent),
        reorder_percent: percent(c.reorder_percent),
        queue_packets: c.queue_packets,
    }
}

impl conditions::Host for HostState {
    async fn set_conditions(&mut self, link: Resource<LinkHandle>, conditions: LinkConditions) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.set_conditions(link, from_wit(conditions)).await
    }

    async fn clear_conditions(&mut self, link: Resource<LinkHandle>) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.clear_conditions(link).await
    }
}
