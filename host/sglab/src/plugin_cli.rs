//! `sglab plugin list` and `sglab plugin inspect`: what a plugin is, read
//! from the component itself (its exports and its `info()`); `export`
//! writes a built-in to a file. `new` and `build` live in their own modules.

use std::path::Path;

use clap::{Args, Subcommand};

use anyhow::Context as _;

use crate::plugin::runtime::sha256_hex;
use crate::plugin::{Kind, LoadError, Loaded, Runtime, builtin};

/// Arguments of `sglab plugin`.
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum PluginCommand {
    /// List the built-in plugins.
    List,
    /// Show a plugin's name, version, kind, contract version, options, size and sha256.
    Inspect {
        /// A built-in name or a path to a `.wasm` component.
        plugin: String,
    },
    /// Write a built-in plugin's component to a `.wasm` file (to share,
    /// inspect or run by path).
    Export {
        /// The built-in's name.
        name: String,
        /// Where to write it (default: NAME.wasm here).
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
    },
    /// Scaffold a plugin crate (Cargo.toml, src/lib.rs with a test).
    New(crate::plugin_new::NewArgs),
    /// Build a plugin crate to a `.wasm` component and inspect it.
    Build(crate::plugin_build::BuildArgs),
}

/// Loads `spec` as whichever kind it is.
pub fn load_any(spec: &str) -> Result<Loaded, LoadError> {
    let rt = Runtime::get();
    match rt.load(spec, Path::new("."), Kind::Routing) {
        Err(LoadError::Kind { .. }) => rt.load(spec, Path::new("."), Kind::Batching),
        other => other,
    }
}

/// What `sglab plugin inspect` prints.
pub fn inspect(l: &Loaded) -> String {
    let m = &l.meta;
    let mut out = format!(
        "name         {}\nversion      {}\nkind         {}\ncontract     sglab:strategy@{}\nsource       {}\nsize         {} bytes\nsha256       {}\ndescription  {}\n",
        m.name, m.version, m.kind, l.wit_version, l.source, l.size, l.sha256, m.description
    );
    if !m.capabilities.is_empty() {
        out.push_str(&format!("capabilities {}\n", m.capabilities.join(", ")));
    }
    if m.options.is_empty() {
        out.push_str("options      (none)\n");
    } else {
        out.push_str("options\n");
        for o in &m.options {
            let default = o.default.as_deref().map(|d| format!(" = {d}")).unwrap_or_default();
            out.push_str(&format!("  {} ({}{default}): {}\n", o.name, o.value_type, o.help));
        }
    }
    out
}

/// Runs `sglab plugin ...`.
pub fn main(args: PluginArgs) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::List => {
            println!("{:<18}{:<10}{:<9}description", "name", "kind", "version");
            for name in builtin::names() {
                let l = load_any(name)?;
                println!("{:<18}{:<10}{:<9}{}", l.meta.name, l.meta.kind, l.meta.version, l.meta.description);
            }
        }
        PluginCommand::Inspect { plugin } => print!("{}", inspect(&load_any(&plugin)?)),
        PluginCommand::Export { name, out } => {
            let Some(bytes) = builtin::get(&name) else {
                anyhow::bail!("no built-in plugin {name:?}; `sglab plugin list` shows them");
            };
            let out = out.unwrap_or_else(|| format!("{name}.wasm").into());
            std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({} bytes, sha256 {})", out.display(), bytes.len(), sha256_hex(bytes));
        }
        PluginCommand::New(args) => crate::plugin_new::main(args)?,
        PluginCommand::Build(args) => crate::plugin_build::main(args)?,
    }
    Ok(())
}
