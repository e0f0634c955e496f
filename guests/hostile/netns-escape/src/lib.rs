//! Namespace names that try to leave /run/netns or confuse it.
//!
//!     nsw run hostile_netns_escape.wasm -- CASE
//!
//! CASE is a name to try, or one of: `empty`, `long`, `nul`, `escapes`.

use nsw_sdk::{Guest, topology};

struct Attack;

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let case = args.first().cloned().unwrap_or_default();
        let name = match case.as_str() {
            "empty" => String::new(),
            "long" => "x".repeat(300),
            "nul" => "evil\0name".to_string(),
            // Non-UTF-8-looking bytes as text, and a real non-ASCII name.
            "escapes" => "\\xff\\xfe\u{ff}".to_string(),
            other => other.to_string(),
        };
        topology::create_netns("decoy")?;
        topology::create_netns(&name)?;
        Err(format!("created a netns named {name:?}"))
    }
}

nsw_sdk::export!(Attack);
