//! `nsw:lab/route`: routes and forwarding.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::error::LabError;
use crate::lab::Family;
use crate::imports::bindings::nsw::lab::route;
use crate::imports::bindings::nsw::lab::types::IpFamily;

impl route::Host for HostState {
    async fn add(&mut self, ns: Resource<NetnsHandle>, destination: String, via: String) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        self.lab.add_route(ns, &destination, &via).await
    }

    async fn add_multipath(&mut self, ns: Resource<NetnsHandle>, destination: String, hops: Vec<route::NextHop>) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        let hops: Vec<(String, u16)> = hops.into_iter().map(|h| (h.via, h.weight)).collect();
        self.lab.add_multipath_route(ns, &destination, &hops).await
    }

    async fn enable_forwarding(&mut self, ns: Resource<NetnsHandle>, family: IpFamily) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        let family = match family {
            IpFamily::Ipv4 => Family::V4,
            IpFamily::Ipv6 => Family::V6,
        };
        self.lab.enable_forwarding(ns, family).await
    }
}
