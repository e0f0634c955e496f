//! `nsw:lab/nat`: source NAT.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::nat;

impl nat::Host for HostState {
    async fn masquerade(&mut self, ns: Resource<NetnsHandle>, source: String) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        self.lab.masquerade(ns, &source).await
    }
}
