//! `service`: WebAssembly services in the lab's nodes (the running itself
//! is [`crate::runtime::service`]'s).

use std::collections::HashSet;
use std::sync::Arc;

use super::Lab;
use super::process::OUTPUT_CAP;
use crate::backend::NsId;
use crate::journal::{Entry, Object};
use crate::error::{LabError, LabResult};
use crate::policy;
use crate::runtime::service::{Prepared, Service, Services};

impl Lab {
    /// May a service `name` start in `ns`? Its label (`<node>/<name>`).
    pub async fn admit_service(&mut self, ns: NsId, name: &str, size: usize) -> LabResult<String> {
        self.refuse_if_stopped()?;
        self.check_strings("service.start", &[name])?;
        let node = self.netns[ns].node.clone();
        let what = format!("start service {name} in {}", self.describe_ns(ns));
        policy::programs::admit_service(&what, name, size, self.limits.component_bytes, self.is_machine(ns))?;
        let label = format!("{node}/{name}");
        if self.service_labels.contains(&label) {
            return Err(LabError::exists(format!("{what}: {node} runs a service named {name} already")));
        }
        self.quotas.services.take(1, &what)?;
        self.alive(ns).await?;
        // A service's sockets meet the links as they are: made and settled.
        self.flush().await?;
        self.wait_for_carriers().await?;
        Ok(label)
    }

    /// Start an admitted service on a thread inside `ns`. It is journaled
    /// as a process of its node, the one that holds it (so `down` ends it
    /// where the run left it running), and its output is kept beside the
    /// journal as a program's is (`nsw logs NODE/NAME`).
    pub fn start_service(
        &mut self,
        ns: NsId,
        services: &mut Services,
        label: String,
        name: &str,
        prepared: Prepared,
        args: Vec<String>,
    ) -> LabResult<Arc<Service>> {
        let what = format!("start service {label} in {}", self.describe_ns(ns));
        let (journaled, log) = match self.backend.services_process() {
            Some(holder) => {
                let id = self.record_intent(Object::Process { netns: self.netns[ns].kernel.clone(), program: name.to_string() })?;
                match self.open_service_log(id) {
                    Ok(file) => (Some((id, holder)), Some((file, OUTPUT_CAP as usize))),
                    Err(e) => {
                        self.record(Entry::Failed { id })?;
                        return Err(LabError::os(&what, &e));
                    }
                }
            }
            // A plan: nothing runs, nothing to journal.
            None => (None, None),
        };
        let backend = &mut self.backend;
        match services.start(label.clone(), prepared, args, log, |body| backend.start_thread_in(ns, &label, body)) {
            Ok(service) => {
                if let Some((id, holder)) = journaled {
                    self.record(Entry::Created { id, ident: Some(holder.pid as u64), since: Some(holder.since) })?;
                    self.service_entries.insert(label.clone(), id);
                }
                self.service_labels.insert(label);
                Ok(service)
            }
            Err(e) => {
                if let Some((id, _)) = journaled {
                    self.record(Entry::Failed { id })?;
                }
                Err(LabError::os(&what, &e))
            }
        }
    }

    /// The services that have ended leave the journal (their process goes
    /// on: it is nsw's own).
    pub fn note_ended_services(&mut self, services: &Services) -> LabResult<()> {
        let running: HashSet<String> = services.running().iter().map(|s| s.label.clone()).collect();
        let ended: Vec<(String, u32)> = self.service_entries.iter().filter(|(label, _)| !running.contains(*label)).map(|(l, id)| (l.clone(), *id)).collect();
        for (label, id) in ended {
            self.record(Entry::Gone { id })?;
            self.service_entries.remove(&label);
        }
        Ok(())
    }

    /// A file beside the journal for a service's output.
    fn open_service_log(&self, id: u32) -> std::io::Result<std::fs::File> {
        let dir = crate::layout::outputs(&self.state_dir(), &self.name);
        crate::access::files::create_dir_all(&dir)?;
        crate::access::files::open(&crate::layout::program_log(&self.state_dir(), &self.name, id as u64), crate::access::protocol::How::Append)
    }
}
