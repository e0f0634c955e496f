//! Write nsw lab scripts in Rust.
//!
//! ```ignore
//! use nsw_sdk::{Guest, topology};
//!
//! struct MyLab;
//!
//! impl Guest for MyLab {
//!     fn run(_args: Vec<String>) -> Result<(), String> {
//!         let node = topology::create_netns("a").map_err(|e| e.to_string())?;
//!         println!("made {}", node.name());
//!         Ok(())
//!     }
//! }
//!
//! nsw_sdk::export!(MyLab);
//! ```
//!
//! The capability interfaces (`topology`, `address`, `route`, `nat`,
//! `probe`, `check`, `service`, `conditions`, `firewall`, and `uplink` and `process`, which need a
//! grant) are re-exported at the top; a script that never calls one does
//! not import it, so it never needs the grant for it.

/// The generated bindings; everything useful is re-exported below.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        // The widest world: Rust keeps only the imports a script uses.
        world: "everything",
        pub_export_macro: true,
        default_bindings_module: "nsw_sdk::bindings",
    });
}

pub use bindings::{Guest, export};
pub use bindings::nsw::lab::types::{Error, IpFamily, Link, Netns};
pub use bindings::nsw::lab::{address, check, conditions, files, firewall, nat, probe, process, route, service, topology, types, uplink};

/// A perfect link: no condition set. Start from it to set a few:
/// `LinkConditions { loss_percent: Some(2.0), ..PERFECT_LINK }`.
pub const PERFECT_LINK: conditions::LinkConditions = conditions::LinkConditions {
    rate_bps: None,
    delay_us: None,
    jitter_us: None,
    loss_percent: None,
    loss_correlation_percent: None,
    duplicate_percent: None,
    corrupt_percent: None,
    reorder_percent: None,
    queue_packets: None,
};

/// A veth pair between two nodes, each end given its address and up:
/// `wire((&r1, "eth-r2", "10.12.0.1/30"), (&r2, "eth-r1", "10.12.0.2/30"))`.
/// Returns `a`'s end (to take it down later, say).
pub fn wire(a: (&Netns, &str, &str), b: (&Netns, &str, &str)) -> Result<Link, Error> {
    let (la, lb) = topology::create_veth(a.1, a.0, b.1, b.0)?;
    address::add(&la, a.2)?;
    address::add(&lb, b.2)?;
    topology::set_up(&la)?;
    topology::set_up(&lb)?;
    Ok(la)
}

/// Ping `to` from `from` with one-second echoes until one comes back,
/// `tries` at most: whether one did (a routing daemon converging, say).
pub fn reaches(from: &Netns, to: &str, tries: u32) -> Result<bool, Error> {
    let options = probe::PingOptions { count: 1, timeout_ms: 1000 };
    for _ in 0..tries {
        if probe::ping(from, to, options)?.received > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Error {
    /// The variant's name as the WIT spells it (`invalid`, `exists`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Invalid(_) => "invalid",
            Error::Exists(_) => "exists",
            Error::NotFound(_) => "not-found",
            Error::Quota(_) => "quota",
            Error::Os(_) => "os",
        }
    }

    /// The host's message, which names the object concerned.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::Invalid(m) | Error::Exists(m) | Error::NotFound(m) | Error::Quota(m) | Error::Os(m) => m,
        }
    }
}

/// `run` returns `Result<(), String>`: with this, `?` turns a host error
/// into its `kind: message` text.
impl From<Error> for String {
    fn from(e: Error) -> String {
        format!("{}: {}", e.kind(), e.message())
    }
}

/// Ping `target` from `source` until a reply comes back, at most `tries`
/// times, one echo each with a one-second wait. Returns the last stats.
pub fn ping_until_reply(source: &Netns, target: &str, tries: u32) -> Result<probe::PingStats, Error> {
    let options = probe::PingOptions { count: 1, timeout_ms: 1000 };
    let mut stats = probe::ping(source, target, options)?;
    for _ in 1..tries {
        if stats.received > 0 {
            break;
        }
        stats = probe::ping(source, target, options)?;
    }
    Ok(stats)
}
