//! A bridge's options and its ports' costs (`topology.set-bridge-options`,
//! `set-port-cost`): what the kernel's bridge offers, on the lab's own
//! bridges. The policy has the ranges.

use super::{Lab, LinkId};
use crate::error::{LabError, LabResult};
use crate::journal::LinkKind;
use crate::policy::bridges::{self, BridgeOptions};
use super::forward::LabOp;

impl Lab {
    pub async fn set_bridge_options(&mut self, bridge: LinkId, options: BridgeOptions) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set the options of {}", self.describe_link(bridge));
        if self.links[bridge].kind != LinkKind::Bridge {
            return Err(LabError::invalid(format!("{what}: it is a {}, not a bridge", self.links[bridge].kind)));
        }
        options.check().map_err(|why| LabError::invalid(format!("{what}: {why}")))?;
        self.alive_link(bridge).await?;
        self.backend.set_bridge_options(&self.link_ref(bridge), &options).await.map_err(|e| LabError::os(&what, &e))?;
        self.forwarded(|| LabOp::SetBridgeOptions { bridge, options })
    }

    pub async fn set_port_cost(&mut self, port: LinkId, cost: u32) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set the path cost of {} to {cost}", self.describe_link(port));
        if self.links[port].master.is_none() {
            return Err(LabError::invalid(format!("{what}: it is no port of a bridge of the lab's (topology.set-master first)")));
        }
        bridges::check_port_cost(cost).map_err(|why| LabError::invalid(format!("{what}: {why}")))?;
        self.materialize(port).await?;
        self.alive_link(port).await?;
        self.backend.set_port_cost(&self.link_ref(port), cost).await.map_err(|e| LabError::os(&what, &e))?;
        self.forwarded(|| LabOp::SetPortCost { port, cost })
    }
}
