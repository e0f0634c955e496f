//! Where nsw keeps things: the machine's places when it runs as root, the
//! user's own when it does not (see [`crate::rootless`]). Chosen once, at
//! start, before anything is read or made.

use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct Places {
    /// Journals and locks, one of each per lab.
    pub state: PathBuf,
    /// Mount points of the labs' network namespaces (`ip netns`'s own
    /// directory for root).
    pub netns: PathBuf,
    /// Compiled components.
    pub cache: PathBuf,
    /// Set for an ordinary user: the uid it is outside its user namespace.
    pub rootless: Option<u32>,
}

static PLACES: OnceLock<Places> = OnceLock::new();

impl Places {
    fn machine() -> Places {
        Places {
            state: PathBuf::from("/run/nsw"),
            netns: PathBuf::from("/run/netns"),
            cache: std::env::var_os("NSW_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/nsw")),
            rootless: None,
        }
    }

    /// An ordinary user's: state under `$XDG_RUNTIME_DIR/nsw` (or
    /// `~/.local/state/nsw`), the cache under `$XDG_CACHE_HOME/nsw` (or
    /// `~/.cache/nsw`).
    pub fn user(uid: u32) -> Places {
        let env = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = env("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let root = env("XDG_RUNTIME_DIR").map(|d| d.join("nsw")).unwrap_or_else(|| home.join(".local/state/nsw"));
        let cache = env("NSW_CACHE_DIR").or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("nsw"))).unwrap_or_else(|| home.join(".cache/nsw"));
        Places { state: root.join("labs"), netns: root.join("netns"), cache, rootless: Some(uid) }
    }

    /// The directory that holds everything of the user's (its keeper's
    /// files, the labs, the namespaces' mount points).
    pub fn user_root(&self) -> Option<PathBuf> {
        self.rootless.and_then(|_| self.state.parent().map(PathBuf::from))
    }
}

/// The places of this process: the machine's unless [`set`] chose others.
pub fn get() -> &'static Places {
    PLACES.get_or_init(Places::machine)
}

/// Choose the places, once, before [`get`] is first called.
pub fn set(places: Places) {
    let _ = PLACES.set(places);
}

/// The cache directory of whoever runs nsw, known before [`set`] (nsw
/// fetches lab scripts before an ordinary user's places are chosen).
pub fn own_cache() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => Places::machine().cache,
        uid => Places::user(uid).cache,
    }
}
