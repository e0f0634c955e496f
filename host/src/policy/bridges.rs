//! What a bridge's options may be (`topology.set-bridge-options`,
//! `set-port-cost`): the kernel's own ranges, refused here by name before
//! the kernel is asked.

/// A bridge's options; `None` keeps the kernel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BridgeOptions {
    pub stp: bool,
    pub priority: Option<u16>,
    pub forward_delay_secs: Option<u8>,
    pub hello_secs: Option<u8>,
    pub max_age_secs: Option<u8>,
    pub ageing_secs: Option<u32>,
    pub multicast_snooping: Option<bool>,
    pub vlan_filtering: Option<bool>,
}

impl BridgeOptions {
    /// The first value out of the kernel's range, said as the user wrote it.
    pub fn check(&self) -> Result<(), String> {
        let ranges: [(&str, Option<u32>, u32, u32); 4] = [
            ("forward delay", self.forward_delay_secs.map(u32::from), 2, 30),
            ("hello time", self.hello_secs.map(u32::from), 1, 10),
            ("max age", self.max_age_secs.map(u32::from), 6, 40),
            ("ageing time", self.ageing_secs, 10, 1_000_000),
        ];
        for (name, value, lo, hi) in ranges {
            if let Some(v) = value.filter(|v| !(lo..=hi).contains(v)) {
                return Err(format!("a {name} of {v} s is out of the kernel's range {lo}-{hi} s"));
            }
        }
        Ok(())
    }
}

/// An STP path cost the kernel takes.
pub fn check_port_cost(cost: u32) -> Result<(), String> {
    if (1..=65535).contains(&cost) { Ok(()) } else { Err(format!("a path cost of {cost} is out of range 1-65535")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_options_are_named() {
        assert!(BridgeOptions { stp: true, forward_delay_secs: Some(2), hello_secs: Some(1), max_age_secs: Some(6), ..Default::default() }.check().is_ok());
        let bad = BridgeOptions { forward_delay_secs: Some(1), ..Default::default() }.check().unwrap_err();
        assert!(bad.contains("forward delay of 1 s"), "{bad}");
        assert!(BridgeOptions { ageing_secs: Some(5), ..Default::default() }.check().unwrap_err().contains("ageing time"));
        assert!(check_port_cost(0).is_err() && check_port_cost(65536).is_err() && check_port_cost(100).is_ok());
    }
}
