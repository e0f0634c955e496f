//! `process`: programs of the machine inside the lab's nodes (needs
//! `--allow exec`). Each is journaled before it starts and confirmed with
//! its pid and start time, so `down` stops it even after nsw crashed.

use std::io::Read;
use std::time::Duration;

use super::Lab;
use crate::backend::{Exit, NodeIdentity, NsId, Program, ProgramSpec};
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Object};
use crate::policy;

/// At most this much of a program's stdout (and of its stderr) is kept.
pub const OUTPUT_CAP: u64 = 1 << 20;

/// A program that ran to its end.
#[derive(Debug, Clone)]
pub struct Completed {
    pub exit: Exit,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A program running in the background, and where its output goes.
pub struct Background {
    pub program: Box<dyn Program>,
    pub log: std::path::PathBuf,
    pub journal_id: u32,
    /// The node it runs in, and its `argv[0]`, for what is said of it.
    pub ns: NsId,
    pub name: String,
    /// How it ended, once it has (and the journal was told).
    pub ended: Option<Exit>,
}

impl Lab {
    /// May `argv` run in `ns`? What to start, if so.
    fn admit_program(&mut self, ns: NsId, argv: &[String]) -> LabResult<ProgramSpec> {
        self.refuse_if_stopped()?;
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.check_strings("process", &words)?;
        let Some(first) = argv.first() else { return Err(LabError::invalid("a program needs at least argv[0]")) };
        let what = format!("run {} in {}", crate::policy::quoted(first), self.describe_ns(ns));
        let (uid, gid) = policy::programs::may_run_programs(&self.grants, &what, self.is_machine(ns))?;
        let program = crate::backend::kernel_resolve(first)
            .ok_or_else(|| LabError::not_found(format!("{what}: there is no program {} (in PATH)", crate::policy::quoted(first))))?;
        policy::programs::check_granted_program(&self.grants, &what, &program, crate::backend::kernel_resolve)?;
        self.quotas.processes.take(1, &what)?;
        let tasks = crate::backend::TaskLimit { lab: self.name.clone(), max: self.limits.tasks };
        Ok(ProgramSpec { program, argv: argv.to_vec(), uid, gid, log: None, node: self.node_identity(ns), tasks })
    }

    /// Node `ns`'s name, and an `/etc/hosts` that names every node of the
    /// lab by the addresses it has so far; `None` for the machine's
    /// namespace, whose programs see the machine's files.
    pub(super) fn node_identity(&self, ns: NsId) -> Option<NodeIdentity> {
        if self.is_machine(ns) {
            return None;
        }
        let hostname = self.netns[ns].node.clone();
        let mut hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (id, entry) in self.netns.iter().enumerate() {
            if self.is_machine(id) {
                continue;
            }
            for (net, _) in self.subnets_of(id) {
                let addr = net.addr();
                let link_local = match addr {
                    std::net::IpAddr::V4(a) => a.is_link_local(),
                    std::net::IpAddr::V6(a) => a.is_unicast_link_local(),
                };
                if !addr.is_loopback() && !link_local {
                    hosts.push_str(&format!("{addr}\t{}\n", entry.node));
                }
            }
        }
        Some(NodeIdentity { hostname, hosts })
    }

    /// Bring node `ns`'s `/etc/hosts` up to `node`'s (the lab's nodes by the
    /// addresses they have now) if its files were made with fewer, unless
    /// the script wrote it itself. Files not yet made get it when made.
    pub(super) async fn refresh_hosts(&mut self, ns: NsId, node: &NodeIdentity) -> LabResult<()> {
        let stale = self.hosts_given.get(&ns).is_some_and(|given| *given != node.hosts);
        if stale && !self.hosts_own.contains(&ns) {
            let path = crate::policy::node_files::node_path("/etc/hosts")?;
            let op = crate::backend::NodeFileOp::Write { contents: node.hosts.clone().into_bytes(), mode: 0o644, owner: (0, 0) };
            let what = format!("bring /etc/hosts of {} up to date", self.describe_ns(ns));
            self.backend.node_file(ns, node, &path, op).await.map_err(|e| LabError::os(&what, &e))?;
        }
        self.hosts_given.insert(ns, node.hosts.clone());
        Ok(())
    }

    /// Start an admitted program, journaled first; with `logged`, its
    /// output goes to the file named by its journal id (`nsw logs`).
    async fn start_program(&mut self, ns: NsId, spec: &mut ProgramSpec, logged: bool) -> LabResult<(Box<dyn Program>, u32)> {
        let what = format!("run {} in {}", crate::policy::quoted(&spec.argv[0]), self.describe_ns(ns));
        self.ensure_lab_init()?;
        self.alive(ns).await?;
        self.flush().await?;
        self.wait_for_carriers().await?;
        // The node as it is now (addresses made since it was admitted too),
        // before the journal hears of the program.
        spec.node = self.node_identity(ns);
        if let Some(node) = spec.node.clone() {
            self.refresh_hosts(ns, &node).await?;
        }
        let id = self.record_intent(Object::Process { netns: self.netns[ns].kernel.clone(), program: spec.argv[0].clone() })?;
        if logged {
            spec.log = Some((crate::layout::program_log(&self.state_dir(), &self.name, id as u64), OUTPUT_CAP));
        }
        match self.backend.start_program(ns, spec) {
            Ok(program) => {
                let pid = program.id();
                self.record(Entry::Created { id, ident: Some(pid.pid as u64), since: Some(pid.since) })?;
                Ok((program, id))
            }
            Err(e) => {
                self.record(Entry::Failed { id })?;
                Err(LabError::os(&what, &e))
            }
        }
    }

    /// The lab's PID namespace and its init, made (journaled first, as a
    /// process of the lab's host) before the lab's first program or node:
    /// everything they start is born in it, and ends with the init.
    pub(super) fn ensure_lab_init(&mut self) -> LabResult<()> {
        if self.init_started {
            return Ok(());
        }
        let id = self.record_intent(Object::Process { netns: self.netns[super::HOST].kernel.clone(), program: crate::naming::LAB_INIT.into() })?;
        match self.backend.start_lab_init() {
            Ok(Some(init)) => self.record(Entry::Created { id, ident: Some(init.pid as u64), since: Some(init.since) })?,
            // Nothing runs in a plan.
            Ok(None) => self.record(Entry::Failed { id })?,
            Err(e) => {
                self.record(Entry::Failed { id })?;
                return Err(LabError::os("make the lab's PID namespace", &e));
            }
        }
        self.init_started = true;
        Ok(())
    }

    /// A process of the lab ended: the journal forgets it.
    pub fn program_ended(&mut self, journal_id: u32) -> LabResult<()> {
        self.record(Entry::Gone { id: journal_id })
    }

    /// How a program in the background ended, if it has (the journal is
    /// told once).
    pub fn poll_background(&mut self, running: &mut Background) -> LabResult<Option<Exit>> {
        if running.ended.is_none()
            && let Some(exit) = running.program.try_wait().map_err(|e| LabError::os("wait for a program", &e))?
        {
            running.ended = Some(exit);
            self.program_ended(running.journal_id)?;
        }
        Ok(running.ended)
    }

    /// Stop a program in the background, if it still runs.
    pub async fn stop_background(&mut self, running: &mut Background) -> LabResult<()> {
        if self.poll_background(running)?.is_none() {
            running.ended = Some(stop(running.program.as_mut()).await);
            self.program_ended(running.journal_id)?;
        }
        Ok(())
    }

    /// Run `argv` in `ns` to its end (or `timeout`), with what it printed.
    pub async fn run_program(&mut self, ns: NsId, argv: &[String], timeout_ms: u32) -> LabResult<Completed> {
        if !(1..=600_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("process timeout {timeout_ms} ms is out of range 1-600000")));
        }
        let mut spec = self.admit_program(ns, argv)?;
        let (mut program, journal_id) = self.start_program(ns, &mut spec, false).await?;
        let (out, err) = program.take_pipes().unwrap_or_else(|| (Box::new(std::io::empty()), Box::new(std::io::empty())));
        let readers = [read_capped(out), read_capped(err)];
        let until = tokio::time::Instant::now() + Duration::from_millis(timeout_ms as u64);
        let mut timed_out = false;
        let exit = loop {
            if let Some(exit) = program.try_wait().map_err(|e| LabError::os("wait for a program", &e))? {
                break exit;
            }
            if tokio::time::Instant::now() >= until || self.stop.requested() {
                timed_out = !self.stop.requested();
                break stop(program.as_mut()).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.program_ended(journal_id)?;
        let [out, err] = readers;
        let text = |r: std::thread::JoinHandle<String>| r.join().unwrap_or_default();
        Ok(Completed { exit, timed_out, stdout: text(out), stderr: text(err) })
    }

    /// Start `argv` in `ns` in the background; its output goes to a file
    /// beside the lab's journal (at most [`OUTPUT_CAP`] bytes).
    pub async fn spawn_program(&mut self, ns: NsId, argv: &[String]) -> LabResult<Background> {
        let mut spec = self.admit_program(ns, argv)?;
        let dir = crate::layout::outputs(&self.state_dir(), &self.name);
        crate::access::files::create_dir_all(&dir).map_err(|e| LabError::os(&format!("create {}", dir.display()), &e))?;
        let (program, journal_id) = self.start_program(ns, &mut spec, true).await?;
        let log = spec.log.map(|(log, _)| log).expect("a logged program has a log");
        Ok(Background { program, log, journal_id, ns, name: argv[0].clone(), ended: None })
    }
}

/// Stop a program: SIGTERM to its session, SIGKILL after 2 s.
pub async fn stop(program: &mut dyn Program) -> Exit {
    use nix::sys::signal::Signal;
    program.signal(Signal::SIGTERM);
    for signal in [None, Some(Signal::SIGKILL)] {
        if let Some(signal) = signal {
            program.signal(signal);
        }
        for _ in 0..200 {
            if let Ok(Some(exit)) = program.try_wait() {
                return exit;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Exit::Signal(libc::SIGKILL)
}

/// Read a pipe to its end on a thread, keeping at most [`OUTPUT_CAP`].
fn read_capped(mut pipe: Box<dyn Read + Send>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 16 << 10];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = (OUTPUT_CAP as usize).saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}
