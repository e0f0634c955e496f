//! `nsw logs LAB [NODE[/PROGRAM]] [-f]`: what a lab's programs printed
//! (a program started with `process.spawn` keeps its output beside the
//! journal, 1 MiB at most), named by node and program; `-f` follows it
//! until the lab goes down.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::{CommandResult, Failure, Status, show};
use crate::encode::terminal::sanitize;
use crate::journal::{NetnsRef, StateDir};

#[derive(Args)]
pub struct LogsArgs {
    lab: String,
    /// Only this node's programs (`NODE`), or one program of it
    /// (`NODE/PROGRAM`: the program as the script named it, without its
    /// directory).
    which: Option<String>,
    /// Keep printing what they print, until the lab goes down.
    #[arg(short, long)]
    follow: bool,
}

/// One program's output, read so far up to `offset`.
struct Log {
    label: String,
    path: PathBuf,
    offset: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

impl Log {
    /// Print what the program wrote since the last time, whole lines (and,
    /// with `to_end`, the line it has not ended yet).
    fn print_new(&mut self, prefixed: bool, to_end: bool) {
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            let mut more = Vec::new();
            if file.seek(SeekFrom::Start(self.offset)).is_ok() && file.read_to_end(&mut more).is_ok() {
                self.offset += more.len() as u64;
                self.partial.extend_from_slice(&more);
            }
        }
        let mut lines: Vec<Vec<u8>> = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            lines.push(self.partial.drain(..=end).take(end).collect());
        }
        if to_end && !self.partial.is_empty() {
            lines.push(std::mem::take(&mut self.partial));
        }
        for line in lines {
            // A program's output may hold anything: only what a terminal
            // shows as text reaches it.
            let line = sanitize(&String::from_utf8_lossy(&line));
            if prefixed {
                show!("{} | {line}", self.label);
            } else {
                show!("{line}");
            }
        }
    }
}

pub async fn exec(args: LogsArgs) -> CommandResult {
    let state = StateDir::system();
    let mut logs = find(&state, &args).map_err(|e| Failure::new(Status::Usage, e))?;
    let prefixed = logs.len() > 1;
    loop {
        // Not following: all there is, now. Following: whole lines, until
        // the lab's journal is gone (then the rest).
        let gone = args.follow && !state.journal_path(&args.lab).exists();
        for log in &mut logs {
            log.print_new(prefixed, !args.follow || gone);
        }
        if !args.follow || gone {
            return Ok(Status::Success);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The logs `args` ask for, in the order their programs started.
fn find(state: &StateDir, args: &LogsArgs) -> Result<Vec<Log>> {
    let lab = &args.lab;
    let Some(record) = state.read(lab)? else {
        bail!("there is no lab {lab} (see nsw ls)");
    };
    let node_of = |netns: &NetnsRef| match netns {
        NetnsRef::Named(name) => record.namespaces().find(|(n, _)| n == name).map_or_else(|| name.clone(), |(_, node)| node.to_string()),
        NetnsRef::Machine => crate::naming::HOST.to_string(),
    };
    // (node, program, path)
    let kept: Vec<(String, String, PathBuf)> = record
        .programs
        .iter()
        .map(|(id, netns, program)| {
            let name = program.rsplit('/').next().unwrap_or(program);
            (node_of(netns), sanitize(name), crate::layout::program_log(state.path(), lab, *id as u64))
        })
        .filter(|(_, _, path)| path.exists())
        .collect();
    if kept.is_empty() {
        bail!("no program of lab {lab} kept its output (programs a script starts with process.spawn do)");
    }
    let wanted = |node: &str, program: &str| match args.which.as_deref().map(|w| w.split_once('/').unwrap_or((w, ""))) {
        None => true,
        Some((n, "")) => n == node,
        Some((n, p)) => n == node && p == program,
    };
    let chosen: Vec<&(String, String, PathBuf)> = kept.iter().filter(|(node, program, _)| wanted(node, program)).collect();
    if chosen.is_empty() {
        let all: Vec<String> = kept.iter().map(|(node, program, _)| format!("{node}/{program}")).collect();
        bail!("lab {lab} has no program {}; its programs with output are: {}", sanitize(args.which.as_deref().unwrap_or_default()), all.join(", "));
    }
    Ok(chosen
        .iter()
        .map(|(node, program, path)| {
            // Two programs of one name in one node: told apart by the
            // order they started in.
            let same: Vec<&PathBuf> = kept.iter().filter(|(n, p, _)| n == node && p == program).map(|(_, _, path)| path).collect();
            let label = match same.iter().position(|p| *p == path) {
                Some(i) if same.len() > 1 => format!("{node}/{program}#{}", i + 1),
                _ => format!("{node}/{program}"),
            };
            Log { label, path: path.clone(), offset: 0, partial: Vec::new() }
        })
        .collect())
}
