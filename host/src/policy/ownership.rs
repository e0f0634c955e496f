//! What is a lab's when its journal cannot be trusted. A lab built behind
//! the privilege boundary ([`crate::boundary`]) wrote its journal from
//! there, so root takes as the lab's only what is named for the lab and
//! lies inside the user namespace it was built in: the broker before it
//! mounts a namespace, teardown before it removes one or stops a process,
//! `nsw link` before it changes one. The facts (who owns what) come from
//! the backend; the verdict is given here, once.

/// Why something is left alone: it is not inside the lab's user namespace.
pub const OUTSIDE: &str = "outside the user namespace the lab was built in (behind nsw's privilege boundary)";

/// Why the namespace `name`, owned by the user namespace `owner` (none:
/// nothing is mounted there), is not lab `lab`'s, whose user namespace is
/// `boundary`; `None` if it may be the lab's.
pub fn netns_outside(name: &str, lab: &str, owner: Option<u64>, boundary: u64) -> Option<String> {
    if !crate::naming::netns_of_lab(name, lab) {
        return Some(format!("netns {name} is not a namespace name of lab {lab}"));
    }
    match owner {
        Some(owner) if owner != boundary => Some(OUTSIDE.to_string()),
        _ => None,
    }
}

/// Why a process in the user namespace `owner` (none: it is gone) is not
/// the lab's; `None` if it may be.
pub fn process_outside(owner: Option<u64>, boundary: u64) -> Option<&'static str> {
    match owner {
        Some(owner) if owner != boundary => Some(OUTSIDE),
        _ => None,
    }
}

/// Objects of the machine's namespace are never a boundary lab's: its
/// side could not touch that namespace, whatever its journal says.
pub fn machine_object_outside(boundary: Option<u64>) -> Option<&'static str> {
    boundary.map(|_| OUTSIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labs_names_inside_its_user_namespace_are_its() {
        assert_eq!(netns_outside("web-h1", "web", Some(7), 7), None);
        assert_eq!(netns_outside("web", "web", None, 7), None);
        assert!(netns_outside("web-h1", "web", Some(8), 7).is_some());
        assert!(netns_outside("webby", "web", Some(7), 7).is_some());
        assert_eq!(process_outside(Some(7), 7), None);
        assert_eq!(process_outside(Some(1), 7), Some(OUTSIDE));
    }
}
