//! Host bindings generated from `wit/nsw.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    // The widest world, so one linker serves every script; the policy
    // decides what each one may import.
    world: "everything",
    // Kernel work is async on the host; to the guest every call blocks.
    // `trappable` lets a host fault (not a guest mistake) stop the guest.
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "nsw:lab/types.error" => crate::error::LabError,
    },
    with: {
        "nsw:lab/types.netns": crate::imports::types::NetnsHandle,
        "nsw:lab/types.link": crate::imports::types::LinkHandle,
        "nsw:lab/service.service": crate::imports::service::ServiceHandle,
        "nsw:lab/process.process": crate::imports::process::ProcessHandle,
    },
});
