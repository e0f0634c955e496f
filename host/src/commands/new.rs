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
}

const PYTHON_LAB: &str = include_str!("../../../guests/python/two_hosts.py");
const JS_LAB: &str = include_str!("../../../guests/js/two-hosts.js");
const C_LAB: &str = include_str!("../../../guests/c/two_hosts.c");
const C_LAB_H: &str = include_str!("../../../guests/c/bindings/lab.h");
const C_LAB_C: &str = include_str!("../../../guests/c/bindings/lab.c");
const C_TYPE_O: &[u8] = include_bytes!("../../../guests/c/bindings/lab_component_type.o");
const RUST_LAB: &str = include_str!("../../templates/rust-lib.rs");
/// The tools the repository pins (scripts/build-python, guests/js).
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
    let files = match args.lang {
        Lang::Rust => rust(name),
        Lang::Python => python(name),
        Lang::Js => js(name),
        Lang::C => c(name),
    };
    for (path, contents, executable) in &files {
        write(&dir.join(path), contents, *executable)?;
    }
    write(&dir.join("wit/nsw.wit"), WIT.as_bytes(), false)?;
    say!("nsw: made {} ({} lab); build it with:  cd {} && {}", dir.display(), lang_name(args.lang), dir.display(), build_command(args.lang));
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
