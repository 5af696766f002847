//! `sglab plugin build DIR`: builds a plugin crate to a `wasm32-wasip2`
//! component with cargo (or a Python plugin, a directory with an `app.py`
//! and no Cargo.toml, with componentize-py), then loads it the way a run
//! would and prints what `sglab plugin inspect` shows.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use crate::plugin_cli::{inspect, load_any};

/// Arguments of `sglab plugin build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The plugin's directory (holding Cargo.toml, or app.py for Python).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Also write the component here (Python: instead of `DIR/build/NAME.wasm`).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// The `.wasm` files cargo reports in `--message-format=json` output for the
/// package at `manifest`.
fn wasm_artifacts(json_lines: impl BufRead, manifest: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for line in json_lines.lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let ours = v["manifest_path"].as_str().is_some_and(|m| Path::new(m) == manifest);
        let files = v["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
        found.extend(files.filter(|f| ours && f.ends_with(".wasm")).map(PathBuf::from));
    }
    found
}

/// Runs `sglab plugin build`.
pub fn main(args: BuildArgs) -> anyhow::Result<()> {
    let manifest = args.dir.join("Cargo.toml");
    if !manifest.is_file() && args.dir.join("app.py").is_file() {
        let path = crate::plugin_python::build(&args.dir, args.out.as_deref())?;
        return report(&path);
    }
    let manifest = manifest.canonicalize().with_context(|| {
        format!("{}: no Cargo.toml, and no app.py (is this a plugin directory?)", args.dir.display())
    })?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // Check with the toolchain the crate's directory selects.
    let rustc_path = Command::new("rustup")
        .args(["which", "rustc"])
        .current_dir(&args.dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from(&rustc));
    sglab_wasm_build::check_target(&rustc_path).map_err(anyhow::Error::msg)?;
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--target", sglab_wasm_build::TARGET, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(&args.dir)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let wasm = wasm_artifacts(std::io::BufReader::new(stdout), &manifest);
    let status = child.wait()?;
    if !status.success() {
        bail!("building {} failed ({status}); cargo's messages are above", manifest.display());
    }
    let Some(path) = wasm.last() else {
        bail!("{} built, but no .wasm came out: is `crate-type = [\"cdylib\"]` in [lib]?", manifest.display());
    };
    let path = match &args.out {
        Some(out) => {
            std::fs::copy(path, out).with_context(|| format!("copying {} to {}", path.display(), out.display()))?;
            out.clone()
        }
        None => path.clone(),
    };
    report(&path)
}

/// Loads the component the way a run would and prints what `inspect` shows.
fn report(path: &Path) -> anyhow::Result<()> {
    let loaded = load_any(&path.display().to_string())
        .with_context(|| format!("{} is not a usable sglab plugin", path.display()))?;
    println!("built {}\n", path.display());
    print!("{}", inspect(&loaded));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_packages_wasm_in_cargo_messages() {
        let lines = [
            r#"{"reason":"compiler-artifact","manifest_path":"/dep/Cargo.toml","filenames":["/t/libdep.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/p/Cargo.toml","filenames":["/t/p.wasm","/t/libp.rlib"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "not json",
        ]
        .join("\n");
        assert_eq!(wasm_artifacts(lines.as_bytes(), Path::new("/p/Cargo.toml")), [PathBuf::from("/t/p.wasm")]);
    }
}
