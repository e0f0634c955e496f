//! `service`: WebAssembly services in the lab's nodes (the running itself
//! is [`crate::runtime::service`]'s).

use std::sync::Arc;

use super::Lab;
use crate::backend::NsId;
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

    /// Start an admitted service on a thread inside `ns`.
    pub fn start_service(
        &mut self,
        ns: NsId,
        services: &mut Services,
        label: String,
        prepared: Prepared,
        args: Vec<String>,
    ) -> LabResult<Arc<Service>> {
        let what = format!("start service {label} in {}", self.describe_ns(ns));
        let backend = &mut self.backend;
        let service = services
            .start(label.clone(), prepared, args, |body| backend.start_thread_in(ns, &label, body))
            .map_err(|e| LabError::os(&what, &e))?;
        self.service_labels.insert(label);
        Ok(service)
    }
}
