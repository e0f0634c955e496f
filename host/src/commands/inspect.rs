//! `nsw inspect FILE.wasm`: what a script asks for, without running it.

use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Status, show};

#[derive(Args)]
pub struct InspectArgs {
    /// The lab script.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn exec(args: InspectArgs) -> CommandResult {
    let file = &args.file;
    let info = crate::inspect::read(file)?;
    let imports = crate::inspect::report(&info);
    let mut needs: Vec<&str> = imports.iter().filter_map(|i| i.needs).collect();
    needs.sort();
    needs.dedup();
    let runnable = imports.iter().all(|i| i.kind != "unknown");
    if args.json {
        let value = serde_json::json!({
            "file": file.display().to_string(),
            "size": info.size,
            "sha256": info.sha256,
            "exports": info.exports,
            "imports": imports,
            "grants_needed": needs,
            "runnable": runnable,
        });
        show!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(Status::Success);
    }
    show!("{}: WebAssembly component, {} bytes, sha256 {}", file.display(), info.size, info.sha256);
    show!("exports: {}", if info.exports.is_empty() { "nothing".to_string() } else { info.exports.join(", ") });
    for (kind, title) in [("capability", "capabilities it asks for"), ("wasi", "WASI it imports"), ("unknown", "imports nsw does not provide")] {
        let group: Vec<_> = imports.iter().filter(|i| i.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        show!("{title}:");
        // `types` holds the handle and error types: no capability.
        for import in group.into_iter().filter(|i| !i.name.starts_with("nsw:lab/types")) {
            let grant = match import.needs {
                Some(g) => format!("  [needs --allow {g}]"),
                None => String::new(),
            };
            show!("  {:<38} {}{grant}", import.name, import.what);
        }
    }
    if !runnable {
        show!("nsw cannot run it.");
    } else if needs.is_empty() {
        show!("grants needed: none (it runs with the defaults)");
    } else {
        let flags: Vec<String> = needs.iter().map(|g| format!("--allow {g}")).collect();
        show!("grants needed: {}", flags.join(" "));
    }
    if !info.exports.iter().any(|e| e == "run") {
        show!("note: it does not export run, so it is not a lab script");
    }
    Ok(Status::Success)
}
