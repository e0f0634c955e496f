//! The store interface: everything the agents and the coordinator ask of
//! the distributed engine, and nothing more, so that another engine can
//! implement it. An implementation must give: registrations that vanish
//! when their holder stops renewing them (etcd: a key under a lease;
//! Kubernetes: a Lease object), and create-if-absent (etcd: a transaction
//! on the key's create revision; Kubernetes: create, which fails if it
//! exists).

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use super::MachineRecord;

/// A live registration: renewed by [`ClusterStore::renew`], withdrawn by
/// [`ClusterStore::withdraw`] or when renewals stop for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration(pub i64);

#[async_trait]
pub trait ClusterStore: Send {
    /// Register `machine` for `ttl`, unless a live registration has its
    /// name: then `Ok(Err(record))`, the record holding it.
    async fn register(&mut self, machine: &MachineRecord, ttl: Duration) -> Result<std::result::Result<Registration, MachineRecord>>;
    /// Renew it; `false` if it had already run out (register again).
    async fn renew(&mut self, registration: Registration) -> Result<bool>;
    /// Withdraw it now.
    async fn withdraw(&mut self, registration: Registration) -> Result<()>;
    /// The machines registered now, by name.
    async fn machines(&mut self) -> Result<Vec<MachineRecord>>;
}
