//! `nsw:lab/files`: a node's own files, for its programs.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::files::{self, FileOptions};
use crate::lab::Wanted;

fn wanted(options: &FileOptions) -> Wanted<'_> {
    Wanted { mode: options.mode, owner: options.owner.as_deref(), group: options.group.as_deref() }
}

impl files::Host for HostState {
    async fn write_file(&mut self, node: Resource<NetnsHandle>, path: String, contents: Vec<u8>, options: FileOptions) -> Result<(), LabError> {
        let ns = self.ns_id(&node)?;
        self.lab.write_node_file(ns, &path, contents, wanted(&options)).await
    }

    async fn make_dir(&mut self, node: Resource<NetnsHandle>, path: String, options: FileOptions) -> Result<(), LabError> {
        let ns = self.ns_id(&node)?;
        self.lab.make_node_dir(ns, &path, wanted(&options)).await
    }

    async fn read_file(&mut self, node: Resource<NetnsHandle>, path: String) -> Result<Vec<u8>, LabError> {
        let ns = self.ns_id(&node)?;
        self.lab.read_node_file(ns, &path).await
    }
}
