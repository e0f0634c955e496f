//! Lab scripts shared by reference, against a real OCI registry (Debian's
//! docker-registry on the loopback of each test's throwaway machine):
//! push and pull byte for byte, the Wasm OCI media types, signatures and
//! trust, a re-pushed tag, a corrupted blob, nsw.lock, and TLS with a CA
//! the test makes.

use std::path::Path;

use nsw_tests::registry::Registry;
use nsw_tests::{Machine, assert_no_leak, check, guest, stderr, stdout, text};

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    stdout(&out)
}

fn refused(out: std::process::Output) -> String {
    assert!(!out.status.success(), "should have been refused: {}", text(&out));
    stderr(&out)
}

/// The digest `nsw push` printed.
fn pushed_digest(printed: &str) -> String {
    printed.lines().find_map(|l| l.strip_prefix("digest: ")).unwrap_or_else(|| panic!("no digest in {printed}")).trim().to_string()
}

fn sha256(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    let mut child = out;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap())
}

/// `nsw run REF --rm --name LAB FLAGS`, checked to leave nothing.
fn run_rm(reg: &Registry, machine: &Machine, reference: &str, flags: &[&str]) -> std::process::Output {
    let lab = machine.lab("sh");
    let mut args = vec!["run", reference, "--rm", "--name", lab.name.as_str()];
    args.extend_from_slice(flags);
    let out = reg.nsw(&args);
    assert_no_leak(&lab.name, machine, &lab.before);
    out
}

#[test]
fn push_pull_round_trip_with_wasm_media_types_and_a_pinned_digest_runs() {
    let machine = Machine::new("oci");
    let reg = Registry::start(&machine, false);
    let file = guest("two_hosts");
    let reference = reg.reference("labs/two-hosts:v1");
    let digest = pushed_digest(&ok(reg.nsw(&["push", file.to_str().unwrap(), &reference])));

    // What the registry stores: an OCI image manifest, the Wasm config, one
    // application/wasm layer that is the file, byte for byte.
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(reg.blob_file(&digest)).unwrap()).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{manifest}");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json", "{manifest}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let original = std::fs::read(&file).unwrap();
    assert_eq!(layers[0]["digest"], sha256(&original));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(reg.blob_file(manifest["config"]["digest"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("wasm"), Some("wasip2")), "{config}");

    let out = reg.dir.join("pulled.wasm");
    let printed = ok(reg.nsw(&["pull", &reference, out.to_str().unwrap()]));
    assert!(printed.contains(&digest), "{printed}");
    assert_eq!(std::fs::read(&out).unwrap(), original, "the pulled component differs from the pushed file");

    // inspect by reference: digest, size, signer, grants.
    let inspected: serde_json::Value = serde_json::from_str(&ok(reg.nsw(&["inspect", "--json", &reference]))).unwrap();
    assert_eq!(inspected["digest"], digest.as_str());
    assert_eq!(inspected["size"], original.len());
    assert_eq!(inspected["signer"], serde_json::Value::Null);
    assert!(inspected["untrusted"].as_str().unwrap().contains("not signed"), "{inspected}");

    // Pinned by digest, it runs (unsigned: the user says so), and the lab
    // records the reference with the digest that ran.
    let pinned = format!("{}@{digest}", reg.reference("labs/two-hosts"));
    let lab = machine.lab("pin");
    ok(reg.nsw(&["run", &pinned, "--name", &lab.name, "--insecure-unsigned"]));
    let listed = ok(reg.nsw(&["ls", "--json"]));
    assert!(listed.contains(&pinned), "nsw ls does not name {pinned}: {listed}");
    ok(reg.nsw(&["down", &lab.name]));
    assert_no_leak(&lab.name, &machine, &lab.before);

    // The name of the lab defaults to the repository's last part.
    let out = reg.nsw(&["plan", &reference, "--insecure-unsigned"]);
    let plan = ok(out);
    assert!(plan.contains(&format!("{reference}@{digest}")), "{plan}");
    assert!(plan.contains("two_hosts-"), "the plan's lab is not named after the repository: {plan}");
}

#[test]
fn only_scripts_signed_by_a_trusted_key_run() {
    let machine = Machine::new("sig");
    let reg = Registry::start(&machine, false);
    let file = guest("noop");
    let key_a = reg.dir.join("alice");
    let key_b = reg.dir.join("bob");
    let alice = ok(reg.nsw(&["key", "new", key_a.to_str().unwrap()]));
    ok(reg.nsw(&["key", "new", key_b.to_str().unwrap()]));
    let alice_key = alice.lines().find_map(|l| l.strip_prefix("others trust it with: nsw trust add ")).unwrap().trim().to_string();
    assert!(alice_key.starts_with("ed25519:") && alice_key.len() == 8 + 64, "{alice}");
    assert!(refused(reg.nsw(&["key", "new", key_a.to_str().unwrap()])).contains("never overwrites"));

    // Unsigned: refused, saying so and how to run it anyway.
    let unsigned = reg.reference("labs/noop:plain");
    ok(reg.nsw(&["push", file.to_str().unwrap(), &unsigned]));
    let why = refused(run_rm(&reg, &machine, &unsigned, &[]));
    assert!(why.contains("not signed") && why.contains("--insecure-unsigned"), "{why}");
    ok(run_rm(&reg, &machine, &unsigned, &["--insecure-unsigned"]));
    // nsw test and nsw plan judge the same.
    assert!(refused(reg.nsw(&["test", &unsigned])).contains("not signed"));
    assert!(refused(reg.nsw(&["plan", &unsigned])).contains("not signed"));

    // Signed by alice, whom nobody trusts yet: refused, naming her key and
    // the command that would trust it.
    let signed = reg.reference("labs/noop:signed");
    ok(reg.nsw(&["push", file.to_str().unwrap(), &signed, "--sign", key_a.to_str().unwrap()]));
    let why = refused(run_rm(&reg, &machine, &signed, &[]));
    assert!(why.contains(&alice_key) && why.contains(&format!("nsw trust add {alice_key} --for")), "{why}");

    // Trusted for another repository only: still refused.
    ok(reg.nsw(&["trust", "add", &alice_key, "--for", &format!("{}/elsewhere", reg.host)]));
    refused(run_rm(&reg, &machine, &signed, &[]));
    // Trusted for labs/ (by her public key file): it runs.
    ok(reg.nsw(&["trust", "add", &format!("{}.pub", key_a.display()), "--for", &format!("{}/labs", reg.host)]));
    let listed = ok(reg.nsw(&["trust", "ls"]));
    assert!(listed.contains(&alice_key) && listed.contains("/labs") && listed.contains("/elsewhere"), "{listed}");
    ok(run_rm(&reg, &machine, &signed, &[]));
    let inspected = ok(reg.nsw(&["inspect", &signed]));
    assert!(inspected.contains("trusted for it"), "{inspected}");

    // Signed by bob (the wrong key): refused, naming bob's key.
    let wrong = reg.reference("labs/noop:bob");
    let bob = ok(reg.nsw(&["push", file.to_str().unwrap(), &wrong, "--sign", key_b.to_str().unwrap()]));
    let bob_key = bob.lines().find_map(|l| l.split_once('(').map(|(_, k)| k.trim_end_matches(')').to_string())).unwrap();
    let why = refused(run_rm(&reg, &machine, &wrong, &[]));
    assert!(why.contains(&bob_key) && why.contains("not trusted"), "{why}");

    // Changed after alice signed it (a custom section added, digests all
    // valid): the signature no longer verifies, refused even with
    // --insecure-unsigned.
    let pulled = reg.dir.join("signed.wasm");
    ok(reg.nsw(&["pull", &signed, pulled.to_str().unwrap()]));
    let mut changed = std::fs::read(&pulled).unwrap();
    changed.extend_from_slice(&[0x00, 0x07, 0x01, b'x', b'e', b'v', b'i', b'l', b'!']);
    let changed_file = reg.dir.join("changed.wasm");
    std::fs::write(&changed_file, &changed).unwrap();
    let tampered = reg.reference("labs/noop:tampered");
    ok(reg.nsw(&["push", changed_file.to_str().unwrap(), &tampered]));
    let why = refused(run_rm(&reg, &machine, &tampered, &["--insecure-unsigned"]));
    assert!(why.contains("does not verify"), "{why}");

    // A signature section nsw cannot read: refused too, never "unsigned".
    let original = std::fs::read(&file).unwrap();
    let mut garbled = original[..8].to_vec();
    let name = b"signature";
    let payload = [0xffu8; 12];
    garbled.extend_from_slice(&[0x00, (1 + name.len() + payload.len()) as u8, name.len() as u8]);
    garbled.extend_from_slice(name);
    garbled.extend_from_slice(&payload);
    garbled.extend_from_slice(&original[8..]);
    let garbled_file = reg.dir.join("garbled.wasm");
    std::fs::write(&garbled_file, &garbled).unwrap();
    let garbled_ref = reg.reference("labs/noop:garbled");
    ok(reg.nsw(&["push", garbled_file.to_str().unwrap(), &garbled_ref]));
    let why = refused(run_rm(&reg, &machine, &garbled_ref, &["--insecure-unsigned"]));
    assert!(why.contains("cannot be read"), "{why}");
}

#[test]
fn a_re_pushed_tag_is_refused_unless_signed_and_a_pinned_digest_keeps_running() {
    let machine = Machine::new("tag");
    let reg = Registry::start(&machine, false);
    let tag = reg.reference("labs/lab:stable");
    let first = pushed_digest(&ok(reg.nsw(&["push", guest("noop").to_str().unwrap(), &tag])));
    ok(run_rm(&reg, &machine, &tag, &["--insecure-unsigned"]));

    // Someone pushes another unsigned script under the same tag.
    let second = pushed_digest(&ok(reg.nsw(&["push", guest("two_hosts").to_str().unwrap(), &tag])));
    assert_ne!(first, second);
    let why = refused(run_rm(&reg, &machine, &tag, &["--insecure-unsigned"]));
    assert!(why.contains(&first) && why.contains(&second) && why.contains("re-pushed"), "{why}");
    // What was pinned keeps running what it pinned.
    let pinned = format!("{}@{first}", reg.reference("labs/lab"));
    ok(run_rm(&reg, &machine, &pinned, &["--insecure-unsigned"]));
    // Accepting the new script explicitly (tag and digest) moves the tag.
    ok(run_rm(&reg, &machine, &format!("{tag}@{second}"), &["--insecure-unsigned"]));
    ok(run_rm(&reg, &machine, &tag, &["--insecure-unsigned"]));

    // A re-push signed by a trusted key runs.
    let key = reg.dir.join("k");
    let made = ok(reg.nsw(&["key", "new", key.to_str().unwrap()]));
    let public = made.lines().find_map(|l| l.strip_prefix("others trust it with: nsw trust add ")).unwrap().trim().to_string();
    ok(reg.nsw(&["trust", "add", &public]));
    ok(reg.nsw(&["push", guest("noop").to_str().unwrap(), &tag, "--sign", key.to_str().unwrap()]));
    ok(run_rm(&reg, &machine, &tag, &[]));
}

#[test]
fn a_corrupted_blob_is_refused() {
    let machine = Machine::new("bad");
    let reg = Registry::start(&machine, false);
    let reference = reg.reference("labs/noop:v1");
    let digest = pushed_digest(&ok(reg.nsw(&["push", guest("noop").to_str().unwrap(), &reference])));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(reg.blob_file(&digest)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    // One byte of the stored component flipped, as a bad disk or a hostile
    // registry would serve it.
    let stored = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&stored, &bytes).unwrap();
    for command in ["run", "inspect"] {
        let out = if command == "run" { run_rm(&reg, &machine, &reference, &["--insecure-unsigned"]) } else { reg.nsw(&["inspect", &reference]) };
        let why = refused(out);
        assert!(why.contains("digest") && why.contains(&layer[..15]), "{command}: {why}");
    }
    // Nothing of it was kept.
    let kept = reg.dir.join("cache/oci/blobs").join(layer.replace(':', "-"));
    assert!(!kept.exists(), "{} was kept", kept.display());
}

#[test]
fn nsw_lock_pins_what_a_project_runs() {
    let machine = Machine::new("lock");
    let reg = Registry::start(&machine, false);
    let tag = reg.reference("labs/lab:dev");
    let first = pushed_digest(&ok(reg.nsw(&["push", guest("noop").to_str().unwrap(), &tag])));
    // --locked where no nsw.lock is: refused.
    assert!(refused(reg.nsw(&["plan", &tag, "--insecure-unsigned", "--locked"])).contains("no nsw.lock"));

    // A project from nsw new has an nsw.lock, pinning nothing yet.
    ok(reg.nsw(&["new", "project"]));
    let project = reg.dir.join("project");
    std::fs::create_dir_all(project.join("sub")).unwrap();
    let lock = project.join("nsw.lock");
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", tag.as_str(), "--insecure-unsigned"];
        args.extend_from_slice(extra);
        reg.nsw_in(&project.join("sub"), &args)
    };
    assert!(refused(plan(&["--locked"])).contains("not pinned"));
    // A run (from a subdirectory) pins it; --locked then runs it.
    assert!(ok(plan(&[])).contains(&first));
    let written = std::fs::read_to_string(&lock).unwrap();
    assert!(written.contains(&tag) && written.contains(&first), "{written}");
    assert!(ok(plan(&["--locked"])).contains(&first));

    // The tag moves; the project keeps running what its lock pins.
    let second = pushed_digest(&ok(reg.nsw(&["push", guest("two_hosts").to_str().unwrap(), &tag])));
    let planned = ok(plan(&[]));
    assert!(planned.contains(&first) && !planned.contains(&second), "{planned}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), written, "the lock changed");
    // Outside the project the tag names the new script (refused there:
    // re-pushed, unsigned).
    assert!(refused(reg.nsw_in(Path::new("/"), &["plan", &tag, "--insecure-unsigned"])).contains("re-pushed"));

    // A lock is never a way to name files: a digest that is not one is
    // refused, and the file it names is untouched.
    let victim = reg.dir.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let planted = format!("[[script]]\nreference = \"{tag}\"\ndigest = \"../../../victim\"\n");
    std::fs::write(&lock, planted).unwrap();
    assert!(refused(plan(&[])).contains("sha256"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    // Nor is a lock others may write used (as one left in /tmp would be).
    std::fs::write(&lock, &written).unwrap();
    std::fs::set_permissions(&lock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    assert!(refused(plan(&[])).contains("not yours"));
}

#[test]
fn a_tls_registry_with_a_ca_of_its_own() {
    let machine = Machine::new("tls");
    let reg = Registry::start(&machine, true);
    let reference = reg.reference("labs/noop:v1");
    let digest = pushed_digest(&ok(reg.nsw(&["push", guest("noop").to_str().unwrap(), &reference])));
    ok(run_rm(&reg, &machine, &format!("{reference}@{digest}"), &["--insecure-unsigned"]));
    // Without the CA in certs.d the registry is not believed.
    std::fs::remove_dir_all(reg.dir.join("cfg/containers")).unwrap();
    let why = refused(reg.nsw(&["inspect", &reference]));
    assert!(why.to_lowercase().contains("certificate"), "{why}");
}

#[test]
fn an_ordinary_user_runs_a_signed_script_by_reference_with_trust_of_its_own() {
    use nsw_tests::user::User;
    let machine = Machine::new("usr");
    let reg = Registry::start(&machine, false);
    let user = User::new();
    let reference = reg.reference("labs/two-hosts:v1");
    let key = reg.dir.join("k");
    let made = ok(reg.nsw(&["key", "new", key.to_str().unwrap()]));
    let public = made.lines().find_map(|l| l.strip_prefix("others trust it with: nsw trust add ")).unwrap().trim().to_string();
    ok(reg.nsw(&["push", guest("two_hosts").to_str().unwrap(), &reference, "--sign", key.to_str().unwrap()]));
    // Root trusting the key (in the test's config) gives the user nothing.
    ok(reg.nsw(&["trust", "add", &public]));
    let lab = nsw_tests::unique("ush");
    let why = refused(user.nsw(&machine, &["run", &reference, "--plain-http", "--rm", "--name", &lab]));
    assert!(why.contains("not trusted"), "{why}");
    ok(user.nsw(&machine, &["trust", "add", &public, "--for", &reg.host]));
    assert!(user.home.join(".config/nsw/trust.toml").exists());
    let out = user.nsw(&machine, &["run", &reference, "--plain-http", "--rm", "--name", &lab]);
    assert!(out.status.success() && text(&out).contains("taken down"), "{}", text(&out));
    // Its store is its own.
    assert!(user.home.join(".cache/nsw/oci/blobs").is_dir());
    user.assert_nothing_left();
}

#[test]
fn registry_credentials_come_from_the_docker_auth_file() {
    let machine = Machine::new("auth");
    let reg = Registry::start_with(&machine, true, Some(("alice", "s3cret")));
    let reference = reg.reference("labs/noop:v1");
    let push = |reg: &Registry| reg.nsw(&["push", guest("noop").to_str().unwrap(), &reference]);
    let why = refused(push(&reg));
    assert!(why.to_lowercase().contains("unauthorized") || why.contains("401"), "{why}");
    // As `docker login` writes it (HOME is the test's).
    std::fs::create_dir_all(reg.dir.join(".docker")).unwrap();
    let auth = check("sh", &["-c", "printf alice:s3cret | base64"]);
    let config = format!("{{\"auths\": {{\"https://{}\": {{\"auth\": \"{}\"}}}}}}", reg.host, auth.trim());
    std::fs::write(reg.dir.join(".docker/config.json"), config).unwrap();
    let digest = pushed_digest(&ok(push(&reg)));
    ok(run_rm(&reg, &machine, &format!("{reference}@{digest}"), &["--insecure-unsigned"]));
}

#[test]
fn a_registry_that_sends_an_endless_manifest_is_cut_off() {
    let machine = Machine::new("big");
    // A hostile "registry": any manifest is an endless stream of spaces.
    let server = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        if "/manifests/" in self.path:
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b" " * 65536)
            except Exception:
                return
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 5001), H).serve_forever()
"#;
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", machine.name))
        .args(["python3", "-c", server])
        .spawn()
        .unwrap();
    let mut listening = false;
    for _ in 0..100 {
        let out = nsw_tests::in_ns(&machine.name, "ss", &["-Hltn", "sport = :5001"]);
        if !stdout(&out).trim().is_empty() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(listening, "the fake registry did not listen");
    let dir = std::env::temp_dir().join(nsw_tests::unique("nswt-big-"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = machine.nsw_env(&["inspect", "--plain-http", "oci://127.0.0.1:5001/x/big:v1"], &[("NSW_CACHE_DIR", dir.to_str().unwrap()), ("XDG_CONFIG_HOME", dir.to_str().unwrap())]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let why = refused(out);
    assert!(why.contains("larger than 64 KiB"), "{why}");
}
