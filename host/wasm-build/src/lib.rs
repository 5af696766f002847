//! Builds plugin crates to `wasm32-wasip2` components with a nested `cargo`.
//!
//! Used by the `sglab` build script (to embed the first-party plugins) and by
//! the tests crate (to build the hostile test plugins). The nested cargo gets
//! its own target directory, so it never waits on the outer build's lock, and
//! a clean environment, so the outer build's flags and wrappers (clippy,
//! coverage) do not leak into the guest build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile plugins are built with (defined in the workspace root).
pub const PROFILE: &str = "wasm-plugin";

/// Variables the outer cargo sets that must not reach the nested build.
const SCRUB: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "__CARGO_FIX_PLZ",
    "CARGO_LLVM_COV",
    "LLVM_PROFILE_FILE",
];

/// Checks that the rustc at `rustc` has the `wasm32-wasip2` standard library.
pub fn check_target(rustc: &Path) -> Result<(), String> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", rustc.display()))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {TARGET} is not installed (needed to build sglab's plugins); \
             run `rustup target add {TARGET}` and build again"
        ))
    }
}

/// Builds `packages` of the workspace at `manifest` and returns the path of
/// each package's `.wasm` component, in order.
pub fn build(cargo: &Path, manifest: &Path, target_dir: &Path, packages: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for var in SCRUB {
        cmd.env_remove(var);
    }
    let status = cmd.status().map_err(|e| format!("cannot run {}: {e}", cargo.display()))?;
    if !status.success() {
        return Err(format!("building {} for {TARGET} failed ({status})", packages.join(", ")));
    }
    let out_dir = target_dir.join(TARGET).join(PROFILE);
    packages
        .iter()
        .map(|p| {
            let path = out_dir.join(format!("{}.wasm", p.replace('-', "_")));
            if path.is_file() { Ok(path) } else { Err(format!("{p} built, but {} is missing", path.display())) }
        })
        .collect()
}

/// Plugin crates under `dir`: each sub-directory with a `Cargo.toml`, as
/// (directory name, package name), sorted. The package name is read from the
/// manifest's `[package] name`.
pub fn plugin_crates(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = ").map(|v| v.trim_matches('"').to_owned()))
            .ok_or_else(|| format!("{}: no package name", manifest.display()))?;
        found.push((entry.file_name().to_string_lossy().into_owned(), name));
    }
    found.sort();
    Ok(found)
}
