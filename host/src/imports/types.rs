//! `nsw:lab/types`: the error variant and the two resources.

use wasmtime::component::Resource;

use super::HostState;
use crate::backend::NsId;
use crate::error::{ErrorKind, LabError};
use crate::lab::LinkId;
use crate::imports::bindings::nsw::lab::types::{self, Error};

/// What a guest's `netns` handle stands for.
pub struct NetnsHandle(pub NsId);

/// What a guest's `link` handle stands for.
pub struct LinkHandle(pub LinkId);

impl HostState {
    pub(crate) fn ns_id(&self, ns: &Resource<NetnsHandle>) -> Result<NsId, LabError> {
        Ok(self.table.get(ns)?.0)
    }

    pub(crate) fn link_id(&self, link: &Resource<LinkHandle>) -> Result<LinkId, LabError> {
        Ok(self.table.get(link)?.0)
    }
}

impl types::Host for HostState {
    fn convert_error(&mut self, err: LabError) -> wasmtime::Result<Error> {
        if let LabError::Guest { .. } = err {
            // Every refusal counts: past the limit the script is stopped.
            if let Err(exhausted) = self.lab.note_failure(&err) {
                return Err(wasmtime::Error::new(exhausted));
            }
        }
        match err {
            LabError::Guest { kind, message } => Ok(match kind {
                ErrorKind::Denied => Error::Denied(message),
                ErrorKind::Invalid => Error::Invalid(message),
                ErrorKind::Exists => Error::Exists(message),
                ErrorKind::NotFound => Error::NotFound(message),
                ErrorKind::Quota => Error::Quota(message),
                ErrorKind::Os => Error::Os(message),
            }),
            // A stop keeps its type, so that the runtime knows it for one.
            LabError::Trap(e) if crate::stop::Stopped::is_in(&e) => Err(wasmtime::Error::new(crate::stop::Stopped)),
            LabError::Trap(e) => Err(wasmtime::Error::from_anyhow(e)),
        }
    }
}

impl types::HostNetns for HostState {
    async fn name(&mut self, ns: Resource<NetnsHandle>) -> wasmtime::Result<String> {
        let id = self.table.get(&ns)?.0;
        Ok(self.lab.netns(id).node.clone())
    }

    async fn drop(&mut self, ns: Resource<NetnsHandle>) -> wasmtime::Result<()> {
        // The handle goes; the namespace stays with the lab.
        self.table.delete(ns)?;
        Ok(())
    }
}

impl types::HostLink for HostState {
    async fn name(&mut self, link: Resource<LinkHandle>) -> wasmtime::Result<String> {
        let id = self.table.get(&link)?.0;
        Ok(self.lab.link(id).name.clone())
    }

    async fn drop(&mut self, link: Resource<LinkHandle>) -> wasmtime::Result<()> {
        self.table.delete(link)?;
        Ok(())
    }
}
