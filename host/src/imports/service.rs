//! `nsw:lab/service`: WebAssembly services in the lab's nodes.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::service::{self, Ending};
use crate::runtime::service::{self as running, Service};

/// What a guest's `service` handle stands for.
pub struct ServiceHandle(pub Arc<Service>);

fn ending(e: running::Ending) -> Ending {
    match e {
        running::Ending::Exited(code) => Ending::Exited(code),
        running::Ending::Crashed(why) => Ending::Crashed(why),
        running::Ending::Stopped => Ending::Stopped,
    }
}

impl service::Host for HostState {
    async fn start(&mut self, node: Resource<NetnsHandle>, name: String, component: Vec<u8>, args: Vec<String>) -> Result<Resource<ServiceHandle>, LabError> {
        let ns = self.ns_id(&node)?;
        let label = self.lab.admit_service(ns, &name, component.len()).await?;
        self.services.reserve_memory().map_err(|why| LabError::quota(format!("start service {label}: {why}")))?;
        // A service that never started gives its memory back.
        let started = self.start_reserved(ns, label, &name, component, args).await;
        if started.is_err() {
            self.services.release_memory();
        }
        Ok(self.table.push(ServiceHandle(started?))?)
    }
}

impl HostState {
    /// Compile and start a service whose memory is reserved.
    async fn start_reserved(&mut self, ns: crate::backend::NsId, label: String, name: &str, component: Vec<u8>, args: Vec<String>) -> Result<Arc<Service>, LabError> {
        let stop = self.lab.stop().clone();
        let compiled = match self.services.prepare(&label, component, &stop).await {
            None => {
                // Said, because compiling goes on unseen until nsw exits.
                crate::tell::say!("nsw: compiling service {label} was abandoned: the run was told to stop");
                return Err(LabError::stopped());
            }
            Some(prepared) => prepared.map_err(|e| LabError::invalid(format!("start service {label}: {e:#}")))?,
        };
        self.lab.start_service(ns, &mut self.services, label, name, compiled, args)
    }
}

impl service::HostService for HostState {
    async fn name(&mut self, handle: Resource<ServiceHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.0.label.clone())
    }

    async fn wait(&mut self, handle: Resource<ServiceHandle>, timeout_ms: u32) -> wasmtime::Result<Option<Ending>> {
        let service = self.table.get(&handle)?.0.clone();
        let timeout = Duration::from_millis(timeout_ms.min(60_000) as u64);
        let ended = service.wait(timeout, self.lab.stop()).await;
        if ended.is_some() {
            self.lab.note_ended_services(&self.services).map_err(|e| wasmtime::format_err!("{e}"))?;
        }
        Ok(ended.map(ending))
    }

    async fn stop(&mut self, handle: Resource<ServiceHandle>) -> wasmtime::Result<Ending> {
        let service = self.table.get(&handle)?.0.clone();
        let ended = service.stop().await;
        self.lab.note_ended_services(&self.services).map_err(|e| wasmtime::format_err!("{e}"))?;
        Ok(ending(ended))
    }

    async fn output(&mut self, handle: Resource<ServiceHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.0.output())
    }

    async fn drop(&mut self, handle: Resource<ServiceHandle>) -> wasmtime::Result<()> {
        // The handle goes; the service runs on until it ends, or the run
        // or the lab does.
        self.table.delete(handle)?;
        Ok(())
    }
}
