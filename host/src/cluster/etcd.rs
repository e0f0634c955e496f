//! [`ClusterStore`] on etcd (v3 API, through etcd-client): machines are
//! keys `/nsw/v1/machines/NAME` under a lease of their agent's. TLS with a
//! client certificate when given: whoever can write the store commands
//! root on every machine with an agent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, OpenSslClientConfig, PutOptions, Txn, TxnOp};

use super::MachineRecord;
use super::store::{ClusterStore, Registration};

const ROOT: &str = "/nsw/v1/";
const MACHINES: &str = "/nsw/v1/machines/";

/// How long one request to one member may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the store.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// `http://HOST:PORT` or `https://HOST:PORT`, any member of the cluster.
    pub urls: Vec<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

pub struct EtcdStore {
    endpoints: Endpoints,
    options: ConnectOptions,
    /// The member spoken to now, by its index in `endpoints.urls`.
    at: usize,
    client: Option<Client>,
}

/// Whether `e` says the member is gone (another may answer).
fn member_gone(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown),
        _ => false,
    }
}

/// Do `$op` with a client of the member spoken to; if that member is gone,
/// with the next, each member once.
macro_rules! on_a_member {
    ($store:ident, |$client:ident| $op:expr) => {{
        let mut tries = 0;
        loop {
            let $client = $store.client().await?;
            match $op.await {
                Err(e) if member_gone(&e) && tries + 1 < $store.endpoints.urls.len() => {
                    tracing::debug!("store member {} gone ({e}); trying the next", $store.endpoints.urls[$store.at]);
                    $store.next_member();
                    tries += 1;
                }
                other => break other,
            }
        }
    }};
}

impl EtcdStore {
    pub async fn connect(endpoints: &Endpoints) -> Result<EtcdStore> {
        if endpoints.urls.is_empty() {
            anyhow::bail!("no store given: --store URL[,URL...] (or NSW_STORE)");
        }
        // Each request well within a lease, so a hung member leaves time to
        // ask the next.
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(REQUEST_TIMEOUT).with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        let tls = endpoints.urls.iter().any(|u| u.starts_with("https://"));
        if !tls && (endpoints.ca.is_some() || endpoints.cert.is_some() || endpoints.key.is_some()) {
            anyhow::bail!("--store-ca, --store-cert and --store-key are for a store on https:// URLs; {} is not", endpoints.urls.join(","));
        }
        if tls {
            let read = |path: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
                path.as_ref().map(|p| std::fs::read(p).with_context(|| format!("cannot read the store's {what} {}", p.display()))).transpose()
            };
            let mut tls = OpenSslClientConfig::default();
            if let Some(ca) = read(&endpoints.ca, "CA")? {
                tls = tls.ca_cert_pem(&ca);
            }
            match (read(&endpoints.cert, "certificate")?, read(&endpoints.key, "key")?) {
                (Some(cert), Some(key)) => tls = tls.client_cert_pem_and_key(&cert, &key),
                (None, None) => {}
                _ => anyhow::bail!("--store-cert and --store-key go together"),
            }
            options = options.with_openssl_tls(tls);
        }
        let mut store = EtcdStore { endpoints: endpoints.clone(), options, at: 0, client: None };
        store.client().await?;
        Ok(store)
    }

    /// A client of the member spoken to, connected to the first member
    /// that answers if none is. One member at a time, not etcd-client's
    /// balanced channel: that one keeps sending requests to a dead member.
    async fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            let mut errors = Vec::new();
            for _ in 0..self.endpoints.urls.len() {
                let url = self.endpoints.urls[self.at].clone();
                let connected = match Client::connect([url.as_str()], Some(self.options.clone())).await {
                    // Connecting is lazy: ask the member something.
                    Ok(mut client) => client.status().await.map(|_| client),
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(client) => {
                        self.client = Some(client);
                        break;
                    }
                    Err(e) => {
                        errors.push(format!("{url}: {e}"));
                        self.at = (self.at + 1) % self.endpoints.urls.len();
                    }
                }
            }
            if self.client.is_none() {
                anyhow::bail!("cannot reach the store: {}", errors.join("; "));
            }
        }
        self.client.as_mut().context("no store client")
    }

    fn next_member(&mut self) {
        self.client = None;
        self.at = (self.at + 1) % self.endpoints.urls.len();
    }
}

#[async_trait]
impl ClusterStore for EtcdStore {
    async fn register(&mut self, machine: &MachineRecord, ttl: Duration) -> Result<std::result::Result<Registration, MachineRecord>> {
        let key = format!("{MACHINES}{}", machine.name);
        let lease = on_a_member!(self, |c| c.lease_grant(ttl.as_secs() as i64, None)).context("the store refused a lease")?.id();
        let value = serde_json::to_vec(machine)?;
        // Create-if-absent: a live agent of the same name keeps it.
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, Some(PutOptions::new().with_lease(lease)))]);
        // Again if the holder's lease ran out between the two questions.
        for _ in 0..3 {
            let response = on_a_member!(self, |c| c.txn(txn.clone())).context("the store refused the registration")?;
            if response.succeeded() {
                return Ok(Ok(Registration(lease)));
            }
            let held = on_a_member!(self, |c| c.get(key.clone(), None)).context("cannot read the registration")?;
            let holder = held.kvs().first().map(|kv| (kv.lease(), serde_json::from_slice::<MachineRecord>(kv.value())));
            // Ours after all: the answer to a first try was lost, and the
            // retry found the key it had made.
            if holder.as_ref().is_some_and(|(held_by, _)| *held_by == lease) {
                return Ok(Ok(Registration(lease)));
            }
            let Some((_, record)) = holder else { continue };
            let _ = on_a_member!(self, |c| c.lease_revoke(lease));
            return match record {
                Ok(record) => Ok(Err(record)),
                Err(e) => anyhow::bail!("the store holds a registration of {} that nsw cannot read: {e}", machine.name),
            };
        }
        let _ = on_a_member!(self, |c| c.lease_revoke(lease));
        anyhow::bail!("the registration of {} was refused three times, each time by a holder gone when asked: try again", machine.name)
    }

    async fn renew(&mut self, registration: Registration) -> Result<bool> {
        let answer = on_a_member!(self, |c| async {
            let (mut keeper, mut answers) = c.lease_keep_alive(registration.0).await?;
            keeper.keep_alive().await?;
            // A member that takes the request and never answers is gone too.
            match tokio::time::timeout(REQUEST_TIMEOUT, answers.message()).await {
                Ok(answer) => answer,
                Err(_) => Err(etcd_client::Error::IoError(std::io::Error::from(std::io::ErrorKind::TimedOut))),
            }
        })
        .context("cannot renew the registration")?;
        Ok(answer.is_some_and(|a| a.ttl() > 0))
    }

    async fn put_leased(&mut self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<Registration> {
        let key = format!("{ROOT}{key}");
        let lease = on_a_member!(self, |c| c.lease_grant(ttl.as_secs() as i64, None)).context("the store refused a lease")?.id();
        let options = PutOptions::new().with_lease(lease);
        on_a_member!(self, |c| c.put(key.clone(), value.clone(), Some(options.clone()))).with_context(|| format!("cannot write {key} to the store"))?;
        Ok(Registration(lease))
    }

    async fn withdraw(&mut self, registration: Registration) -> Result<()> {
        on_a_member!(self, |c| c.lease_revoke(registration.0)).context("cannot withdraw the registration")?;
        Ok(())
    }

    async fn machines(&mut self) -> Result<Vec<MachineRecord>> {
        let response = on_a_member!(self, |c| c.get(MACHINES, Some(GetOptions::new().with_prefix()))).context("cannot read the machines from the store")?;
        let mut machines: Vec<MachineRecord> = response.kvs().iter().filter_map(|kv| serde_json::from_slice(kv.value()).ok()).collect();
        machines.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(machines)
    }

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = format!("{ROOT}{key}");
        let response = on_a_member!(self, |c| c.get(key.clone(), None)).with_context(|| format!("cannot read {key} from the store"))?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn put(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        let key = format!("{ROOT}{key}");
        on_a_member!(self, |c| c.put(key.clone(), value.clone(), None)).with_context(|| format!("cannot write {key} to the store"))?;
        Ok(())
    }

    async fn put_all(&mut self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        // etcd takes at most 128 operations (--max-txn-ops) and 1.5 MiB
        // (--max-request-bytes) in one transaction by default.
        let mut batch: Vec<TxnOp> = Vec::new();
        let mut bytes = 0;
        let mut pairs = pairs.into_iter().peekable();
        while let Some((key, value)) = pairs.next() {
            bytes += key.len() + value.len();
            batch.push(TxnOp::put(format!("{ROOT}{key}"), value, None));
            let full = pairs.peek().is_none_or(|(k, v)| batch.len() >= 128 || bytes + k.len() + v.len() > 1 << 20);
            if full {
                let txn = Txn::new().and_then(std::mem::take(&mut batch));
                on_a_member!(self, |c| c.txn(txn.clone())).context("cannot write to the store")?;
                bytes = 0;
            }
        }
        Ok(())
    }

    async fn create(&mut self, key: &str, value: Vec<u8>) -> Result<bool> {
        let key = format!("{ROOT}{key}");
        let txn = Txn::new().when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(key.clone(), value, None)]);
        let response = on_a_member!(self, |c| c.txn(txn.clone())).with_context(|| format!("cannot create {key} in the store"))?;
        Ok(response.succeeded())
    }

    async fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = format!("{ROOT}{prefix}");
        let options = GetOptions::new().with_prefix().with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Ascend);
        let response = on_a_member!(self, |c| c.get(prefix.clone(), Some(options.clone()))).with_context(|| format!("cannot read {prefix} from the store"))?;
        Ok(response.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).trim_start_matches(ROOT).to_string(), kv.value().to_vec())).collect())
    }

    async fn keys(&mut self, prefix: &str) -> Result<Vec<String>> {
        let prefix = format!("{ROOT}{prefix}");
        let options = GetOptions::new().with_prefix().with_keys_only().with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Ascend);
        let response = on_a_member!(self, |c| c.get(prefix.clone(), Some(options.clone()))).with_context(|| format!("cannot read {prefix} from the store"))?;
        Ok(response.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).trim_start_matches(ROOT).to_string()).collect())
    }

    async fn replace(&mut self, key: &str, old: &[u8], value: Vec<u8>) -> Result<bool> {
        let key = format!("{ROOT}{key}");
        let txn = Txn::new().when([Compare::value(key.clone(), CompareOp::Equal, old.to_vec())]).and_then([TxnOp::put(key.clone(), value, None)]);
        let response = on_a_member!(self, |c| c.txn(txn.clone())).with_context(|| format!("cannot write {key} to the store"))?;
        Ok(response.succeeded())
    }

    async fn id(&mut self) -> Result<String> {
        let status = on_a_member!(self, |c| c.status()).context("cannot ask the store who it is")?;
        let cluster = status.header().map(|h| h.cluster_id()).context("the store did not say who it is")?;
        Ok(format!("etcd:{cluster:016x}"))
    }

    async fn delete(&mut self, key: &str, prefix: bool) -> Result<()> {
        let key = format!("{ROOT}{key}");
        let options = prefix.then(|| etcd_client::DeleteOptions::new().with_prefix());
        on_a_member!(self, |c| c.delete(key.clone(), options.clone())).with_context(|| format!("cannot delete {key} from the store"))?;
        Ok(())
    }

    async fn put_and_delete(&mut self, put: &str, value: Vec<u8>, delete: &str) -> Result<()> {
        let (put, delete) = (format!("{ROOT}{put}"), format!("{ROOT}{delete}"));
        let txn = Txn::new().and_then([TxnOp::put(put.clone(), value, None), TxnOp::delete(delete, None)]);
        on_a_member!(self, |c| c.txn(txn.clone())).with_context(|| format!("cannot write {put} to the store"))?;
        Ok(())
    }

    async fn take(&mut self, key: &str, n: u64) -> Result<u64> {
        let key = format!("{ROOT}{key}");
        // Compare-and-swap on the key's version, until no one else took
        // numbers in between.
        for _ in 0..100 {
            let response = on_a_member!(self, |c| c.get(key.clone(), None)).with_context(|| format!("cannot read {key} from the store"))?;
            let (first, version) = match response.kvs().first() {
                Some(kv) => (std::str::from_utf8(kv.value()).ok().and_then(|v| v.parse::<u64>().ok()).context("the store's counter is not a number")?, kv.version()),
                None => (1, 0),
            };
            let next = (first + n).to_string();
            let txn = Txn::new().when([Compare::version(key.clone(), CompareOp::Equal, version)]).and_then([TxnOp::put(key.clone(), next, None)]);
            if on_a_member!(self, |c| c.txn(txn.clone())).with_context(|| format!("cannot write {key} to the store"))?.succeeded() {
                return Ok(first);
            }
        }
        anyhow::bail!("the counter {key} kept changing under nsw: too many takers")
    }
}
