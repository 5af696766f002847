//! Builds the hostile test plugins under `tests/plugins/` and the SDK
//! README's example plugin (`examples/least-inflight`) to components and
//! exposes their paths as `SGLAB_TEST_PLUGIN_<NAME>` (name upper-cased,
//! `-` as `_`).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("..").canonicalize().expect("workspace root");
    for watched in ["tests/plugins", "examples/least-inflight", "plugin-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    sglab_wasm_build::check_target(&rustc).unwrap_or_else(|e| panic!("{e}"));
    let mut crates = sglab_wasm_build::plugin_crates(&manifest_dir.join("plugins")).unwrap_or_else(|e| panic!("{e}"));
    // The plugin shown in plugin-sdk/README.md.
    crates.push(("least-inflight".to_owned(), "least-inflight".to_owned()));
    let packages: Vec<String> = crates.iter().map(|(_, p)| p.clone()).collect();
    let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let wasm = sglab_wasm_build::build(&cargo, &root.join("Cargo.toml"), &root.join("target/wasm"), &packages)
        .unwrap_or_else(|e| panic!("{e}"));
    for ((dir, _), path) in crates.iter().zip(wasm) {
        let var = format!("SGLAB_TEST_PLUGIN_{}", dir.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
