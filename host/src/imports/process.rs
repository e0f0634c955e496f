//! `nsw:lab/process`: programs of the machine in the lab's nodes (needs
//! `--allow exec`).

use std::time::Duration;

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::backend::Exit;
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::process::{self, Completed, ExitStatus, Readiness, RunOptions};
use crate::lab::process::{Background, OUTPUT_CAP};

/// What a guest's `process` handle stands for.
pub struct ProcessHandle {
    running: Background,
}

fn status(exit: Exit) -> ExitStatus {
    match exit {
        Exit::Code(code) => ExitStatus::Code(code),
        Exit::Signal(signal) => ExitStatus::Signal(signal),
    }
}

impl HostState {
    /// Whether the process behind `handle` ended (journaled once it has).
    fn poll_process(&mut self, handle: &Resource<ProcessHandle>) -> wasmtime::Result<Option<Exit>> {
        let entry = self.table.get_mut(handle)?;
        self.lab.poll_background(&mut entry.running).map_err(|e| wasmtime::Error::msg(e.message()))
    }
}

impl process::Host for HostState {
    async fn run(&mut self, node: Resource<NetnsHandle>, argv: Vec<String>, options: RunOptions) -> Result<Completed, LabError> {
        let ns = self.ns_id(&node)?;
        let done = self.lab.run_program(ns, &argv, options.timeout_ms).await?;
        Ok(Completed { status: status(done.exit), timed_out: done.timed_out, stdout: done.stdout, stderr: done.stderr })
    }

    async fn spawn(&mut self, node: Resource<NetnsHandle>, argv: Vec<String>) -> Result<Resource<ProcessHandle>, LabError> {
        let ns = self.ns_id(&node)?;
        let running = self.lab.spawn_program(ns, &argv).await?;
        Ok(self.table.push(ProcessHandle { running })?)
    }
}

impl process::HostProcess for HostState {
    async fn pid(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&handle)?.running.program.id().pid)
    }

    async fn wait(&mut self, handle: Resource<ProcessHandle>, timeout_ms: u32) -> wasmtime::Result<Option<ExitStatus>> {
        let until = tokio::time::Instant::now() + Duration::from_millis(timeout_ms.min(600_000) as u64);
        loop {
            if let Some(exit) = self.poll_process(&handle)? {
                return Ok(Some(status(exit)));
            }
            if tokio::time::Instant::now() >= until || self.lab.stop().requested() {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn kill(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<()> {
        let entry = self.table.get_mut(&handle)?;
        self.lab.stop_background(&mut entry.running).await.map_err(|e| wasmtime::Error::msg(e.message()))
    }

    async fn wait_ready(&mut self, handle: Resource<ProcessHandle>, ready: Readiness, timeout_ms: u32) -> Result<(), LabError> {
        let ready = match ready {
            Readiness::TcpListening(port) => crate::lab::readiness::Readiness::TcpListening(port),
            Readiness::UdpBound(port) => crate::lab::readiness::Readiness::UdpBound(port),
            Readiness::PathExists(path) => crate::lab::readiness::Readiness::PathExists(path),
            Readiness::OutputContains(text) => crate::lab::readiness::Readiness::OutputContains(text),
        };
        let entry = self.table.get_mut(&handle)?;
        self.lab.wait_ready(&mut entry.running, &ready, timeout_ms).await
    }

    async fn output(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<String> {
        let log = self.table.get(&handle)?.running.log.clone();
        let bytes = crate::access::files::read(&log).unwrap_or_default();
        let start = bytes.len().saturating_sub(OUTPUT_CAP as usize);
        Ok(String::from_utf8_lossy(&bytes[start..]).into_owned())
    }

    async fn drop(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<()> {
        // The handle goes; the program runs on (the lab owns it until down).
        self.table.delete(handle)?;
        Ok(())
    }
}
