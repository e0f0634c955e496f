//! Host side of the WIT imports: one module per interface, as wasmtime-wasi
//! does it. Each turns guest handles into lab ids and calls the lab; none
//! decides anything itself.

pub mod address;
pub mod bindings;
pub mod check;
pub mod conditions;
pub mod files;
pub mod firewall;
pub mod nat;
pub mod process;
pub mod probe;
pub mod route;
pub mod service;
pub mod topology;
pub mod types;
pub mod uplink;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::lab::Lab;
use crate::runtime::service::Services;

/// Everything a guest's calls can reach.
pub struct HostState {
    pub lab: Lab,
    /// Guest handles (netns, link, WASI streams) to host objects.
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub limits: StoreLimits,
    /// The services the script starts.
    pub services: Services,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
