//! `nsw:lab/topology`: namespaces, veth pairs, bridges.

use wasmtime::component::Resource;

use super::HostState;
use super::types::{LinkHandle, NetnsHandle};
use crate::error::LabError;
use crate::lab::HOST;
use crate::imports::bindings::nsw::lab::topology;

impl topology::Host for HostState {
    async fn host(&mut self) -> wasmtime::Result<Resource<NetnsHandle>> {
        Ok(self.table.push(NetnsHandle(HOST))?)
    }

    async fn set_bridge_options(&mut self, bridge: Resource<LinkHandle>, options: topology::BridgeOptions) -> Result<(), LabError> {
        let bridge = self.link_id(&bridge)?;
        let options = crate::policy::bridges::BridgeOptions {
            stp: options.stp,
            priority: options.priority,
            forward_delay_secs: options.forward_delay_secs,
            hello_secs: options.hello_secs,
            max_age_secs: options.max_age_secs,
            ageing_secs: options.ageing_secs,
            multicast_snooping: options.multicast_snooping,
            vlan_filtering: options.vlan_filtering,
        };
        self.lab.set_bridge_options(bridge, options).await
    }

    async fn set_port_cost(&mut self, port: Resource<LinkHandle>, cost: u32) -> Result<(), LabError> {
        let port = self.link_id(&port)?;
        self.lab.set_port_cost(port, cost).await
    }

    async fn lab_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.lab.name().to_string())
    }

    async fn create_netns(&mut self, name: String) -> Result<Resource<NetnsHandle>, LabError> {
        let id = self.lab.create_netns(&name).await?;
        Ok(self.table.push(NetnsHandle(id))?)
    }

    async fn create_veth(
        &mut self,
        name: String,
        ns: Resource<NetnsHandle>,
        peer_name: String,
        peer_ns: Resource<NetnsHandle>,
    ) -> Result<(Resource<LinkHandle>, Resource<LinkHandle>), LabError> {
        let (ns, peer_ns) = (self.ns_id(&ns)?, self.ns_id(&peer_ns)?);
        let (a, b) = self.lab.create_veth(&name, ns, &peer_name, peer_ns).await?;
        Ok((self.table.push(LinkHandle(a))?, self.table.push(LinkHandle(b))?))
    }

    async fn create_bridge(&mut self, name: String, ns: Resource<NetnsHandle>) -> Result<Resource<LinkHandle>, LabError> {
        let ns = self.ns_id(&ns)?;
        let id = self.lab.create_bridge(&name, ns).await?;
        Ok(self.table.push(LinkHandle(id))?)
    }

    async fn move_link(&mut self, link: Resource<LinkHandle>, to: Resource<NetnsHandle>) -> Result<(), LabError> {
        let (link, to) = (self.link_id(&link)?, self.ns_id(&to)?);
        self.lab.move_link(link, to).await
    }

    async fn set_master(&mut self, port: Resource<LinkHandle>, bridge: Resource<LinkHandle>) -> Result<(), LabError> {
        let (port, bridge) = (self.link_id(&port)?, self.link_id(&bridge)?);
        self.lab.set_master(port, bridge).await
    }

    async fn set_up(&mut self, link: Resource<LinkHandle>) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.set_up(link).await
    }

    async fn set_down(&mut self, link: Resource<LinkHandle>) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.set_down(link).await
    }

    async fn set_mtu(&mut self, link: Resource<LinkHandle>, mtu: u32) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.set_mtu(link, mtu).await
    }

    async fn set_mac(&mut self, link: Resource<LinkHandle>, mac: String) -> Result<(), LabError> {
        let link = self.link_id(&link)?;
        self.lab.set_mac(link, &mac).await
    }

    async fn set_ipv6_link_local(&mut self, enabled: bool) -> wasmtime::Result<()> {
        self.lab.set_ipv6_link_local(enabled);
        Ok(())
    }
}
