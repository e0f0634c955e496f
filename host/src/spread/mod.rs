//! Labs across machines: one script, run once on a coordinator, its lab
//! built by the agents of several machines through the cluster's store.
//!
//! - [`coordinator`]: `nsw run --store`'s side. The script runs against a
//!   lab on the plan backend (every call judged there, as in any lab);
//!   what it did goes, batched between probes, to the agent of the
//!   machine that holds each namespace. Nodes are placed by `--place`,
//!   the rest spread evenly; a veth pair whose ends land on two machines
//!   becomes a pair of VXLAN devices (VNIs from one counter in the store).
//! - [`part`]: the agent's side. Each lab has a part on each machine it
//!   uses: a lab of the agent's own (its policy, quotas, journal, the
//!   kernel) that does the operations again; reaped when the store no
//!   longer wants it.
//! - [`labs`]: the labs' records in the store; `down` and `ls` across
//!   machines.
//!
//! The store holds, under `/nsw/v1/`: `machines/M` (the agents),
//! `labs/L` (a lab's record), `parts/L/M` (a part, written before the
//! first message that opens it), `coordinators/L` (under the lease of the
//! coordinator building it), `inbox/M/L/SEQ` (messages to an agent,
//! done in order), `replies/L/M/SEQ` (its answers), `vni` (the counter).

pub mod coordinator;
pub mod labs;
pub mod part;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, LabError};
use crate::lab::forward::{Answer, LabOp};

/// At most this many operations in one message (etcd takes requests up to
/// 1.5 MiB; an operation is ~100 bytes).
pub const OPS_PER_MESSAGE: usize = 1000;

pub fn lab_key(lab: &str) -> String {
    format!("labs/{lab}")
}

/// The sign of life of the coordinator building `lab`: a key under its
/// lease, gone when it is.
pub fn coordinator_key(lab: &str) -> String {
    format!("coordinators/{lab}")
}

pub fn part_key(lab: &str, machine: &str) -> String {
    format!("parts/{lab}/{machine}")
}

pub fn inbox(machine: &str) -> String {
    format!("inbox/{machine}/")
}

/// A message's place in its inbox: build messages by number, in order;
/// `down` after all of them (digits sort before `~`).
pub fn seq(n: u64) -> String {
    format!("{n:010}")
}

pub const DOWN_SEQ: &str = "~down";

/// A `show` message's place: after the build and down messages, unique.
pub fn show_seq() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("~show-{}-{nanos}", std::process::id())
}

pub fn inbox_key(machine: &str, lab: &str, seq: &str) -> String {
    format!("inbox/{machine}/{lab}/{seq}")
}

pub fn reply_key(lab: &str, machine: &str, seq: &str) -> String {
    format!("replies/{lab}/{machine}/{seq}")
}

pub const VNI_COUNTER: &str = "vni";

/// What a coordinator (or `down`) asks of an agent, for one lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "kebab-case")]
pub enum Message {
    /// Do these, in order (the first message of a lab opens its part);
    /// with `finish`, the lab is built then: the part stays up.
    Build {
        ops: Vec<LabOp>,
        #[serde(default)]
        finish: bool,
    },
    /// Take the part down.
    Down,
    /// Say what the part is now, as `nsw show --json` would.
    Show,
}

/// An agent's answer to one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub answers: Vec<Answer>,
    /// Why the message's operation number `answers.len()` failed (the rest
    /// were not done).
    pub error: Option<WireError>,
    /// The part as the kernel has it (an answer to [`Message::Show`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<serde_json::Value>,
}

impl Reply {
    pub fn answered(answers: Vec<Answer>) -> Reply {
        Reply { answers, error: None, view: None }
    }

    pub fn failed(answers: Vec<Answer>, error: &LabError) -> Reply {
        Reply { answers, error: Some(WireError::of(error)), view: None }
    }
}

/// A lab error as it crosses the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: String,
    pub message: String,
}

impl WireError {
    pub fn of(error: &LabError) -> WireError {
        match error {
            LabError::Guest { kind, message } => WireError { kind: kind.as_str().to_string(), message: message.clone() },
            LabError::Trap(e) => WireError { kind: "fault".into(), message: format!("{e:#}") },
        }
    }

    /// The error, as the script gets it, naming the machine.
    pub fn to_lab_error(&self, machine: &str) -> LabError {
        let message = format!("on machine {machine}: {}", self.message);
        match ErrorKind::from_name(&self.kind) {
            Some(kind) => LabError::new(kind, message),
            None => LabError::Trap(anyhow::anyhow!("{message}")),
        }
    }
}
