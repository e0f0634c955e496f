//! Where a script comes from, for the commands that take one (`run`,
//! `test`, `plan`, `inspect`): a file, or `oci://REF`, fetched and judged
//! by [`crate::sharing`] before nsw splits at the privilege boundary.

use clap::Args;

use crate::sharing::{self, FetchOptions, Fetched};

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Scripts by reference (oci://)")]
pub struct SourceArgs {
    /// Speak plain HTTP to the registry (a registry of your own on this
    /// machine), not HTTPS.
    #[arg(long)]
    pub plain_http: bool,
    /// Run a script fetched by reference that no trusted key signed (never
    /// one whose signature does not verify, nor a re-pushed tag).
    #[arg(long)]
    pub insecure_unsigned: bool,
    /// Run only references that nsw.lock pins; change nothing in it.
    #[arg(long)]
    pub locked: bool,
}

impl SourceArgs {
    /// If `file` is a reference, fetch it: `file` becomes the component
    /// in the store. What was fetched, for the journal and the output.
    pub fn fetch(&self, file: &mut std::path::PathBuf, to_run: bool, limits: &crate::policy::Limits) -> anyhow::Result<Option<Fetched>> {
        if !sharing::is_reference(file) {
            return Ok(None);
        }
        let options = FetchOptions {
            plain_http: self.plain_http,
            insecure_unsigned: self.insecure_unsigned,
            locked: self.locked,
            to_run,
            max_component_bytes: limits.component_bytes,
            store_bytes: limits.cache_bytes,
        };
        let fetched = sharing::fetch(&file.to_string_lossy(), &options)?;
        *file = fetched.path.clone();
        Ok(Some(fetched))
    }
}
