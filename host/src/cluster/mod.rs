//! The cluster's store: what the machines agree through, and the agents'
//! registry in it. An existing distributed store
//! holds the state — etcd (v3 API) here — behind the small interface of
//! [`store::ClusterStore`], so that another engine (a Kubernetes `Lab`
//! resource through kube-rs, agents as a DaemonSet) can stand in for it
//! without changing the agents.
//!
//! `nsw agent` registers its machine under a lease and keeps it alive (a
//! machine whose agent dies drops out of `nsw machines` when its lease runs
//! out); `nsw machines` lists the live ones. Labs placed over the machines
//! are [`crate::spread`]'s.

pub mod etcd;
pub mod store;

use serde::{Deserialize, Serialize};

/// The VXLAN UDP port links between machines use: containerlab's, so as
/// not to fight the machine's own VXLAN on 4789.
pub const VXLAN_PORT: u16 = 14789;

/// What an agent says of its machine, in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MachineRecord {
    /// The machine's name (unique in the store).
    pub name: String,
    /// The address other machines reach it at (VXLAN's underlay).
    pub underlay: std::net::IpAddr,
    pub vxlan_port: u16,
    /// The MTU of the underlay's interface: links across machines get 50
    /// bytes less (VXLAN's headers).
    #[serde(default = "default_mtu")]
    pub underlay_mtu: u32,
    /// The agent's pid on its machine.
    pub agent_pid: u32,
    pub version: String,
    pub started_unix: u64,
}

/// What VXLAN's headers take from the underlay's MTU: 50 bytes over IPv4,
/// 70 over IPv6.
pub fn vxlan_overhead(underlay: std::net::IpAddr) -> u32 {
    if underlay.is_ipv4() { 50 } else { 70 }
}

fn default_mtu() -> u32 {
    1500
}

/// A machine's name: as a lab's node name, 1–32 of `[a-z0-9_-]`.
pub fn check_machine_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        anyhow::bail!("machine name {name:?}: 1-32 of lowercase letters, digits, '-' and '_'");
    }
    Ok(())
}
