//! Name and address rules: every name and address a guest passes is
//! checked and parsed here, never handed on as text.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::{LabError, LabResult};

/// Longest lab or node name. Kernel netns names are `<lab>-<node>`.
pub const MAX_NAME_LEN: usize = 32;
/// Interface names are at most IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;

/// Check a lab name (`pbj`). It names the lab's own namespace, the prefix of
/// its nodes' namespaces, its journal file and its nftables table. It has
/// no `-`: that is what separates a lab from its node in `<lab>-<node>`,
/// so that lab `a` with node `b-c` and lab `a-b` with node `c` can never
/// meet in one namespace name.
pub fn check_lab_name(name: &str) -> LabResult<()> {
    check_safe_name("lab name", name)?;
    if name.contains('-') {
        return Err(LabError::invalid(format!(
            "lab name {} contains '-', which separates a lab from its nodes in namespace names (<lab>-<node>); use '_' or '.'",
            quoted(name)
        )));
    }
    Ok(())
}

/// A lab name made from a file name (`pbj-py.wasm` gives `pbj_py`): what
/// a lab name may not hold becomes `_`.
pub fn lab_name_from(stem: &str) -> String {
    let mut name: String = stem.chars().take(MAX_NAME_LEN).map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.insert(0, 'x');
        name.truncate(MAX_NAME_LEN);
    }
    name
}

/// Check a node name (`jelly`); the namespace becomes `<lab>-<node>`.
pub fn check_node_name(name: &str) -> LabResult<()> {
    check_safe_name("netns name", name)?;
    if name == crate::naming::HOST {
        return Err(LabError::invalid(format!("netns name {} is reserved for the lab's host", quoted(name))));
    }
    Ok(())
}

/// A name that is also a safe file name under /run: 1-32 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit (so never `.`, `..`
/// or an option-looking `-x`).
fn check_safe_name(what: &str, name: &str) -> LabResult<()> {
    let shown = quoted(name);
    if name.is_empty() {
        return Err(LabError::invalid(format!("{what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(LabError::invalid(format!(
            "{what} {shown} is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(LabError::invalid(format!(
            "{what} {shown} contains {}; use letters, digits, '_', '.' and '-'",
            describe_char(bad)
        )));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(LabError::invalid(format!("{what} {shown} must start with a letter or digit")));
    }
    Ok(())
}

/// Check an interface name the way the kernel's `dev_valid_name` does, and
/// a little stricter: printable ASCII only, no `%` (the kernel's `%d`
/// template character).
pub fn check_ifname(name: &str) -> LabResult<()> {
    let shown = quoted(name);
    if name.is_empty() {
        return Err(LabError::invalid("interface name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(LabError::invalid(format!(
            "interface name {shown} is {} bytes long; the kernel's limit is {MAX_IFNAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(LabError::invalid(format!("interface name {shown} is not allowed")));
    }
    if let Some(bad) = name.chars().find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '%')) {
        return Err(LabError::invalid(format!(
            "interface name {shown} contains {}",
            describe_char(bad)
        )));
    }
    Ok(())
}

/// An address with its prefix length: `10.0.0.10/16`.
pub fn parse_cidr(text: &str) -> LabResult<IpNet> {
    check_address_length(text)?;
    if !text.contains('/') {
        return Err(LabError::invalid(format!(
            "address {} has no prefix length (write e.g. 10.0.0.10/16)",
            quoted(text)
        )));
    }
    IpNet::from_str(text).map_err(|_| LabError::invalid(format!("address {} is not an IP address/prefix", quoted(text))))
}

/// A network prefix without host bits: `10.0.0.0/16`.
pub fn parse_prefix(text: &str) -> LabResult<IpNet> {
    let net = parse_cidr(text)?;
    if net.trunc() != net {
        return Err(LabError::invalid(format!(
            "prefix {} has host bits set; did you mean {}?",
            quoted(text),
            net.trunc()
        )));
    }
    Ok(net)
}

/// A plain address: `10.0.0.1`, `fd00::1`.
pub fn parse_ip(text: &str) -> LabResult<IpAddr> {
    check_address_length(text)?;
    IpAddr::from_str(text).map_err(|_| LabError::invalid(format!("{} is not an IP address", quoted(text))))
}

/// A route destination: a prefix, or `default` (for the gateway's family).
pub fn parse_destination(text: &str, via: IpAddr) -> LabResult<IpNet> {
    let dest = if text == "default" {
        match via {
            IpAddr::V4(_) => IpNet::from_str("0.0.0.0/0").expect("valid literal"),
            IpAddr::V6(_) => IpNet::from_str("::/0").expect("valid literal"),
        }
    } else {
        parse_prefix(text)?
    };
    if dest.addr().is_ipv4() != via.is_ipv4() {
        return Err(LabError::invalid(format!(
            "route to {} via {via} mixes IPv4 and IPv6",
            quoted(text)
        )));
    }
    Ok(dest)
}

/// No address is longer than this: refuse to parse anything longer.
fn check_address_length(text: &str) -> LabResult<()> {
    if text.len() > 64 {
        return Err(LabError::invalid(format!("address {} is too long to be one", quoted(text))));
    }
    Ok(())
}

/// A guest string made safe to print: quoted, escaped, and cut short.
pub fn quoted(text: &str) -> String {
    const SHOW: usize = 40;
    let mut out: String = text.chars().take(SHOW).collect::<String>().escape_debug().collect();
    if text.chars().count() > SHOW {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

fn describe_char(c: char) -> String {
    if c.is_whitespace() {
        "whitespace".into()
    } else if c.is_control() {
        format!("control character {:?}", c)
    } else {
        format!("{c:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn kind<T: std::fmt::Debug>(r: LabResult<T>) -> ErrorKind {
        r.unwrap_err().kind().unwrap()
    }

    #[test]
    fn lab_names_never_make_ambiguous_namespaces() {
        assert!(check_lab_name("pbj").is_ok());
        assert!(check_lab_name("a").is_ok() && check_node_name("b-c").is_ok());
        let err = check_lab_name("a-b").unwrap_err().to_string();
        assert!(err.contains("'-'") && err.contains("<lab>-<node>"), "{err}");
        assert_eq!(lab_name_from("pbj-py"), "pbj_py");
        assert_eq!(lab_name_from(".x"), "x.x");
        assert!(check_lab_name(&lab_name_from(&"é-".repeat(40))).is_ok());
    }

    #[test]
    fn node_names() {
        assert!(check_node_name("pb").is_ok());
        assert!(check_node_name("r1.core-2_a").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "-x", ".hidden", "a b", "a\0b", "host", &"x".repeat(33)] {
            assert_eq!(kind(check_node_name(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        let msg = check_node_name("a/b").unwrap_err().to_string();
        assert!(msg.contains("\"a/b\"") && msg.contains("'/'"), "{msg}");
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("bread-pb-veth").is_ok());
        assert!(check_ifname("x".repeat(15).as_str()).is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "eth%d", "a\tb", "é", &"x".repeat(16)] {
            assert_eq!(kind(check_ifname(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        let msg = check_ifname("veth-much-too-long").unwrap_err().to_string();
        assert!(msg.contains("18 bytes") && msg.contains("15"), "{msg}");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_cidr("10.0.0.10/16").unwrap().to_string(), "10.0.0.10/16");
        assert_eq!(parse_cidr("fd00::10/64").unwrap().to_string(), "fd00::10/64");
        for bad in ["10.0.0.10", "10.0.0.300/16", "10.0.0.1/33", "x/8", "", "10.0.0.1/16 "] {
            assert_eq!(kind(parse_cidr(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        assert!(parse_prefix("10.0.0.0/16").is_ok());
        let msg = parse_prefix("10.0.0.5/16").unwrap_err().to_string();
        assert!(msg.contains("10.0.0.0/16"), "{msg}");
    }

    #[test]
    fn destinations() {
        let via = parse_ip("10.0.0.1").unwrap();
        assert_eq!(parse_destination("default", via).unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(parse_destination("default", parse_ip("fd00::1").unwrap()).unwrap().to_string(), "::/0");
        assert_eq!(kind(parse_destination("fd00::/64", via)), ErrorKind::Invalid);
    }

    #[test]
    fn quoted_escapes_and_cuts() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        assert!(quoted(&"y".repeat(100)).ends_with("...\""));
    }
}
