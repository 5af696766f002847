//! Builds every first-party plugin under `plugins/` to a wasm32-wasip2
//! component and embeds them, so `cargo build` alone yields a `sglab` that
//! knows them by name (`$OUT_DIR/builtin_plugins.rs`).

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..").canonicalize().expect("workspace root");
    for watched in ["plugins", "plugin-sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    git_commit(&root);
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    if let Err(e) = sglab_wasm_build::check_target(&rustc) {
        panic!("{e}");
    }
    let crates = sglab_wasm_build::plugin_crates(&root.join("plugins")).unwrap_or_else(|e| panic!("{e}"));
    let packages: Vec<String> = crates.iter().map(|(_, pkg)| pkg.clone()).collect();
    let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let wasm = sglab_wasm_build::build(&cargo, &root.join("Cargo.toml"), &root.join("target/wasm"), &packages)
        .unwrap_or_else(|e| panic!("{e}"));

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut src =
        String::from("/// First-party plugins: (name, component bytes).\npub static BUILTIN: &[(&str, &[u8])] = &[\n");
    for ((name, _), path) in crates.iter().zip(&wasm) {
        let copy = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(path, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        writeln!(src, "    ({name:?}, include_bytes!({:?})),", copy.display().to_string()).unwrap();
    }
    src.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), src).expect("write builtin_plugins.rs");
}

/// Sets `SGLAB_GIT_COMMIT` to the checkout's commit (12 hex digits), or
/// leaves it empty outside a git checkout or without git. Rebuilt when
/// HEAD moves (a commit updates the branch's ref or the packed refs).
fn git_commit(root: &std::path::Path) {
    let git = root.join(".git");
    for f in ["HEAD", "packed-refs"] {
        println!("cargo:rerun-if-changed={}", git.join(f).display());
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(r) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", git.join(r).display());
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=SGLAB_GIT_COMMIT={commit}");
    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let line = if commit.is_empty() { version } else { format!("{version} (commit {commit})") };
    println!("cargo:rustc-env=SGLAB_VERSION_LINE={line}");
}
