//! Attack: reach past a node's own files through `files`, to a directory
//! of the machine's (`TARGET`, which the test watches), to the machine's
//! secrets, or into a wait that never ends.
//!
//!     nsw run hostile_files_escape.wasm [--allow exec=ln,mkfifo] -- TARGET [exec]
//!
//! Prints one line per attempt: `PATH: written`, `PATH: read N bytes` or
//! `PATH: refused: WHY`. With `exec`, a program of the node first plants
//! symbolic links (to TARGET, to /etc/shadow) and a FIFO in its own /tmp.

use nsw_sdk::{Guest, files, process, topology};

struct Attack;

fn root() -> files::FileOptions {
    files::FileOptions { mode: 0o644, owner: None, group: None }
}

fn write(node: &nsw_sdk::Netns, path: &str, options: &files::FileOptions) {
    match files::write_file(node, path, b"escaped\n", options) {
        Ok(()) => println!("{path}: written"),
        Err(e) => println!("{path}: refused: {e}"),
    }
}

fn read(node: &nsw_sdk::Netns, path: &str) {
    match files::read_file(node, path) {
        Ok(bytes) => println!("{path}: read {} bytes", bytes.len()),
        Err(e) => println!("{path}: refused: {e}"),
    }
}

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        let target = args.first().ok_or("usage: -- TARGET [exec]")?.trim_end_matches('/').to_string();
        let n = topology::create_netns("n")?;
        for path in [
            format!("/etc/../..{target}/dotdot"),
            format!("/tmp/../..{target}/dotdot"),
            format!("/proc/self/root{target}/magic"),
            format!("{target}/plain"),
            "/usr/local/bin/planted".to_string(),
            "relative/path".to_string(),
        ] {
            write(&n, &path, &root());
        }
        write(&n, "/tmp/setuid", &files::FileOptions { mode: 0o4755, owner: None, group: None });
        write(&n, "/tmp/nouser", &files::FileOptions { mode: 0o644, owner: Some("no-such-user".into()), group: None });
        read(&n, "/etc/shadow");
        if args.get(1).map(String::as_str) == Some("exec") {
            let plant = |argv: &[&str]| {
                let argv: Vec<String> = argv.iter().map(|w| w.to_string()).collect();
                process::run(&n, &argv, process::RunOptions { timeout_ms: 5_000 }).map(|_| ())
            };
            plant(&["ln", "-s", &format!("{target}/through-link"), "/tmp/link"])?;
            plant(&["ln", "-s", &target, "/tmp/dirlink"])?;
            plant(&["ln", "-s", "/etc/shadow", "/tmp/shadow"])?;
            plant(&["mkfifo", "/tmp/fifo"])?;
            write(&n, "/tmp/link", &root());
            write(&n, "/tmp/dirlink/through-dir-link", &root());
            write(&n, "/tmp/fifo", &root());
            read(&n, "/tmp/fifo");
            read(&n, "/tmp/shadow");
            read(&n, "/tmp/dirlink");
        }
        // The node's own /etc/passwd: its own copy, the machine's unchanged.
        let own_copy = || -> Result<usize, nsw_sdk::Error> {
            let mut mine = files::read_file(&n, "/etc/passwd")?;
            mine.extend_from_slice(b"planted:x:0:0::/:/bin/sh\n");
            files::write_file(&n, "/etc/passwd", &mine, &root())?;
            Ok(files::read_file(&n, "/etc/passwd")?.len())
        };
        match own_copy() {
            Ok(bytes) => println!("/etc/passwd: node's copy has {bytes} bytes"),
            Err(e) => println!("/etc/passwd: refused: {e}"),
        }
        Ok(())
    }
}

nsw_sdk::export!(Attack);
