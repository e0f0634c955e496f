//! `nsw:lab/uplink`: a way out of a contained lab (needs `--allow uplink`).

use wasmtime::component::Resource;

use super::HostState;
use super::types::LinkHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::uplink;

impl uplink::Host for HostState {
    async fn connect(&mut self) -> Result<Resource<LinkHandle>, LabError> {
        let link = self.lab.connect_uplink().await?;
        Ok(self.table.push(LinkHandle(link))?)
    }
}
