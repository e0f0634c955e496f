//! Routes with several gateways (`route.add-multipath`): how many, which
//! weights, and how the journal writes their gateways down.

use std::net::IpAddr;

use ipnet::IpNet;

use super::names::{parse_destination, parse_ip, quoted};
use crate::error::{LabError, LabResult};

/// At most so many gateways in one route (what a routing daemon's ECMP
/// usually installs is 2 to 8; the kernel takes more, a lab needs no more).
pub const MAX_NEXT_HOPS: usize = 16;

/// One gateway of a multipath route and its weight (1-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub via: IpAddr,
    pub weight: u16,
}

/// The destination and gateways of a multipath route, as a script gave
/// them (`via`, `weight`): 2 to [`MAX_NEXT_HOPS`] distinct gateways of one
/// family, each weighing 1 to 256.
pub fn parse_multipath(destination: &str, hops: &[(String, u16)]) -> LabResult<(IpNet, Vec<NextHop>)> {
    let what = format!("route to {} with {} gateways", quoted(destination), hops.len());
    if !(2..=MAX_NEXT_HOPS).contains(&hops.len()) {
        return Err(LabError::invalid(format!("{what}: a multipath route has 2 to {MAX_NEXT_HOPS} gateways (one: use route.add)")));
    }
    let mut parsed: Vec<NextHop> = Vec::with_capacity(hops.len());
    for (via, weight) in hops {
        let via = parse_ip(via)?;
        if !(1..=256).contains(weight) {
            return Err(LabError::invalid(format!("{what}: the weight of {via} is {weight}; a weight is 1 to 256")));
        }
        if parsed.iter().any(|h| h.via == via) {
            return Err(LabError::invalid(format!("{what}: {via} is named twice")));
        }
        parsed.push(NextHop { via, weight: *weight });
    }
    let destination = parse_destination(destination, parsed[0].via)?;
    if let Some(other) = parsed.iter().find(|h| h.via.is_ipv4() != destination.addr().is_ipv4()) {
        return Err(LabError::invalid(format!("{what}: the gateway {} is not of the destination's family", other.via)));
    }
    Ok((destination, parsed))
}

/// The journal's `via` of a multipath route: `A@W,B@W`.
pub fn journal_via(hops: &[NextHop]) -> String {
    hops.iter().map(|h| format!("{}@{}", h.via, h.weight)).collect::<Vec<_>>().join(",")
}

/// The gateways of a journal's multipath `via`; `None` if it is not one.
pub fn from_journal_via(via: &str) -> Option<Vec<NextHop>> {
    if !via.contains(',') {
        return None;
    }
    via.split(',')
        .map(|hop| {
            let (via, weight) = hop.split_once('@')?;
            Some(NextHop { via: via.parse().ok()?, weight: weight.parse().ok()? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hops(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(v, w)| (v.to_string(), *w)).collect()
    }

    #[test]
    fn gateways_are_counted_weighed_and_of_one_family() {
        let (d, h) = parse_multipath("10.9.0.0/24", &hops(&[("10.0.1.2", 1), ("10.0.2.2", 3)])).unwrap();
        assert_eq!((d.to_string(), h.len(), h[1].weight), ("10.9.0.0/24".into(), 2, 3));
        assert_eq!(from_journal_via(&journal_via(&h)), Some(h));
        assert!(parse_multipath("default", &hops(&[("10.0.1.2", 1)])).unwrap_err().message().contains("2 to 16 gateways"));
        assert!(parse_multipath("default", &hops(&[("10.0.1.2", 1), ("10.0.1.2", 1)])).unwrap_err().message().contains("named twice"));
        assert!(parse_multipath("default", &hops(&[("10.0.1.2", 0), ("10.0.2.2", 1)])).unwrap_err().message().contains("1 to 256"));
        assert!(parse_multipath("default", &hops(&[("10.0.1.2", 1), ("fd00::2", 1)])).unwrap_err().message().contains("family"));
        assert_eq!(from_journal_via("10.0.1.2"), None);
    }
}
