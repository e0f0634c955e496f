//! `nsw new NAME --lang rust|python|js|c`: a lab project to start from,
//! outside this repository: the two-hosts lab, the WIT (and for C the
//! bindings made from it), and a build command. The lab code is the very
//! code the tests build here (guests/), so it is known to work.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::wit::WIT;
use super::{CommandResult, Status, say};

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
    C,
}

#[derive(Args)]
pub struct NewArgs {
    /// The project's name: its directory and its .wasm.
    name: String,
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to make it [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With nsw's stock services (http-server, http-get, tcp-echo) as
    /// source in services/, and a lab that serves and fetches a page with
    /// them (Rust projects).
    #[arg(long)]
    services: bool,
}

const PYTHON_LAB: &str = include_str!("../../../guests/python/two_hosts.py");
const JS_LAB: &str = include_str!("../../../guests/js/two-hosts.js");
const C_LAB: &str = include_str!("../../../guests/c/two_hosts.c");
const C_LAB_H: &str = include_str!("../../../guests/c/bindings/lab.h");
const C_LAB_C: &str = include_str!("../../../guests/c/bindings/lab.c");
const C_TYPE_O: &[u8] = include_bytes!("../../../guests/c/bindings/lab_component_type.o");
const RUST_LAB: &str = include_str!("../../templates/rust-lib.rs");
const RUST_WEB_LAB: &str = include_str!("../../templates/rust-web-lib.rs");
/// One stock service, as source: the very code the tests build here
/// (guests/services), and where a project keeps it.
struct StockService {
    name: &'static str,
    cargo: &'static str,
    main: &'static str,
    source: &'static str,
}

const SERVICES: [StockService; 3] = [
    StockService {
        name: "http-server",
        cargo: "services/http-server/Cargo.toml",
        main: "services/http-server/src/main.rs",
        source: include_str!("../../../guests/services/http-server/src/main.rs"),
    },
    StockService {
        name: "http-get",
        cargo: "services/http-get/Cargo.toml",
        main: "services/http-get/src/main.rs",
        source: include_str!("../../../guests/services/http-get/src/main.rs"),
    },
    StockService {
        name: "tcp-echo",
        cargo: "services/tcp-echo/Cargo.toml",
        main: "services/tcp-echo/src/main.rs",
        source: include_str!("../../../guests/services/tcp-echo/src/main.rs"),
    },
];/// The tools the repository pins (scripts/build-python, guests/js).
const COMPONENTIZE_PY: &str = "0.25.1";
const COMPONENTIZE_JS: &str = "0.23.0";
const PREVIEW2_SHIM: &str = "0.25.0";
const JCO: &str = "1.35.0";

pub async fn exec(args: NewArgs) -> CommandResult {
    let name = &args.name;
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !ok {
        return Err(anyhow::anyhow!("project name {name:?}: use letters, digits, '_' and '-', starting with a letter").into());
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(anyhow::anyhow!("{} exists and is not empty", dir.display()).into());
    }
    if args.services && !matches!(args.lang, Lang::Rust) {
        return Err(anyhow::anyhow!("--services: the stock services come with Rust projects only, not with a {} one", lang_name(args.lang)).into());
    }
    let files = match args.lang {
        Lang::Rust if args.services => rust_with_services(name),
        Lang::Rust => rust(name),
        Lang::Python => python(name),
        Lang::Js => js(name),
        Lang::C => c(name),
    };
    for (path, contents, executable) in &files {
        write(&dir.join(path), contents, *executable)?;
    }
    write(&dir.join("wit/nsw.wit"), WIT.as_bytes(), false)?;
    // Where the project's scripts by reference get pinned (crate::sharing::lock).
    crate::sharing::lock::create(&dir)?;
    let build = if args.services { RUST_SERVICES_BUILD } else { build_command(args.lang) };
    say!("nsw: made {} ({} lab); build it with:  cd {} && {}", dir.display(), lang_name(args.lang), dir.display(), build);
    Ok(Status::Success)
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
        Lang::C => "C",
    }
}

fn build_command(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "cargo build --release",
        _ => "./build.sh",
    }
}

fn write(path: &Path, contents: &[u8], executable: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

type Files = Vec<(&'static str, Vec<u8>, bool)>;

fn readme(name: &str, build: &str, wasm: &str, needs: &str) -> Vec<u8> {
    format!(
        "# {name}\n\nAn nsw lab script: one node, `a`, joined to the lab's host by a veth pair, then three pings.\n\n\
         Needs: {needs}.\n\n    {build}\n    sudo nsw run {wasm}\n\n`wit/nsw.wit` is the contract with nsw (`nsw wit` prints the one your nsw has).\n"
    )
    .into_bytes()
}

fn rust(name: &str) -> Files {
    let crate_name = name.replace('-', "_");
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwit-bindgen = \"0.61\"\n\n\
         [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\n"
    );
    let wasm = format!("target/wasm32-wasip2/release/{crate_name}.wasm");
    vec![
        ("Cargo.toml", cargo.into_bytes(), false),
        (".cargo/config.toml", b"[build]\ntarget = \"wasm32-wasip2\"\n".to_vec(), false),
        ("src/lib.rs", RUST_LAB.replace("NAME", &crate_name).into_bytes(), false),
        ("README.md", readme(name, "cargo build --release", &wasm, "Rust and its wasm32-wasip2 target (rustup target add wasm32-wasip2)"), false),
    ]
}

/// Build the services, then the lab that carries them.
/// (`--target-dir`: the lab finds them there whatever CARGO_TARGET_DIR says.)
const RUST_SERVICES_BUILD: &str = "(cd services && cargo build --release --target-dir target) && cargo build --release";

/// A Rust lab with the stock services in `services/`, a workspace of their
/// own (they build as WASI commands, the lab as a library).
fn rust_with_services(name: &str) -> Files {
    let crate_name = name.replace('-', "_");
    let wasm = format!("target/wasm32-wasip2/release/{crate_name}.wasm");
    let mut text = readme(name, RUST_SERVICES_BUILD, &wasm, "Rust and its wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    text.extend_from_slice(SERVICES_README.as_bytes());
    let mut files = rust(name);
    for (path, contents, _) in files.iter_mut() {
        match *path {
            "src/lib.rs" => *contents = RUST_WEB_LAB.replace("NAME", &crate_name).into_bytes(),
            "README.md" => *contents = text.clone(),
            // The lab's own workspace leaves services/ to theirs.
            "Cargo.toml" => contents.extend_from_slice(b"\n[workspace]\nexclude = [\"services\"]\n"),
            _ => {}
        }
    }
    let members: Vec<String> = SERVICES.iter().map(|s| format!("\"{}\"", s.name)).collect();
    let workspace = format!(
        "# nsw's stock services: WASI command components (std only).\n[workspace]\nresolver = \"3\"\nmembers = [{}]\n\n\
         [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\n",
        members.join(", ")
    );
    files.push(("services/Cargo.toml", workspace.into_bytes(), false));
    files.push(("services/.cargo/config.toml", b"[build]\ntarget = \"wasm32-wasip2\"\n".to_vec(), false));
    for service in SERVICES {
        let cargo = format!("[package]\nname = \"{0}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[[bin]]\nname = \"{0}\"\npath = \"src/main.rs\"\n", service.name);
        files.push((service.cargo, cargo.into_bytes(), false));
        files.push((service.main, service.source.as_bytes().to_vec(), false));
    }
    files
}

const SERVICES_README: &str = "\nThe lab serves a page from node `a` with `http-server` and fetches it from the host with `http-get`.\n\
`services/` holds nsw's stock services (`http-server PORT [BODY]`, `http-get URL [BODY]`, `tcp-echo PORT`):\n\
WASI command components in Rust, std only. Build them, `include_bytes!` their .wasm, and start them with\n\
`service::start(node, name, bytes, args)`.\n";

fn python(name: &str) -> Files {
    let build = format!(
        "#!/bin/sh\n# Build {name}.wasm with componentize-py, in a virtual environment of its own.\nset -e\ncd \"$(dirname \"$0\")\"\n\
         [ -x .venv/bin/componentize-py ] || {{ python3 -m venv .venv && .venv/bin/pip install --quiet componentize-py=={COMPONENTIZE_PY}; }}\n\
         rm -rf bindings\n.venv/bin/componentize-py -d wit -w lab bindings bindings >/dev/null\n\
         .venv/bin/componentize-py -d wit -w lab componentize -p bindings -p . app -o {name}.wasm >/dev/null\necho \"built {name}.wasm\"\n"
    );
    vec![
        ("app.py", PYTHON_LAB.as_bytes().to_vec(), false),
        ("build.sh", build.into_bytes(), true),
        ("README.md", readme(name, "./build.sh", &format!("{name}.wasm"), "python3 with venv"), false),
    ]
}

fn js(name: &str) -> Files {
    let package = format!(
        "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \"devDependencies\": {{\n    \
         \"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS}\",\n    \"@bytecodealliance/preview2-shim\": \"{PREVIEW2_SHIM}\"\n  }}\n}}\n"
    );
    let build = format!(
        "#!/bin/sh\n# Build {name}.wasm with componentize-js (no wasi:http: nsw does not provide it).\nset -e\ncd \"$(dirname \"$0\")\"\n\
         [ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --loglevel=error\n\
         node_modules/.bin/componentize-js app.js --wit wit --world-name lab --disable http fetch-event -o {name}.wasm >/dev/null\necho \"built {name}.wasm\"\n"
    );
    vec![
        ("app.js", JS_LAB.as_bytes().to_vec(), false),
        ("package.json", package.into_bytes(), false),
        ("build.sh", build.into_bytes(), true),
        ("README.md", readme(name, "./build.sh", &format!("{name}.wasm"), "Node.js and npm"), false),
    ]
}

fn c(name: &str) -> Files {
    let build = format!(
        "#!/bin/sh\n# Build {name}.wasm: clang for wasm32-wasi (a reactor), then jco wraps it with the WASI reactor adapter.\n\
         # bindings/ was made from wit/nsw.wit by wit-bindgen c (world lab).\nset -e\ncd \"$(dirname \"$0\")\"\n\
         clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Ibindings -o core.wasm app.c bindings/lab.c bindings/lab_component_type.o\n\
         npx --yes @bytecodealliance/jco@{JCO} new core.wasm --wasi-reactor -o {name}.wasm >/dev/null\nrm -f core.wasm\necho \"built {name}.wasm\"\n"
    );
    vec![
        ("app.c", C_LAB.as_bytes().to_vec(), false),
        ("bindings/lab.h", C_LAB_H.as_bytes().to_vec(), false),
        ("bindings/lab.c", C_LAB_C.as_bytes().to_vec(), false),
        ("bindings/lab_component_type.o", C_TYPE_O.to_vec(), false),
        ("build.sh", build.into_bytes(), true),
        (
            "README.md",
            readme(name, "./build.sh", &format!("{name}.wasm"), "clang, lld, wasi-libc and the wasm32 compiler runtime (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32), Node.js and npm"),
            false,
        ),
    ]
}
