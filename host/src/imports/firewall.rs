//! `nsw:lab/firewall`: filter rules and port forwards in the lab's nodes.

use wasmtime::component::Resource;

use super::HostState;
use super::types::NetnsHandle;
use crate::backend::rules::{Direction, Protocol, Verdict};
use crate::error::LabError;
use crate::imports::bindings::nsw::lab::firewall;
use crate::lab::firewall::RuleRequest;

fn protocol(p: firewall::Protocol) -> Protocol {
    match p {
        firewall::Protocol::Tcp => Protocol::Tcp,
        firewall::Protocol::Udp => Protocol::Udp,
        firewall::Protocol::Icmp => Protocol::Icmp,
    }
}

fn direction(d: firewall::Direction) -> Direction {
    match d {
        firewall::Direction::Input => Direction::Input,
        firewall::Direction::Forward => Direction::Forward,
        firewall::Direction::Output => Direction::Output,
    }
}

fn verdict(v: firewall::Verdict) -> Verdict {
    match v {
        firewall::Verdict::Allow => Verdict::Allow,
        firewall::Verdict::Drop => Verdict::Drop,
    }
}

fn action(a: firewall::Action) -> Verdict {
    match a {
        firewall::Action::Allow => Verdict::Allow,
        firewall::Action::Drop => Verdict::Drop,
        firewall::Action::Reject => Verdict::Reject,
    }
}

impl firewall::Host for HostState {
    async fn add_rule(&mut self, ns: Resource<NetnsHandle>, rule: firewall::Rule) -> Result<(), LabError> {
        // A 0.1.2 rule is a filter rule whose action is its verdict.
        let action = match rule.verdict {
            firewall::Verdict::Allow => firewall::Action::Allow,
            firewall::Verdict::Drop => firewall::Action::Drop,
        };
        let rule = firewall::FilterRule { direction: rule.direction, action, protocol: rule.protocol, source: rule.source, destination: rule.destination, port: rule.port };
        self.add_filter_rule(ns, rule).await
    }

    async fn add_filter_rule(&mut self, ns: Resource<NetnsHandle>, rule: firewall::FilterRule) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        let request = RuleRequest {
            direction: direction(rule.direction),
            verdict: action(rule.action),
            protocol: rule.protocol.map(protocol),
            source: rule.source,
            destination: rule.destination,
            port: rule.port,
        };
        self.lab.add_rule(ns, request).await
    }

    async fn set_policy(&mut self, ns: Resource<NetnsHandle>, d: firewall::Direction, v: firewall::Verdict) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        self.lab.set_policy(ns, direction(d), verdict(v)).await
    }

    async fn port_forward(&mut self, ns: Resource<NetnsHandle>, p: firewall::Protocol, port: u16, to_address: String, to_port: u16) -> Result<(), LabError> {
        let ns = self.ns_id(&ns)?;
        self.lab.port_forward(ns, protocol(p), port, &to_address, to_port).await
    }
}
