//! The labs across machines as the store has them: their records, where
//! their parts are, taking them down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{DOWN_SEQ, Message, Reply, inbox_key, lab_key, part_key, reply_key};
use crate::cluster::store::ClusterStore;

/// A lab's record (`labs/L`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabRecord {
    pub name: String,
    pub script: String,
    pub state: LabState,
    /// Who runs (or ran) the script: `host:pid`.
    pub coordinator: String,
    pub started_unix: u64,
    /// Where each node is (`host`: the lab's host), as placed so far.
    pub placement: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabState {
    Building,
    Up,
    /// Going down, or down with parts left on machines whose agents are
    /// away (each reaps its own when it returns).
    Down,
}

/// How long `down` waits for a live machine's agent to take its part down.
const DOWN_PATIENCE: Duration = Duration::from_secs(120);

pub async fn record(store: &mut dyn ClusterStore, lab: &str) -> Result<Option<LabRecord>> {
    match store.get(&lab_key(lab)).await? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("the store's record of lab {lab} cannot be read"))?)),
        None => Ok(None),
    }
}

pub async fn records(store: &mut dyn ClusterStore) -> Result<Vec<LabRecord>> {
    let mut labs = Vec::new();
    for (key, value) in store.list("labs/").await? {
        match serde_json::from_slice(&value) {
            Ok(record) => labs.push(record),
            Err(e) => tracing::warn!("{key}: unreadable lab record: {e}"),
        }
    }
    Ok(labs)
}

/// The machines that hold a part of `lab`.
pub async fn parts(store: &mut dyn ClusterStore, lab: &str) -> Result<Vec<String>> {
    let prefix = format!("parts/{lab}/");
    Ok(store.keys(&prefix).await?.into_iter().map(|key| key.trim_start_matches(&prefix).to_string()).collect())
}

/// What [`down`] did.
#[derive(Debug, Default)]
pub struct Down {
    /// Machines whose part is down.
    pub done: Vec<String>,
    /// Machines whose agent is away: their part waits for it.
    pub waiting: Vec<String>,
    /// Machines whose agent could not take its part down, and why.
    pub failed: Vec<(String, String)>,
}

/// Take `lab` down everywhere it can: marked down first (so that an agent
/// that comes back reaps its part), then each live machine's part, in
/// parallel. `None`: the store has no such lab.
pub async fn down(store: &mut dyn ClusterStore, lab: &str) -> Result<Option<Down>> {
    let Some(mut record) = record(store, lab).await? else { return Ok(None) };
    if record.state != LabState::Down {
        record.state = LabState::Down;
        store.put(&lab_key(lab), serde_json::to_vec(&record)?).await?;
    }
    let live: Vec<String> = store.machines().await?.into_iter().map(|m| m.name).collect();
    let mut report = Down::default();
    let mut asked = Vec::new();
    for machine in parts(store, lab).await? {
        // Every machine's inbox gets it: one that is away finds it there.
        store.put(&inbox_key(&machine, lab, DOWN_SEQ), serde_json::to_vec(&Message::Down)?).await?;
        if live.contains(&machine) {
            asked.push(machine);
        } else {
            report.waiting.push(machine);
        }
    }
    let until = Instant::now() + DOWN_PATIENCE;
    while !asked.is_empty() {
        let mut still = Vec::new();
        for machine in asked {
            let reply_at = reply_key(lab, &machine, DOWN_SEQ);
            if let Some(bytes) = store.get(&reply_at).await? {
                store.delete(&reply_at, false).await?;
                match serde_json::from_slice::<Reply>(&bytes) {
                    Ok(Reply { error: None, .. }) => report.done.push(machine),
                    Ok(Reply { error: Some(e), .. }) => report.failed.push((machine, e.message)),
                    Err(e) => report.failed.push((machine, format!("an unreadable answer: {e}"))),
                }
            } else if store.get(&part_key(lab, &machine)).await?.is_none() {
                // Reaped (and its answer cleared) by the agent already.
                report.done.push(machine);
            } else if Instant::now() > until {
                report.failed.push((machine, format!("no answer in {} s", DOWN_PATIENCE.as_secs())));
            } else {
                still.push(machine);
            }
        }
        asked = still;
        if !asked.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if parts(store, lab).await?.is_empty() {
        forget(store, lab).await?;
    }
    Ok(Some(report))
}

/// Mark `lab` down (if the store has it), unless it is already.
pub async fn mark_down(store: &mut dyn ClusterStore, lab: &str) -> Result<()> {
    let Some(old) = store.get(&lab_key(lab)).await? else { return Ok(()) };
    let Ok(mut record) = serde_json::from_slice::<LabRecord>(&old) else { return Ok(()) };
    if record.state != LabState::Down {
        record.state = LabState::Down;
        // Lost to a writer in between: whoever it was decided.
        store.replace(&lab_key(lab), &old, serde_json::to_vec(&record)?).await?;
    }
    Ok(())
}

/// Nothing of `lab` is left on any machine: forget it.
pub async fn forget(store: &mut dyn ClusterStore, lab: &str) -> Result<()> {
    store.delete(&format!("replies/{lab}/"), true).await?;
    store.delete(&super::coordinator_key(lab), false).await?;
    store.delete(&lab_key(lab), false).await
}

/// How long `show` waits for a live machine's part.
const SHOW_PATIENCE: Duration = Duration::from_secs(15);

/// The whole lab as the machines' kernels have it now: each part's view,
/// its nodes marked with their machine, the two ends of each link across
/// machines joined (by their VNI). `None`: no such lab; the machines
/// whose agents are away (or did not answer) are listed with it.
pub async fn view(store: &mut dyn ClusterStore, lab: &str) -> Result<Option<(crate::show::LabView, Vec<String>)>> {
    if record(store, lab).await?.is_none() {
        return Ok(None);
    }
    let live: Vec<String> = store.machines().await?.into_iter().map(|m| m.name).collect();
    let at = super::show_seq();
    let (mut asked, mut away) = (Vec::new(), Vec::new());
    for machine in parts(store, lab).await? {
        if live.contains(&machine) {
            store.put(&inbox_key(&machine, lab, &at), serde_json::to_vec(&Message::Show)?).await?;
            asked.push(machine);
        } else {
            away.push(machine);
        }
    }
    let until = Instant::now() + SHOW_PATIENCE;
    let mut views = Vec::new();
    while !asked.is_empty() {
        let mut still = Vec::new();
        for machine in asked {
            let reply_at = reply_key(lab, &machine, &at);
            match store.get(&reply_at).await? {
                Some(bytes) => {
                    store.delete(&reply_at, false).await?;
                    let reply: Reply = serde_json::from_slice(&bytes).with_context(|| format!("machine {machine} answered what nsw cannot read"))?;
                    match (reply.view, reply.error) {
                        (Some(view), _) => views.push((machine.clone(), serde_json::from_value::<crate::show::LabView>(view)?)),
                        (None, Some(e)) => anyhow::bail!("machine {machine}: {}", e.message),
                        (None, None) => anyhow::bail!("machine {machine} answered without its part"),
                    }
                }
                None if Instant::now() > until => away.push(machine),
                None => still.push(machine),
            }
        }
        asked = still;
        if !asked.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(Some((merge(lab, views), away)))
}

/// One view of the parts' views.
fn merge(lab: &str, views: Vec<(String, crate::show::LabView)>) -> crate::show::LabView {
    let mut nodes = Vec::new();
    let mut flagged = Vec::new();
    for (machine, view) in views {
        for mut node in view.nodes {
            node.machine = Some(machine.clone());
            nodes.push(node);
        }
        flagged.extend(view.flagged.into_iter().map(|f| format!("on {machine}: {f}")));
    }
    let mut ends: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for node in &nodes {
        for link in node.links.iter().filter(|l| l.kind.as_deref() == Some("vxlan")) {
            if let Some(vni) = link.vni {
                ends.entry(vni).or_default().push((node.node.clone(), link.name.clone()));
            }
        }
    }
    for node in &mut nodes {
        let here = node.node.clone();
        for link in node.links.iter_mut().filter(|l| l.kind.as_deref() == Some("vxlan")) {
            let pair = link.vni.and_then(|vni| ends.get(&vni)).filter(|pair| pair.len() == 2);
            let far = pair.and_then(|pair| pair.iter().find(|(n, l)| !(*n == here && *l == link.name)));
            link.peer = far.map(|(node, link)| crate::show::PeerOut { node: node.clone(), link: link.clone() });
        }
    }
    // The lab's host first, as a lab of one machine shows it.
    nodes.sort_by(|a, b| (a.node != crate::naming::HOST, &a.node).cmp(&(b.node != crate::naming::HOST, &b.node)));
    crate::show::LabView { lab: lab.to_string(), mode: crate::journal::Mode::Contained, nodes, flagged, tasks: None }
}
