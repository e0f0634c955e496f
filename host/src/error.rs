//! The error every lab operation returns. Its kinds are the WIT `error`
//! variant one for one, plus `Trap` for host faults that must stop the guest.

use std::fmt;

/// Which WIT error variant a failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Denied,
    Invalid,
    Exists,
    NotFound,
    Quota,
    Os,
}

impl ErrorKind {
    /// The variant's name as the WIT spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Denied => "denied",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Exists => "exists",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Quota => "quota",
            ErrorKind::Os => "os",
        }
    }

    /// The kind [`ErrorKind::as_str`] names.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        [ErrorKind::Denied, ErrorKind::Invalid, ErrorKind::Exists, ErrorKind::NotFound, ErrorKind::Quota, ErrorKind::Os].into_iter().find(|k| k.as_str() == name)
    }
}

/// A failed lab operation, with a message that names the object.
#[derive(Debug)]
pub enum LabError {
    /// Reported to the guest as the WIT `error` variant.
    Guest { kind: ErrorKind, message: String },
    /// A fault of the host itself (bad handle, journal I/O): the guest traps.
    Trap(anyhow::Error),
}

impl LabError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        LabError::Guest { kind, message: message.into() }
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Exists, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn quota(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Quota, message)
    }

    /// The kernel lacks a feature the call needs: an `os` error whose
    /// message starts with `unsupported:` and names it (the WIT's error
    /// variant stays as 0.1.0 had it, so older scripts keep running).
    pub fn unsupported(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Os, format!("unsupported: {message}"))
    }

    /// The run was told to stop: the operation does not start, the guest
    /// traps, and the lab is rolled back.
    pub fn stopped() -> Self {
        LabError::Trap(anyhow::Error::new(crate::stop::Stopped))
    }

    /// A kernel failure while doing `what` (e.g. "create veth veth-pb"),
    /// classified by errno so that a taken name reads as `exists`.
    pub fn os(what: &str, err: &std::io::Error) -> Self {
        if let Some(missing) = err.get_ref().and_then(|e| e.downcast_ref::<Unsupported>()) {
            return Self::unsupported(format!("{what}: {missing}"));
        }
        let kind = match err.raw_os_error() {
            Some(libc::EEXIST) => ErrorKind::Exists,
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ESRCH) => ErrorKind::NotFound,
            Some(libc::EPERM) | Some(libc::EACCES) => ErrorKind::Denied,
            _ => ErrorKind::Os,
        };
        Self::new(kind, format!("{what}: {}", errno_text(err)))
    }

    /// The same error, its message saying where (`on eth0 in netns x`).
    pub fn context(self, place: &str) -> Self {
        match self {
            LabError::Guest { kind, message } => LabError::Guest { kind, message: format!("{message} {place}") },
            trap => trap,
        }
    }

    /// The message without its kind.
    pub fn message(&self) -> String {
        match self {
            LabError::Guest { message, .. } => message.clone(),
            LabError::Trap(e) => format!("{e:#}"),
        }
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            LabError::Guest { kind, .. } => Some(*kind),
            LabError::Trap(_) => None,
        }
    }
}

/// What a backend reports when the machine lacks what an operation needs
/// (a kernel feature, a device it may not open): carried inside an
/// `io::Error`, it becomes the `unsupported:` error the WIT promises.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

impl Unsupported {
    pub fn io(what: impl Into<String>) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, Unsupported(what.into()))
    }
}

/// The kernel's errno text without Rust's " (os error N)" suffix.
pub fn errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Guest { kind, message } => write!(f, "{}: {message}", kind.as_str()),
            LabError::Trap(e) => write!(f, "host fault: {e:#}"),
        }
    }
}

impl std::error::Error for LabError {}

impl From<wasmtime::component::ResourceTableError> for LabError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        LabError::Trap(e.into())
    }
}

pub type LabResult<T> = Result<T, LabError>;

/// A quota whose end stops the script instead of failing one more call
/// (the calls that may fail: a script looping on a failing call would
/// otherwise never stop). The message names the limit and its flag.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct QuotaExhausted(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classifies_kind() {
        let e = LabError::os("create bridge brd1", &std::io::Error::from_raw_os_error(libc::EEXIST));
        assert_eq!(e.kind(), Some(ErrorKind::Exists));
        assert_eq!(e.to_string(), "exists: create bridge brd1: File exists");
        let e = LabError::os("x", &std::io::Error::from_raw_os_error(libc::ENETUNREACH));
        assert_eq!(e.kind(), Some(ErrorKind::Os));
    }
}
