//! A real OCI registry for the sharing tests: Debian's `docker-registry`
//! (the CNCF distribution registry), started on the loopback of a test's
//! throwaway machine, plain HTTP or TLS with a CA the test makes. Its
//! storage, the CA and nsw's own config and cache for the test live in one
//! temporary directory, gone with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::{Machine, check, in_ns, nsw_bin, unique};

pub struct Registry {
    child: Child,
    /// Everything of the test's: the registry's storage and config, the
    /// CA, and nsw's XDG_CONFIG_HOME and cache.
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub tls: bool,
    machine: String,
}

impl Registry {
    /// A registry in `machine` on 127.0.0.1:5000 (plain) or :5443 (TLS,
    /// its CA put where nsw looks: `$XDG_CONFIG_HOME/containers/certs.d`).
    pub fn start(machine: &Machine, tls: bool) -> Registry {
        Registry::start_with(machine, tls, None)
    }

    /// The same, asking for `user`'s password (htpasswd, bcrypt by
    /// Python's crypt) on every request.
    pub fn start_with(machine: &Machine, tls: bool, login: Option<(&str, &str)>) -> Registry {
        let dir = std::env::temp_dir().join(unique("nswt-reg-"));
        std::fs::create_dir_all(dir.join("cfg")).unwrap();
        let port = if tls { 5443 } else { 5000 };
        let host = format!("127.0.0.1:{port}");
        let mut config = format!("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n", dir.join("data").display());
        if tls {
            make_certificates(&dir);
            let certs_d = dir.join("cfg/containers/certs.d").join(&host);
            std::fs::create_dir_all(&certs_d).unwrap();
            std::fs::copy(dir.join("ca.crt"), certs_d.join("ca.crt")).unwrap();
            config += &format!("  tls:\n    certificate: {}\n    key: {}\n", dir.join("server.crt").display(), dir.join("server.key").display());
        }
        if let Some((user, password)) = login {
            let script = "import crypt, sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))";
            let line = check("python3", &["-W", "ignore", "-c", script, user, password]);
            std::fs::write(dir.join("htpasswd"), line).unwrap();
            config += &format!("auth:\n  htpasswd:\n    realm: nsw-test\n    path: {}\n", dir.join("htpasswd").display());
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", machine.name))
            .args(["docker-registry", "serve"])
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, dir, host, tls, machine: machine.name.clone() };
        registry.wait_listening(port);
        registry
    }

    fn wait_listening(&self, port: u16) {
        for _ in 0..100 {
            let out = in_ns(&self.machine, "ss", &["-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not listen: {}", std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default());
    }

    /// `oci://HOST/PATH`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host)
    }

    /// The environment nsw runs with in these tests: the test's own trust
    /// file, certificates and cache (never the machine's).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("XDG_CONFIG_HOME".into(), self.dir.join("cfg").display().to_string()),
            ("NSW_CACHE_DIR".into(), self.dir.join("cache").display().to_string()),
            // Only the certs.d CA: no CA of the machine's is needed.
            ("HOME".into(), self.dir.display().to_string()),
        ]
    }

    /// Run nsw in the machine with [`Registry::env`], in `cwd`, with
    /// `--plain-http` added after the subcommand when the registry is plain.
    pub fn nsw_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let takes_http = matches!(args.first(), Some(&"push" | &"pull" | &"run" | &"test" | &"plan" | &"inspect"));
        if !self.tls && takes_http {
            all.insert(1, "--plain-http");
        }
        let mut command = Command::new("timeout");
        command.args(["120", "nsenter", &format!("--net=/run/netns/{}", self.machine)]).arg(nsw_bin()).args(&all).current_dir(cwd);
        for (k, v) in self.env() {
            command.env(k, v);
        }
        command.output().expect("running nsw")
    }

    pub fn nsw(&self, args: &[&str]) -> Output {
        self.nsw_in(&self.dir, args)
    }

    /// The file the registry stores a blob of `digest` in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir.join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &Path) {
    let d = |name: &str| dir.join(name).display().to_string();
    check("openssl", &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &d("ca.key"), "-out", &d("ca.crt"), "-days", "2", "-subj", "/CN=nsw test CA"]);
    check("openssl", &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &d("server.key"), "-out", &d("server.csr"), "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    check(
        "openssl",
        &["x509", "-req", "-in", &d("server.csr"), "-CA", &d("ca.crt"), "-CAkey", &d("ca.key"), "-CAcreateserial", "-out", &d("server.crt"), "-days", "2", "-extfile", &d("san.ext")],
    );
}
