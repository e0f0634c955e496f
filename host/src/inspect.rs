//! What a component is and asks for, read from its binary without
//! compiling or running it (`nsw inspect`, and the import check of `nsw
//! run`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload};

use crate::policy::{self, Grants, ImportVerdict};

#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    pub size: usize,
    pub sha256: String,
    /// Top-level imports, as the component names them.
    pub imports: Vec<String>,
    /// Top-level exports.
    pub exports: Vec<String>,
}

/// Read a component's top-level imports and exports.
pub fn read(path: &Path) -> Result<ComponentInfo> {
    let wasm = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&wasm).with_context(|| format!("{} is not a WebAssembly component", path.display()))
}

pub fn parse(wasm: &[u8]) -> Result<ComponentInfo> {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { encoding, .. } if depth == 0 && encoding != wasmparser::Encoding::Component => {
                bail!("it is a core WebAssembly module; nsw runs components (build for wasm32-wasip2)");
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let sha256 = Sha256::digest(wasm).iter().map(|b| format!("{b:02x}")).collect();
    Ok(ComponentInfo { size: wasm.len(), sha256, imports, exports })
}

/// One import, judged against the default grants.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub name: String,
    /// `capability`, `wasi` or `unknown`.
    pub kind: &'static str,
    pub what: String,
    /// The `--allow` grant it needs, if any.
    pub needs: Option<&'static str>,
}

pub fn report(info: &ComponentInfo) -> Vec<ImportReport> {
    let defaults = Grants::default();
    info.imports
        .iter()
        .map(|name| match policy::judge_import(name, &defaults) {
            ImportVerdict::Granted(cap) => {
                ImportReport { name: name.clone(), kind: "capability", what: cap.what.into(), needs: None }
            }
            ImportVerdict::NeedsGrant(cap) => {
                ImportReport { name: name.clone(), kind: "capability", what: cap.what.into(), needs: cap.grant.map(crate::policy::Grant::name) }
            }
            ImportVerdict::Wasi(what) => ImportReport { name: name.clone(), kind: "wasi", what: what.into(), needs: None },
            ImportVerdict::Unknown => {
                ImportReport { name: name.clone(), kind: "unknown", what: "not provided by nsw: the script cannot run".into(), needs: None }
            }
        })
        .collect()
}
