//! `nsw wit [DIR]`: the WIT this nsw implements (built into the binary):
//! printed, or written to DIR/nsw.wit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{CommandResult, Status, say, show};

/// The guest contract, as this binary was built with it.
pub const WIT: &str = include_str!("../../../wit/nsw.wit");

#[derive(Args)]
pub struct WitArgs {
    /// Write DIR/nsw.wit instead of printing it.
    dir: Option<PathBuf>,
}

pub async fn exec(args: WitArgs) -> CommandResult {
    match args.dir {
        None => show!("{}", WIT.trim_end()),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("nsw.wit");
            std::fs::write(&path, WIT).with_context(|| format!("writing {}", path.display()))?;
            say!("nsw: wrote {}", path.display());
        }
    }
    Ok(Status::Success)
}
