//! `sglab plugin new NAME --kind routing|batching [--lang python]`:
//! scaffolds a plugin crate (Cargo.toml, src/lib.rs with a working strategy
//! and a test, Cargo.lock, rust-toolchain.toml), or a Python plugin
//! (app.py, test_app.py, README.md, the vendored SDK and WIT), that builds
//! with `sglab plugin build` and loads by path in a run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// What kind of plugin to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewKind {
    /// Picks the node for each request.
    Routing,
    /// Decides when queued requests are released.
    Batching,
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Lang {
    /// A Rust crate on the Rust SDK.
    #[default]
    Rust,
    /// A Python module on the Python SDK (built with componentize-py).
    Python,
}

/// Arguments of `sglab plugin new`.
#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `-`, starting with a letter.
    pub name: String,
    /// Routing or batching.
    #[arg(long, value_enum)]
    pub kind: NewKind,
    /// Rust or Python.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// The plugin's directory, created by `new` (default: `./NAME`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The sglab plugin SDK to depend on (default: the `plugin-sdk` of the
    /// sglab source tree this binary was built from).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// Make a member of an enclosing Cargo workspace (no `[workspace]`,
    /// profile, lockfile or toolchain file of its own); add it to the
    /// workspace's `members` afterwards.
    #[arg(long)]
    pub workspace_member: bool,
}

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.tmpl");
const ROUTER: &str = include_str!("../templates/router.rs.tmpl");
const BATCHER: &str = include_str!("../templates/batcher.rs.tmpl");
/// The workspace lockfile: the new crate starts from the same dependency
/// versions the built-ins use (so it builds offline once those are fetched).
const LOCK: &str = include_str!("../../../Cargo.lock");
/// sglab's own toolchain pin (with the `wasm32-wasip2` target), so the
/// crate builds with the toolchain sglab was tested with, wherever it lives.
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && name.len() <= 64;
    if !ok {
        bail!("plugin name {name:?}: use lower-case letters, digits and '-', starting with a letter (at most 64)");
    }
    Ok(())
}

fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (path, origin) = match given {
        Some(p) => (p.to_path_buf(), "--sdk"),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-sdk"), "the sglab source tree"),
    };
    let path = path
        .canonicalize()
        .with_context(|| format!("plugin SDK from {origin} not found at {}; pass --sdk PATH", path.display()))?;
    if !path.join("Cargo.toml").is_file() {
        bail!("{} (from {origin}) is not the plugin SDK: it has no Cargo.toml; pass --sdk PATH", path.display());
    }
    Ok(path)
}

/// The files of a new plugin crate: (path in the crate, contents).
fn files(args: &NewArgs, dir: &Path, sdk: &Path) -> Vec<(&'static str, String)> {
    let (kind, source) = match args.kind {
        NewKind::Routing => ("routing", ROUTER),
        NewKind::Batching => ("batching", BATCHER),
    };
    let fill = |t: &str| {
        t.replace("{{NAME}}", &args.name)
            .replace("{{KIND}}", kind)
            .replace("{{DIR}}", &dir.display().to_string())
            .replace("{{SDK}}", &sdk.display().to_string().replace('\\', "/"))
    };
    let manifest = fill(CARGO_TOML);
    if args.workspace_member {
        let member = manifest.split("# @standalone").next().unwrap_or_default().trim_end().to_owned() + "\n";
        return vec![("Cargo.toml", member), ("src/lib.rs", fill(source))];
    }
    let manifest = manifest.replace("# @standalone: everything below is left out with --workspace-member.\n", "");
    vec![
        ("Cargo.toml", manifest),
        ("src/lib.rs", fill(source)),
        ("Cargo.lock", LOCK.to_owned()),
        ("rust-toolchain.toml", TOOLCHAIN.to_owned()),
        (".gitignore", "/target\n".to_owned()),
    ]
}

/// Runs `sglab plugin new`.
pub fn main(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    // An existing empty directory is fine; anything in it is never overwritten.
    if std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(dir.exists()) {
        bail!("{} already exists and is not empty; choose another name or --dir", dir.display());
    }
    let kind = match args.kind {
        NewKind::Routing => "routing",
        NewKind::Batching => "batching",
    };
    if args.lang == Lang::Python {
        if args.sdk.is_some() || args.workspace_member {
            bail!("--sdk and --workspace-member are for Rust plugins (a Python plugin vendors its SDK)");
        }
        for (file, text) in crate::plugin_python::scaffold(&args.name, args.kind == NewKind::Routing) {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().expect("a file in the plugin directory"))
                .with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        println!("created {kind} plugin {} (Python) in {}", args.name, dir.display());
        println!("  test:  (cd {} && python3 -m unittest)", dir.display());
        println!("  build: sglab plugin build {}", dir.display());
        println!("  use:   [{kind}] plugin = \"{}/build/{}.wasm\"", dir.display(), args.name);
        return Ok(());
    }
    let sdk = sdk_path(args.sdk.as_deref())?;
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}", dir.display()))?;
    for (file, text) in files(&args, &dir, &sdk) {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {kind} plugin {} in {}", args.name, dir.display());
    if args.workspace_member {
        println!("  add \"{}\" to [workspace] members of the enclosing Cargo.toml", dir.display());
    }
    println!("  test:  cargo test --manifest-path {}/Cargo.toml", dir.display());
    println!("  build: sglab plugin build {}", dir.display());
    println!("  use:   [{kind}] plugin = \"<path printed by build>\"");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_and_member_crates() {
        let args = |member| NewArgs {
            name: "my-router".into(),
            kind: NewKind::Routing,
            lang: Lang::Rust,
            dir: None,
            sdk: None,
            workspace_member: member,
        };
        let sdk = Path::new("/sdk");
        let alone = files(&args(false), Path::new("my-router"), sdk);
        let names: Vec<&str> = alone.iter().map(|f| f.0).collect();
        assert_eq!(names, ["Cargo.toml", "src/lib.rs", "Cargo.lock", "rust-toolchain.toml", ".gitignore"]);
        let manifest = &alone[0].1;
        assert!(manifest.contains("name = \"my-router\"") && manifest.contains("path = \"/sdk\""), "{manifest}");
        assert!(manifest.contains("\n[workspace]\n") && manifest.contains("[profile.release]"));
        assert!(!manifest.contains("@standalone"));
        assert!(alone[1].1.contains("const NAME: &'static str = \"my-router\";"));
        let member = files(&args(true), Path::new("my-router"), sdk);
        assert_eq!(member.iter().map(|f| f.0).collect::<Vec<_>>(), ["Cargo.toml", "src/lib.rs"]);
        let manifest = &member[0].1;
        assert!(!manifest.contains("[workspace]") && !manifest.contains("[profile"), "{manifest}");
        assert!(manifest.contains("sglab-plugin-sdk = { path = \"/sdk\" }"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["my-router", "a", "ttl2-sticky"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "9lives", "a_b", "trailing-", "sp ace"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
