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
}
