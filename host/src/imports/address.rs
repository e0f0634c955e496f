//! `nsw:lab/address`: addresses on the lab's links.

use wasmtime::component::Resource;

use super::HostState;
use super::types::LinkHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::address;

impl address::Host for HostState {
    async fn add(&mut self, link: Resource<LinkHandle>, cidr: String) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.add_address(link, &cidr).await
    }

    async fn list_addresses(&mut self, link: Resource<LinkHandle>) -> Result<Vec<String>, LabError> {
        let link = self.link_id(&link)?;
        Ok(self.lab.link_addresses(link).await?.iter().map(|a| a.to_string()).collect())
    }
}
