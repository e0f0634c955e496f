//! Several "machines" on one: throwaway network namespaces joined by an
//! underlay bridge (in a namespace of its own, 10.99.0.0/24), a real etcd
//! cluster of one member per machine (Debian's etcd-server), plain or TLS
//! with client certificates from a CA the test makes. Everything is gone
//! when it drops: members killed, namespaces and files removed.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use crate::{Machine, check, ip_in, nsw_bin, run, text, unique};

pub struct Cluster {
    pub machines: Vec<Machine>,
    underlay: String,
    pub dir: PathBuf,
    members: Vec<Option<Child>>,
    pub tls: bool,
    /// Every agent started, killed at the end if a failed test left it.
    agents: std::sync::Mutex<Vec<u32>>,
    /// Per machine, a process that holds its mount namespace: the
    /// machine's own `/run/nsw` and `/run/netns`, which outlive its agents
    /// as a real machine's do.
    keepers: Vec<Child>,
}

/// Machine `i`'s underlay address.
pub fn address(i: usize) -> String {
    format!("10.99.0.{}", i + 1)
}

impl Cluster {
    pub fn new(tag: &str, size: usize, tls: bool) -> Cluster {
        let dir = std::env::temp_dir().join(unique("nswt-cl-"));
        std::fs::create_dir_all(&dir).unwrap();
        let underlay = unique("nswt-ul-");
        check("ip", &["netns", "add", &underlay]);
        ip_in(&underlay, &["link", "set", "lo", "up"]);
        ip_in(&underlay, &["link", "add", "br0", "type", "bridge"]);
        ip_in(&underlay, &["link", "set", "br0", "up"]);
        let mut cluster = Cluster { machines: Vec::new(), underlay, dir, members: Vec::new(), tls, agents: Default::default(), keepers: Vec::new() };
        for i in 0..size {
            let machine = Machine::new(tag);
            let port = format!("m{i}");
            ip_in(&machine.name, &["link", "add", "ul0", "type", "veth", "peer", "name", &port, "netns", &cluster.underlay]);
            ip_in(&cluster.underlay, &["link", "set", &port, "master", "br0", "up"]);
            ip_in(&machine.name, &["address", "add", &format!("{}/24", address(i)), "dev", "ul0"]);
            ip_in(&machine.name, &["link", "set", "ul0", "up"]);
            let private = "mkdir -p /run/nsw /run/netns && mount -t tmpfs nswt-machine /run/nsw && mount -t tmpfs nswt-machine /run/netns && exec sleep infinity";
            let keeper = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", machine.name))
                .args(["unshare", "--mount", "--propagation", "private", "sh", "-c", private])
                .stdin(Stdio::null())
                .spawn()
                .expect("start a machine's keeper");
            cluster.machines.push(machine);
            cluster.keepers.push(keeper);
        }
        // Each keeper's mounts in place before anyone enters them.
        for keeper in &cluster.keepers {
            let pid = keeper.id();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().starts_with("sleep") {
                assert!(std::time::Instant::now() < until, "a machine's keeper did not start");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if tls {
            cluster.make_certificates();
        }
        for i in 0..size {
            let member = cluster.start_member(i);
            cluster.members.push(Some(member));
        }
        cluster.wait_healthy();
        cluster
    }

    fn scheme(&self) -> &str {
        if self.tls { "https" } else { "http" }
    }

    /// The client URLs of every member, comma-separated.
    pub fn urls(&self) -> String {
        (0..self.machines.len()).map(|i| format!("{}://{}:2379", self.scheme(), address(i))).collect::<Vec<_>>().join(",")
    }

    /// `--store URLS`, and nsw's client certificate when TLS.
    pub fn store_flags(&self) -> Vec<String> {
        let mut flags = vec!["--store".to_string(), self.urls()];
        if self.tls {
            for (flag, file) in [("--store-ca", "ca.crt"), ("--store-cert", "nsw.crt"), ("--store-key", "nsw.key")] {
                flags.push(flag.into());
                flags.push(self.dir.join(file).display().to_string());
            }
        }
        flags
    }

    fn start_member(&self, i: usize) -> Child {
        let peers: Vec<String> = (0..self.machines.len()).map(|j| format!("e{j}=http://{}:2380", address(j))).collect();
        let client = format!("{}://{}:2379", self.scheme(), address(i));
        let log = std::fs::File::create(self.dir.join(format!("etcd{i}.log"))).unwrap();
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.machines[i].name))
            .arg("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("etcd{i}")))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &format!("http://{}:2380", address(i)), "--initial-advertise-peer-urls", &format!("http://{}:2380", address(i))])
            .args(["--initial-cluster", &peers.join(","), "--initial-cluster-state", "new", "--initial-cluster-token", &self.underlay])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"]);
        if self.tls {
            let d = |f: &str| self.dir.join(f).display().to_string();
            command.args(["--cert-file", &d(&format!("e{i}.crt")), "--key-file", &d(&format!("e{i}.key")), "--client-cert-auth", "--trusted-ca-file", &d("ca.crt")]);
        }
        command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start etcd")
    }

    fn wait_healthy(&self) {
        let mut last = String::new();
        for _ in 0..100 {
            let mut args: Vec<String> = vec!["--endpoints".into(), self.urls()];
            if self.tls {
                for (flag, file) in [("--cacert", "ca.crt"), ("--cert", "nsw.crt"), ("--key", "nsw.key")] {
                    args.push(flag.into());
                    args.push(self.dir.join(file).display().to_string());
                }
            }
            args.extend(["endpoint".into(), "health".into()]);
            let out = self.on(0, "etcdctl", &args.iter().map(String::as_str).collect::<Vec<_>>());
            if out.status.success() {
                return;
            }
            last = text(&out);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("etcd did not become healthy: {last}\n{}", std::fs::read_to_string(self.dir.join("etcd0.log")).unwrap_or_default());
    }

    /// Kill etcd member `i` (kill -9).
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut member) = self.members[i].take() {
            let _ = member.kill();
            let _ = member.wait();
        }
    }

    /// A program in machine `i`'s network namespace.
    pub fn on(&self, i: usize, program: &str, args: &[&str]) -> Output {
        let net = format!("--net=/run/netns/{}", self.machines[i].name);
        run("nsenter", &[&[net.as_str(), program], args].concat())
    }

    /// `nsw ARGS --store ...` in machine `i`.
    pub fn nsw(&self, i: usize, args: &[&str]) -> Output {
        let flags = self.store_flags();
        let all: Vec<&str> = args.iter().copied().chain(flags.iter().map(String::as_str)).collect();
        let bin = nsw_bin();
        self.on(i, bin.to_str().unwrap(), &all)
    }

    /// `nsw agent --machine NAME --underlay ADDRESS --store ...` in machine
    /// `i`, running, with the machine's own `/run/nsw` and `/run/netns` (a
    /// mount namespace of the machine's, as Mininet's fake cluster does):
    /// its labs' namespaces and journals are the machine's, not the
    /// test's. Its stderr goes to the cluster's directory.
    pub fn spawn_agent(&self, i: usize, name: &str, store_flags: &[String]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("agent-{name}-{}.log", unique("")))).unwrap();
        let agent = Command::new("nsenter")
            .args(["-t", &self.keepers[i].id().to_string(), "-m", "-n"])
            .arg(nsw_bin())
            .args(["agent", "--machine", name, "--underlay", &address(i)])
            .args(store_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nsw agent");
        self.agents.lock().unwrap().push(agent.id());
        agent
    }

    /// A program run on machine `i` as its agents see it: its network and
    /// its mounts (`/run/netns`, `/run/nsw`).
    pub fn as_machine(&self, i: usize, program: &str, args: &[&str]) -> Output {
        let target = self.keepers[i].id().to_string();
        run("nsenter", &[&["-t", target.as_str(), "-m", "-n", program], args].concat())
    }

    /// A CA, a server certificate per member and a client one for nsw.
    fn make_certificates(&self) {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        check("openssl", &[&["req", "-x509"], &ec[..], &["-keyout", &d("ca.key"), "-out", &d("ca.crt"), "-days", "2", "-subj", "/CN=nsw test store CA"]].concat());
        let sign = |name: &str, ext: String| {
            check("openssl", &[&["req"], &ec[..], &["-keyout", &d(&format!("{name}.key")), "-out", &d(&format!("{name}.csr")), "-subj", &format!("/CN={name}")]].concat());
            std::fs::write(self.dir.join(format!("{name}.ext")), ext).unwrap();
            check(
                "openssl",
                &["x509", "-req", "-in", &d(&format!("{name}.csr")), "-CA", &d("ca.crt"), "-CAkey", &d("ca.key"), "-CAcreateserial", "-out", &d(&format!("{name}.crt")), "-days", "2", "-extfile", &d(&format!("{name}.ext"))],
            );
        };
        for i in 0..self.machines.len() {
            sign(&format!("e{i}"), format!("subjectAltName=IP:{}\nextendedKeyUsage=serverAuth,clientAuth\n", address(i)));
        }
        sign("nsw", "extendedKeyUsage=clientAuth\n".to_string());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // An agent a failed test did not stop (still an nsw agent: the pid
        // was not reused).
        for pid in self.agents.lock().map(|a| a.clone()).unwrap_or_default() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("agent") {
                let _ = run("kill", &["-KILL", &pid.to_string()]);
            }
        }
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
        for keeper in &mut self.keepers {
            let _ = keeper.kill();
            let _ = keeper.wait();
        }
        let _ = run("ip", &["netns", "del", &self.underlay]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
