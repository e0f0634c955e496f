//! `nsw link LAB NODE:IF`: impair, break or change one link of a running
//! lab, as a script's `conditions` and `topology` calls would (the same
//! checks, the same journal lines), or show what is set on it.

use std::time::Duration;

use clap::Args;

use super::{CommandResult, Failure, Status, require_root, say, show};
use crate::backend::{self, Survey, Teardown};
use crate::journal::{Setting, StateDir};
use crate::lab::Lab;
use crate::lab::conditions::Conditions;
use crate::session::Session;
use crate::stop::Stop;

#[derive(Args)]
pub struct LinkArgs {
    lab: String,
    /// The node and the interface: `pb:veth-pb` (`host:...` for the host).
    target: String,
    /// A rate limit on what it sends: `20mbit`, `1.5gbit`, `500kbit`, bits
    /// per second as a number, or `none`.
    #[arg(long, value_name = "RATE")]
    rate: Option<String>,
    /// Added delay: `10ms`, `500us`, `1s`, or `none` (needs netem).
    #[arg(long, value_name = "TIME")]
    delay: Option<String>,
    /// Variation of the delay, or `none` (needs netem).
    #[arg(long, value_name = "TIME")]
    jitter: Option<String>,
    /// Packets lost at random: `20%`, or `none`.
    #[arg(long, value_name = "PERCENT")]
    loss: Option<String>,
    /// Remove every condition: a perfect wire again.
    #[arg(long, conflicts_with_all = ["rate", "delay", "jitter", "loss"])]
    clear: bool,
    /// Take the link down (a failure).
    #[arg(long, conflicts_with = "up")]
    down: bool,
    /// Bring it up again.
    #[arg(long)]
    up: bool,
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// `02:00:00:00:00:01`.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Show what is set on it (also what nsw link does with no change).
    #[arg(long)]
    show: bool,
}

impl LinkArgs {
    fn changes_conditions(&self) -> bool {
        self.clear || self.rate.is_some() || self.delay.is_some() || self.jitter.is_some() || self.loss.is_some()
    }

    fn changes_anything(&self) -> bool {
        self.changes_conditions() || self.down || self.up || self.mtu.is_some() || self.mac.is_some()
    }
}

/// A lab built behind the privilege boundary wrote its journal from
/// there: root changes a link only in a namespace the policy finds the
/// lab's, whatever the journal claims.
async fn check_inside(record: &crate::journal::LabRecord, node: &str, userns: u64) -> anyhow::Result<()> {
    let lab = &record.info.name;
    let outside = |why: &str| anyhow::anyhow!("lab {lab} was built behind nsw's privilege boundary, and node {node} is not inside it ({why})");
    if record.info.mode != crate::policy::Mode::Contained {
        return Err(outside("a host-net lab has no boundary"));
    }
    // The namespace reopening the lab will attach (the same choice as
    // `Lab::reopen`); a node the lab does not have: reopening says so.
    let Some(name) = record.objects.iter().filter(|o| o.confirmed).find_map(|o| match (&o.object, o.ident) {
        (crate::journal::Object::Netns { name, node: n }, Some(_)) if n == node => Some(name.clone()),
        _ => None,
    }) else {
        return Ok(());
    };
    let owner = if crate::naming::netns_of_lab(&name, lab) { backend::system().netns_owner(&name).await? } else { None };
    match crate::policy::ownership::netns_outside(&name, lab, owner, userns) {
        Some(why) => Err(outside(&why)),
        None if owner.is_none() => Err(outside(&format!("nothing is mounted at netns {name}"))),
        None => Ok(()),
    }
}

/// `none`, or a value.
fn optional<T>(text: &str, parse: impl Fn(&str) -> Option<T>, what: &str, example: &str) -> anyhow::Result<Option<T>> {
    if text == "none" {
        return Ok(None);
    }
    parse(text).map(Some).ok_or_else(|| anyhow::anyhow!("{what} {text:?}: give it as {example}, or none"))
}

fn parse_rate(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0), ("g", 1e9), ("m", 1e6), ("k", 1e3)]
        .iter()
        .find_map(|(suffix, scale)| lower.strip_suffix(suffix).map(|n| (n.to_string(), *scale)))
        .unwrap_or((lower.clone(), 1.0));
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * scale).round() as u64)
}

fn parse_time_us(text: &str) -> Option<u32> {
    let (number, scale) = [("us", 1.0), ("ms", 1e3), ("s", 1e6)].iter().find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))?;
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0 && value * scale <= u32::MAX as f64).then(|| (value * scale).round() as u32)
}

fn parse_percent(text: &str) -> Option<f64> {
    let value: f64 = text.strip_suffix('%').unwrap_or(text).trim().parse().ok()?;
    value.is_finite().then_some(value)
}

/// The link's conditions after this command: the recorded ones with the
/// options given changed.
fn merged(args: &LinkArgs, recorded: Conditions) -> anyhow::Result<Conditions> {
    if args.clear {
        return Ok(Conditions::default());
    }
    let mut c = recorded;
    if let Some(t) = &args.rate {
        c.rate_bps = optional(t, parse_rate, "--rate", "20mbit")?;
    }
    if let Some(t) = &args.delay {
        c.delay_us = optional(t, parse_time_us, "--delay", "10ms")?;
    }
    if let Some(t) = &args.jitter {
        c.jitter_us = optional(t, parse_time_us, "--jitter", "2ms")?;
    }
    if let Some(t) = &args.loss {
        c.loss_percent = optional(t, parse_percent, "--loss", "20%")?;
    }
    Ok(c)
}

pub async fn exec(args: LinkArgs) -> CommandResult {
    require_root("link")?;
    crate::policy::check_lab_name(&args.lab).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let Some((node, ifname)) = args.target.split_once(':') else {
        return Err(anyhow::anyhow!("give the interface as NODE:IF (e.g. pb:veth-pb)").into());
    };
    crate::policy::check_ifname(ifname).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let Some((session, journal)) = Session::existing(StateDir::system(), &args.lab, Duration::from_secs(5))? else {
        return Err(anyhow::anyhow!("there is no lab {} (see nsw ls)", args.lab).into());
    };
    if let Some(userns) = StateDir::system().boundary(&args.lab)? {
        check_inside(journal.record(), node, userns).await?;
    }
    let (mut lab, link) = match Lab::reopen(journal, Box::new(backend::system()), node, ifname, Stop::new()).await {
        Ok(opened) => opened,
        Err((e, _journal)) => return Err(Failure::new(Status::Usage, anyhow::anyhow!("{}", e))),
    };
    let settings = lab.link_settings(link);
    let recorded: Conditions = settings.get(&Setting::Conditions).and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
    let mut done = Vec::new();
    let outcome: Result<(), crate::error::LabError> = async {
        if args.changes_conditions() {
            let c = merged(&args, recorded).map_err(|e| crate::error::LabError::invalid(e.to_string()))?;
            if c == Conditions::default() {
                lab.clear_conditions(link).await?;
                done.push("no conditions".to_string());
            } else {
                lab.set_conditions(link, c).await?;
                done.push(c.describe());
            }
        }
        if let Some(mtu) = args.mtu {
            lab.set_mtu(link, mtu).await?;
            done.push(format!("mtu {mtu}"));
        }
        if let Some(mac) = &args.mac {
            lab.set_mac(link, mac).await?;
            done.push(format!("mac {mac}"));
        }
        if args.down {
            lab.set_down(link).await?;
            done.push("down".into());
        }
        if args.up {
            lab.set_up(link).await?;
            done.push("up".into());
        }
        Ok(())
    }
    .await;
    let settings = lab.link_settings(link);
    let netns = lab.netns(lab.link(link).ns).kernel.clone();
    drop(lab.finish());
    drop(session);
    if let Err(e) = outcome {
        return Err(Failure::new(Status::GuestError, anyhow::anyhow!("{}: {e}", args.target)));
    }
    if !done.is_empty() {
        say!("nsw: {}: {}", args.target, done.join(", "));
    }
    if args.show || !args.changes_anything() {
        let conditions: Conditions = settings.get(&Setting::Conditions).and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
        let described = conditions.describe();
        show!("{}  conditions: {}", args.target, if described.is_empty() { "none".into() } else { described });
        let name = match &netns {
            crate::journal::NetnsRef::Named(name) => Some(name.as_str()),
            crate::journal::NetnsRef::Machine => None,
        };
        let view = backend::system().survey(name, None).await?;
        if let Some(l) = view.as_ref().and_then(|v| v.links.iter().find(|l| l.name == ifname)) {
            let state = match (l.up, l.carrier) {
                (false, _) => "down",
                (true, true) => "up",
                (true, false) => "up, no carrier",
            };
            show!("{}  state: {state}, mtu {}, mac {}, qdisc {}", args.target, l.mtu, l.mac.as_deref().unwrap_or("-"), l.qdisc.as_deref().unwrap_or("-"));
        }
    }
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_times_and_percentages_read_as_people_write_them() {
        assert_eq!(parse_rate("20mbit"), Some(20_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Some(1_500_000_000));
        assert_eq!(parse_rate("500kbit"), Some(500_000));
        assert_eq!(parse_rate("1000000"), Some(1_000_000));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_time_us("10ms"), Some(10_000));
        assert_eq!(parse_time_us("500us"), Some(500));
        assert_eq!(parse_time_us("1s"), Some(1_000_000));
        assert_eq!(parse_time_us("10"), None);
        assert_eq!(parse_percent("20%"), Some(20.0));
        assert_eq!(parse_percent("2.5"), Some(2.5));
    }
}
