//! `nsw capture LAB NODE:IF`: the packets of one interface of a lab, as
//! pcapng: to a file (`-w FILE`), or to stdout when it is a pipe (`nsw
//! capture pbj pb:veth-pb | wireshark -k -i -`) or with `-w -`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{CommandResult, Status, catch_signals, require_root, say};
use crate::backend::{self, Until};
use crate::journal::{Mode, StateDir};
use crate::stop::Stop;

#[derive(Args)]
pub struct CaptureArgs {
    lab: String,
    /// The node and the interface: `pb:veth-pb` (`host:...` for a
    /// contained lab's host).
    target: String,
    /// Write pcapng to FILE (`-` for stdout).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
}

pub async fn exec(args: CaptureArgs) -> CommandResult {
    require_root("capture")?;
    let Some((node, ifname)) = args.target.split_once(':') else {
        return Err(anyhow::anyhow!("give the interface as NODE:IF (e.g. pb:veth-pb)").into());
    };
    crate::policy::check_ifname(ifname).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let state = StateDir::system();
    let record = state.read(&args.lab)?.with_context(|| format!("there is no lab {} (see nsw ls)", args.lab))?;
    // The machine's namespace is a host-net lab's host; else the node's own.
    let netns = if node == crate::naming::HOST && record.info.mode == Mode::HostNet { None } else { Some(super::exec::resolve(&state, &args.lab, node)?) };
    // In the machine's namespace only the lab's own links, by identity (as
    // `nsw link` and teardown have them); a node's namespace is the lab's.
    let index = match netns {
        Some(_) => None,
        None => Some(machine_link_of(&record, ifname)?),
    };
    let out: Box<dyn std::io::Write + Send> = match &args.write {
        Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdout()),
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None if !std::io::stdout().is_terminal() => Box::new(std::io::stdout()),
        None => return Err(anyhow::anyhow!("pcapng is binary: give -w FILE, or pipe it (nsw capture {} {} | wireshark -k -i -)", args.lab, args.target).into()),
    };
    let until = Until { count: args.count, duration: args.duration.map(Duration::from_secs_f64) };
    let stop = Stop::new();
    catch_signals(stop.clone())?;
    let (ifname, shown) = (ifname.to_string(), args.target.clone());
    let captured = std::thread::Builder::new()
        .name("nsw-capture".into())
        .spawn(move || backend::capture(netns.as_deref(), &ifname, index, out, until, &stop, || say!("nsw: capturing on {shown} (Ctrl-C ends it)")))?
        .join()
        .map_err(|_| anyhow::anyhow!("the capture thread panicked"))?
        .with_context(|| format!("capturing on {}", args.target))?;
    say!("nsw: {} packet{} captured, {} dropped by the kernel", captured.packets, if captured.packets == 1 { "" } else { "s" }, captured.dropped);
    Ok(Status::Success)
}

/// The index of the link `ifname` the lab made in the machine's namespace.
fn machine_link_of(record: &crate::journal::LabRecord, ifname: &str) -> anyhow::Result<u32> {
    use crate::journal::{NetnsRef, Object};
    let ours = |o: &&crate::journal::OwnedObject| matches!(&o.object, Object::Link { netns: NetnsRef::Machine, .. }) && o.confirmed;
    let found = record.objects.iter().filter(ours).find(|o| matches!(&o.object, Object::Link { name, .. } if name == ifname));
    match found.and_then(|o| o.ident) {
        Some(index) => Ok(index as u32),
        None => {
            let theirs: Vec<String> = record
                .objects
                .iter()
                .filter(ours)
                .filter_map(|o| match &o.object {
                    Object::Link { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect();
            anyhow::bail!(
                "{ifname} is not a link lab {} made in the machine's namespace (its links there: {})",
                record.info.name,
                if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") }
            )
        }
    }
}
