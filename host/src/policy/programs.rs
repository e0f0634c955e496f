//! What may run in a lab's nodes: programs of the machine (`--allow
//! exec`) and WebAssembly services (no grant: their sockets exist only in
//! their node).

use std::path::{Path, PathBuf};

use super::grants::Grants;
use super::names::check_node_name;
use crate::error::{LabError, LabResult};

/// May programs run here at all, for `what` (`run "ip" in netns x`)? Who
/// they run as, if so.
pub fn may_run_programs(grants: &Grants, what: &str, in_machine: bool) -> LabResult<(u32, u32)> {
    let Some(user) = grants.exec_as() else {
        return Err(LabError::denied(format!("{what}: running programs was not granted (nsw run --allow exec)")));
    };
    if in_machine {
        return Err(LabError::denied(format!("{what}: that is the machine's own namespace; programs run in the lab's nodes")));
    }
    Ok(user)
}

/// Was `program` (resolved from the script's `argv[0]`) granted? `resolve`
/// finds a granted name as the program was found.
pub fn check_granted_program(grants: &Grants, what: &str, program: &Path, resolve: impl Fn(&str) -> Option<PathBuf>) -> LabResult<()> {
    if let Some(allowed) = grants.exec.as_ref().filter(|list| !list.is_empty()) {
        if !allowed.iter().filter_map(|a| resolve(a)).any(|a| a == program) {
            return Err(LabError::denied(format!("{what}: {} is not among the programs granted (--allow exec={})", program.display(), allowed.join(","))));
        }
    }
    Ok(())
}

/// May a service `name` of `size` bytes start, for `what`? `max` is
/// `--max-component`.
pub fn admit_service(what: &str, name: &str, size: usize, max: usize, in_machine: bool) -> LabResult<()> {
    check_node_name(name).map_err(|e| LabError::invalid(e.message().replace("netns name", "service name")))?;
    if in_machine {
        return Err(LabError::denied(format!("{what}: that is the machine's own namespace; a service runs in a namespace of the lab's own")));
    }
    if size > max {
        return Err(super::quota_error(&format!("{what}: the component is {size} bytes"), format!("{} MiB", max >> 20), "--max-component"));
    }
    Ok(())
}
