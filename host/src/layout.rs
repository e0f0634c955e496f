//! The files nsw keeps, and where: per lab in the state directory
//! ([`crate::places`]) its journal, its lock, the record of its privilege
//! boundary and its programs' output; beside them the registry of shared
//! settings; and the compiled cache's part written from behind the
//! boundary. One place, so that the journal, the broker (which lets the
//! lab's side reach exactly these) and teardown agree.

use std::path::{Path, PathBuf};

/// A lab's journal: `LAB.journal`.
pub fn journal(state: &Path, lab: &str) -> PathBuf {
    state.join(format!("{lab}.journal"))
}

/// A lab's lock: `LAB.lock`.
pub fn lock(state: &Path, lab: &str) -> PathBuf {
    state.join(format!("{lab}.lock"))
}

/// Where root records the user namespace a lab was built in behind the
/// privilege boundary: `LAB.userns` (root's; the lab's side never reaches it).
pub fn boundary_record(state: &Path, lab: &str) -> PathBuf {
    state.join(format!("{lab}.userns"))
}

/// The range of ids root reserved for a lab behind the privilege boundary:
/// `LAB.ids` (root's; see [`crate::boundary`]).
pub fn id_range(state: &Path, lab: &str) -> PathBuf {
    state.join(format!("{lab}.ids"))
}

/// The directory of a lab's programs' output: `LAB.d`.
pub fn outputs(state: &Path, lab: &str) -> PathBuf {
    state.join(format!("{lab}.d"))
}

/// The file of one program's output in [`outputs`], by its journal id.
pub fn program_log(state: &Path, lab: &str, program: u64) -> PathBuf {
    outputs(state, lab).join(format!("{program}.log"))
}

/// The lab a file of the state directory belongs to, if it is a journal
/// or a lock (after a crash at the wrong moment a lab may have only a lock).
pub fn lab_of_file(name: &str) -> Option<&str> {
    name.strip_suffix(".journal").or_else(|| name.strip_suffix(".lock"))
}

/// Whether `name` is a file of lab `lab` in the state directory that its
/// side of the boundary may open (its lock and journal).
pub fn is_lab_file(name: &str, lab: &str) -> bool {
    name == format!("{lab}.lock") || name == format!("{lab}.journal")
}

/// The registry of settings of the machine that labs share
/// ([`crate::shared_settings`]).
pub fn shared_settings(state: &Path) -> PathBuf {
    state.join("shared")
}

/// The part of the compiled cache written from behind the privilege
/// boundary, which privileged runs never load from.
pub fn contained_cache(cache: &Path) -> PathBuf {
    cache.join(CONTAINED)
}

/// The name of that part.
pub const CONTAINED: &str = "contained";

/// Whether `name` is a file of the compiled cache: a compiled component,
/// or one being written.
pub fn is_cache_file(name: &str) -> bool {
    name.ends_with(".cwasm") || name.contains(".tmp")
}

/// Lab scripts pulled from registries, kept by digest beside the compiled
/// cache: each manifest, each component, and the tags seen.
pub fn pulled(cache: &Path) -> PathBuf {
    cache.join("oci")
}

/// A pulled manifest or component: `oci/manifests/sha256-HEX` or
/// `oci/blobs/sha256-HEX` (`digest` is checked `sha256:HEX`).
pub fn pulled_file(cache: &Path, manifest: bool, digest: &str) -> PathBuf {
    pulled(cache).join(if manifest { "manifests" } else { "blobs" }).join(digest.replace(':', "-"))
}

/// What each tag named when this user last ran it (`oci/tags.json`).
pub fn pulled_tags(cache: &Path) -> PathBuf {
    pulled(cache).join("tags.json")
}

/// The lock its writers take (`oci/tags.lock`).
pub fn pulled_tags_lock(cache: &Path) -> PathBuf {
    pulled(cache).join("tags.lock")
}
