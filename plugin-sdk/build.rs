//! Writes `$OUT_DIR/export_macros.rs`: the macros that generate a plugin's
//! export bindings inside the plugin crate, with the contract's WIT inlined so
//! that a plugin needs nothing but this crate.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let wit_path = manifest.join("wit").join("strategy.wit");
    println!("cargo:rerun-if-changed={}", wit_path.display());
    let wit = fs::read_to_string(&wit_path).unwrap_or_else(|e| panic!("cannot read {}: {e}", wit_path.display()));
    assert!(!wit.contains("\"###"), "strategy.wit must not contain \"###");

    let mut out = String::new();
    for (kind, world, iface) in [("router", "router-plugin", "router"), ("batcher", "batcher-plugin", "batcher")] {
        out.push_str(&format!(
            r####"
/// Generates the `{iface}` export bindings in the calling crate (used by
/// `export_{kind}!`; not public API).
#[doc(hidden)]
#[macro_export]
macro_rules! __generate_{kind}_exports {{
    () => {{
        $crate::__private::wit_bindgen::generate!({{
            inline: r###"{wit}"###,
            world: "sglab:strategy/{world}",
            runtime_path: "::sglab_plugin_sdk::__private::wit_bindgen::rt",
            with: {{
                "sglab:strategy/types@0.2.1": ::sglab_plugin_sdk::bindings::sglab::strategy::types,
                "sglab:strategy/host@0.2.1": ::sglab_plugin_sdk::bindings::sglab::strategy::host,
            }},
        }});
    }};
}}
"####
        ));
    }
    let out_path = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("export_macros.rs");
    fs::write(&out_path, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", out_path.display()));
}
