//! One lab's life: created (or replaced), built, then up, kept after a
//! failure, or taken down. A [`Session`] holds the lab's lock from start
//! to end; the journal moves into the running [`crate::lab::Lab`] and
//! comes back from it, so the lifecycle never reads back what it wrote.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::backend::Teardown;
use crate::journal::{Entry, Journal, LabInfo, LabLock, LabRecord, LabState, StateDir};
use crate::teardown::{self, Report};

/// The right to work on one lab, held until the session ends.
pub struct Session {
    state: StateDir,
    lock: LabLock,
}

/// What [`Session::create`] found.
pub enum Created {
    /// A new lab, its journal started; `replaced` says how the old lab of
    /// the same name went (`--replace`).
    New { session: Session, journal: Journal, replaced: Option<Report> },
    /// A lab of that name exists (and no `--replace`): nothing was done.
    Exists(LabRecord),
}

impl Session {
    /// Lock the lab `info.name` and start its journal. A lab of that name
    /// that exists is refused, unless `replace` asks to take it down first.
    pub async fn create(state: StateDir, info: LabInfo, replace: bool, machine: &mut dyn Teardown) -> Result<Created> {
        let lock = state.lock(&info.name)?;
        let mut replaced = None;
        let mut session = Session { state, lock };
        if let Some(old) = session.state.open_journal(&session.lock, &info.name)? {
            if !replace {
                return Ok(Created::Exists(old.record().clone()));
            }
            let (report, back) = session.tear_down_keeping_lock(old, machine, false).await?;
            replaced = Some(report);
            session = back;
        }
        let journal = session.state.create_journal(&session.lock, info)?;
        Ok(Created::New { session, journal, replaced })
    }

    /// An existing lab, to take down: waits up to `patience` for another
    /// nsw working on it. `None` (and nothing left of it) if there is none.
    pub fn existing(state: StateDir, lab: &str, patience: Duration) -> Result<Option<(Session, Journal)>> {
        let lock = state.lock_wait(lab, patience)?;
        match state.open_journal(&lock, lab)? {
            Some(journal) => Ok(Some((Session { state, lock }, journal))),
            None => {
                // A lock file left by a crash, or kept for ids a run could
                // not sweep: nothing else is.
                crate::teardown::end_lab_tasks(lab).with_context(|| format!("stopping the processes of lab {lab}'s cgroup"))?;
                forget_id_range(&state, lab, false)?;
                state.remove(lock, lab)?;
                Ok(None)
            }
        }
    }

    /// The lab is built: mark it up (the lock is given back when the
    /// session ends).
    pub fn mark_up(&self, journal: &mut Journal) -> Result<()> {
        journal.append(Entry::State { state: LabState::Up })
    }

    /// The run failed and `--keep` asks to leave what it built: mark it so.
    pub fn keep_failed(self, mut journal: Journal) -> Result<()> {
        journal.append(Entry::State { state: LabState::Failed })
    }

    /// Take the lab down (rollback, `--rm`, `down`). Once everything is
    /// gone the journal and the lock go too; otherwise the journal stays
    /// for another `nsw down`.
    pub async fn tear_down(self, journal: Journal, machine: &mut dyn Teardown, force: bool) -> Result<Report> {
        let name = journal.record().info.name.clone();
        let (report, session) = self.tear_down_keeping_lock(journal, machine, force).await?;
        session.state.remove(session.lock, &name)?;
        Ok(report)
    }

    async fn tear_down_keeping_lock(self, mut journal: Journal, machine: &mut dyn Teardown, force: bool) -> Result<(Report, Session)> {
        journal.append(Entry::State { state: LabState::TearingDown })?;
        let name = journal.record().info.name.clone();
        let inside = self.state.boundary(&name)?;
        let ids = self.state.lab_ids(&name);
        let report = teardown::remove_all(machine, journal.record(), force, self.state.path(), inside, ids).await?;
        if !report.complete() {
            return Err(Incomplete { lab: name, report }.into());
        }
        drop(journal);
        self.state.remove_journal(&self.lock, &name)?;
        // `remove_all` swept the lab's ids already.
        forget_id_range(&self.state, &name, ids.is_some())?;
        Ok((report, self))
    }
}

/// The lab is gone: once its ids are swept its range is free, unless the
/// broker of a run (this one's own, behind the boundary) is still
/// responsible for it (see `boundary::ids::finish`). `swept`: they are.
fn forget_id_range(state: &StateDir, lab: &str, swept: bool) -> Result<()> {
    let Some(range) = state.id_range(lab) else { return Ok(()) };
    let broker_runs = range.reserver.is_some_and(|(pid, since)| {
        crate::backend::kernel::process::identify(pid).ok() == Some(crate::backend::ProcessId { pid, since })
    });
    if !broker_runs {
        if !swept {
            crate::teardown::sweep_ids(range.first).with_context(|| format!("stopping the processes of lab {lab}'s ids"))?;
        }
        state.forget_id_range(lab);
    }
    Ok(())
}

/// A teardown that could not remove everything: the journal is kept.
#[derive(Debug)]
pub struct Incomplete {
    pub lab: String,
    pub report: Report,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lab = &self.lab;
        write!(f, "lab {lab} is only partly down; its journal is kept: run nsw down {lab} again")
    }
}

impl std::error::Error for Incomplete {}
