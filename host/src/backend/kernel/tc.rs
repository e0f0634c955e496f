//! Link conditions with the queueing disciplines of Linux traffic control:
//! `tbf` for a rate, `netem` for delay, jitter, loss, duplication,
//! corruption and reordering. Run through the `tc` program (iproute2) from
//! a thread inside the link's namespace, because netlink-packet-route, the
//! netlink crate nsw uses, has no tbf or netem options to send.

use std::io;
use std::process::{Command, Stdio};

use crate::backend::rules::{Queue, QueueFeatures};

/// Run `tc ARGS` in the calling thread's namespace.
fn tc(args: &[String]) -> io::Result<()> {
    let out = match Command::new(super::tools::program("tc")).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the tc program is not installed (apt-get install iproute2)"));
        }
        Err(e) => return Err(e),
    };
    if out.status.success() {
        return Ok(());
    }
    let why: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    Err(io::Error::other(format!("tc {}: {}", args.join(" "), why.join("; "))))
}

/// The tc arguments of a token bucket for `rate_bps`: a burst of 10 ms of
/// traffic (at least two full frames, which tbf needs to pass any), and a
/// queue of `limit_packets` full frames, or of 50 ms of traffic.
fn tbf_args(rate_bps: u64, limit_packets: Option<u32>) -> Vec<String> {
    let burst = (rate_bps / 8 / 100).max(3028);
    let mut args = vec!["tbf".into(), "rate".into(), format!("{rate_bps}bit"), "burst".into(), burst.to_string()];
    match limit_packets {
        Some(packets) => args.extend(["limit".into(), (packets as u64 * 1514).max(burst).to_string()]),
        None => args.extend(["latency".into(), "50ms".into()]),
    }
    args
}

/// Give the link `ifname` of the calling thread's namespace the queue
/// `queue`, replacing what it had; `None` gives it back the default one.
pub fn set_queue_here(ifname: &str, queue: Option<&Queue>) -> io::Result<()> {
    let dev = |rest: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["qdisc".into()];
        args.extend(rest.iter().map(|s| s.to_string()));
        args.extend(["dev".into(), ifname.to_string()]);
        args
    };
    // Start from the default queue: a root qdisc of another kind cannot be
    // replaced in place. Nothing to delete is fine.
    let _ = tc(&dev(&["del"]).into_iter().chain(["root".to_string()]).collect::<Vec<_>>());
    let Some(queue) = queue else { return Ok(()) };
    match (&queue.netem, queue.rate_bps) {
        (None, None) => Ok(()),
        (None, Some(rate)) => {
            let mut args = dev(&["add"]);
            args.extend(["root".into(), "handle".into(), "1:".into()]);
            args.extend(tbf_args(rate, queue.limit_packets));
            tc(&args)
        }
        (Some(netem), rate) => {
            let mut args = dev(&["add"]);
            args.extend(["root".into(), "handle".into(), "1:".into(), "netem".into()]);
            if netem.delay_us > 0 || netem.jitter_us > 0 {
                args.extend(["delay".into(), format!("{}us", netem.delay_us)]);
                if netem.jitter_us > 0 {
                    args.push(format!("{}us", netem.jitter_us));
                }
            }
            if netem.loss_percent > 0.0 {
                args.extend(["loss".into(), format!("{}%", netem.loss_percent)]);
                if netem.loss_correlation_percent > 0.0 {
                    args.push(format!("{}%", netem.loss_correlation_percent));
                }
            }
            for (word, percent) in [("duplicate", netem.duplicate_percent), ("corrupt", netem.corrupt_percent), ("reorder", netem.reorder_percent)] {
                if percent > 0.0 {
                    args.extend([word.into(), format!("{percent}%")]);
                }
            }
            if let Some(limit) = queue.limit_packets {
                args.extend(["limit".into(), limit.to_string()]);
            }
            tc(&args)?;
            // A rate under netem: a token bucket as its child.
            if let Some(rate) = rate {
                let mut args = dev(&["add"]);
                args.extend(["parent".into(), "1:1".into(), "handle".into(), "10:".into()]);
                args.extend(tbf_args(rate, queue.limit_packets));
                tc(&args)?;
            }
            Ok(())
        }
    }
}

/// What this kernel offers, tried on the loopback of a namespace made for
/// the purpose on the calling thread (it goes when the thread ends).
pub fn probe_features_here() -> io::Result<QueueFeatures> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    let try_qdisc = |kind: &[&str]| {
        let mut args: Vec<String> = ["qdisc", "add", "dev", "lo", "root"].map(String::from).to_vec();
        args.extend(kind.iter().map(|s| s.to_string()));
        let ok = tc(&args).is_ok();
        let _ = tc(&["qdisc", "del", "dev", "lo", "root"].map(String::from));
        ok
    };
    let netem = try_qdisc(&["netem", "delay", "1ms"]);
    let tbf = try_qdisc(&["tbf", "rate", "1mbit", "burst", "3028", "latency", "50ms"]);
    let nft_loss = super::nft::ingress_works_here("lo").unwrap_or(false);
    Ok(QueueFeatures { netem, tbf, nft_loss })
}
