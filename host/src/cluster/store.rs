//! The store interface: everything the agents and the coordinator ask of
//! the distributed engine, and nothing more, so that another engine can
//! implement it. An implementation must give: registrations that vanish
//! when their holder stops renewing them (etcd: a key under a lease;
//! Kubernetes: a Lease object), and create-if-absent (etcd: a transaction
//! on the key's create revision; Kubernetes: create, which fails if it
//! exists).
//!
//! Beside the machines, labs across machines keep their records and the
//! messages between the coordinator and the agents as keys (paths like
//! `labs/pbj`, see `spread`) with JSON values: an engine must give put,
//! get, list by prefix, delete, two changes at once, and a counter. (On
//! Kubernetes: a `Lab` resource per lab, its messages in its status or in
//! ConfigMaps of its own.)

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
    /// Put `value` at `key` for as long as the registration it returns is
    /// renewed (a coordinator's sign of life).
    async fn put_leased(&mut self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<Registration>;
    /// The machines registered now, by name.
    async fn machines(&mut self) -> Result<Vec<MachineRecord>>;

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&mut self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Put several keys, in as few requests as the engine allows (each
    /// request all or nothing).
    async fn put_all(&mut self, pairs: Vec<(String, Vec<u8>)>) -> Result<()>;
    /// Create `key` unless it exists; whether it did.
    async fn create(&mut self, key: &str, value: Vec<u8>) -> Result<bool>;
    /// The keys under `prefix` with their values, in key order.
    async fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// The keys under `prefix` alone, in key order.
    async fn keys(&mut self, prefix: &str) -> Result<Vec<String>>;
    /// Put `value` at `key` if it holds `old` now; whether it did.
    async fn replace(&mut self, key: &str, old: &[u8], value: Vec<u8>) -> Result<bool>;
    /// What identifies this store (its cluster), whichever member answers.
    async fn id(&mut self) -> Result<String>;
    /// Delete `key`, or with `prefix` everything under it too.
    async fn delete(&mut self, key: &str, prefix: bool) -> Result<()>;
    /// Put one key and delete another, at once (an answer replaces its
    /// question).
    async fn put_and_delete(&mut self, put: &str, value: Vec<u8>, delete: &str) -> Result<()>;
    /// Take `n` numbers from the counter `key` (which starts at 1): the
    /// first of them. Two takers never get the same number.
    async fn take(&mut self, key: &str, n: u64) -> Result<u64>;
}
