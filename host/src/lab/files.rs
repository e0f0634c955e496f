//! `files`: a node's own files, for its programs (no grant: they are the
//! node's, never the machine's). The policy says which paths, modes and
//! owners may be asked for; the backend reaches the files.

use super::Lab;
use crate::backend::{NodeFileOp, NsId};
use crate::error::{LabError, LabResult};
use crate::policy::node_files;

/// The most a read returns, in bytes.
pub const READ_CAP: usize = 1 << 20;

/// What the script asked a file or directory to be.
pub struct Wanted<'a> {
    pub mode: u32,
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
}

impl Lab {
    /// The node's path behind `path`, with the words messages use.
    pub(super) fn node_path(&mut self, call: &str, ns: NsId, path: &str) -> LabResult<(node_files::NodePath, String)> {
        self.refuse_if_stopped()?;
        self.check_strings(call, &[path])?;
        let what = format!("{call} {} in {}", crate::policy::quoted(path), self.describe_ns(ns));
        if self.is_machine(ns) {
            return Err(LabError::denied(format!("{what}: that is the machine's own namespace, whose files are the machine's")));
        }
        if let Some(why) = &self.grants.node_files_refused {
            return Err(LabError::denied(format!("{what}: {why}")));
        }
        let parsed = node_files::node_path(path).map_err(|e| e.context(&format!("({call} in {})", self.describe_ns(ns))))?;
        Ok((parsed, what))
    }

    /// The uid and gid `wanted` names, as the node's own files know them.
    async fn owner_of(&mut self, ns: NsId, what: &str, wanted: &Wanted<'_>) -> LabResult<(u32, u32)> {
        self.check_strings("files", &[wanted.owner.unwrap_or(""), wanted.group.unwrap_or("")])?;
        node_files::check_mode(what, wanted.mode)?;
        if wanted.owner.is_none() && wanted.group.is_none() {
            return Ok((0, 0));
        }
        let passwd = self.read_text(ns, "/etc/passwd", what).await?;
        let group = self.read_text(ns, "/etc/group", what).await?;
        node_files::owner_ids(what, &passwd, &group, wanted.owner, wanted.group)
    }

    /// A file of the node's, as text (its user and group lists).
    async fn read_text(&mut self, ns: NsId, file: &str, what: &str) -> LabResult<String> {
        let path = node_files::node_path(file)?;
        let bytes = self.reach(ns, &path, NodeFileOp::Read { max: READ_CAP }, what).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Do `op` on the node's file, made settled first (the node's files are
    /// made with its name and the addresses it has).
    async fn reach(&mut self, ns: NsId, path: &node_files::NodePath, op: NodeFileOp, what: &str) -> LabResult<Vec<u8>> {
        // A node's files are made in the lab's PID namespace, whose /proc they show.
        self.ensure_lab_init()?;
        self.alive(ns).await?;
        self.flush().await?;
        let node = self.node_identity(ns).ok_or_else(|| LabError::denied(format!("{what}: the machine's namespace has no files of a node")))?;
        if path.shown() == "/etc/hosts" && matches!(op, NodeFileOp::Write { .. }) {
            self.hosts_own.insert(ns);
        }
        self.refresh_hosts(ns, &node).await?;
        self.backend.node_file(ns, &node, path, op).await.map_err(|e| LabError::os(what, &e))
    }

    /// Write `contents` to `path` in node `ns`.
    pub async fn write_node_file(&mut self, ns: NsId, path: &str, contents: Vec<u8>, wanted: Wanted<'_>) -> LabResult<()> {
        let (parsed, what) = self.node_path("write-file", ns, path)?;
        let owner = self.owner_of(ns, &what, &wanted).await?;
        self.quotas.node_file_bytes.take(contents.len() as u64, &what)?;
        self.reach(ns, &parsed, NodeFileOp::Write { contents, mode: wanted.mode, owner }, &what).await?;
        Ok(())
    }

    /// Make the directory `path` in node `ns`.
    pub async fn make_node_dir(&mut self, ns: NsId, path: &str, wanted: Wanted<'_>) -> LabResult<()> {
        let (parsed, what) = self.node_path("make-dir", ns, path)?;
        let owner = self.owner_of(ns, &what, &wanted).await?;
        self.reach(ns, &parsed, NodeFileOp::MakeDir { mode: wanted.mode, owner }, &what).await?;
        Ok(())
    }

    /// What the file at `path` in node `ns` holds.
    pub async fn read_node_file(&mut self, ns: NsId, path: &str) -> LabResult<Vec<u8>> {
        let (parsed, what) = self.node_path("read-file", ns, path)?;
        self.reach(ns, &parsed, NodeFileOp::Read { max: READ_CAP }, &what).await
    }
}
