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
