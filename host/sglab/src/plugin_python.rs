//! Python plugins: the SDK embedded in this binary, `sglab plugin build`
//! for a directory with an `app.py` (through componentize-py), and the
//! files `sglab plugin new --lang python` writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The componentize-py release the SDK is built and tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The Python SDK and the WIT it needs: (path under a plugin directory, text).
pub const SDK_FILES: &[(&str, &str)] = &[
    ("sglab_plugin/__init__.py", include_str!("../../../plugin-sdk/python/sglab_plugin/__init__.py")),
    ("sglab_plugin/types.py", include_str!("../../../plugin-sdk/python/sglab_plugin/types.py")),
    ("sglab_plugin/config.py", include_str!("../../../plugin-sdk/python/sglab_plugin/config.py")),
    ("sglab_plugin/host.py", include_str!("../../../plugin-sdk/python/sglab_plugin/host.py")),
    ("sglab_plugin/testing.py", include_str!("../../../plugin-sdk/python/sglab_plugin/testing.py")),
    ("sglab_plugin/_component/_glue.py", include_str!("../../../plugin-sdk/python/sglab_plugin/_component/_glue.py")),
    ("sglab_plugin/_component/router.py", include_str!("../../../plugin-sdk/python/sglab_plugin/_component/router.py")),
    (
        "sglab_plugin/_component/batcher.py",
        include_str!("../../../plugin-sdk/python/sglab_plugin/_component/batcher.py"),
    ),
    (
        "sglab_plugin/_component/sglab_router_entry.py",
        include_str!("../../../plugin-sdk/python/sglab_plugin/_component/sglab_router_entry.py"),
    ),
    (
        "sglab_plugin/_component/sglab_batcher_entry.py",
        include_str!("../../../plugin-sdk/python/sglab_plugin/_component/sglab_batcher_entry.py"),
    ),
    ("wit/strategy.wit", include_str!("../../../wit/strategy.wit")),
];

const ROUTER_APP: &str = include_str!("../templates/python/router_app.py.tmpl");
const BATCHER_APP: &str = include_str!("../templates/python/batcher_app.py.tmpl");
const ROUTER_TEST: &str = include_str!("../templates/python/router_test.py.tmpl");
const BATCHER_TEST: &str = include_str!("../templates/python/batcher_test.py.tmpl");
const README: &str = include_str!("../templates/python/README.md.tmpl");

/// The files of a new Python plugin: (path in its directory, contents).
pub fn scaffold(name: &str, routing: bool) -> Vec<(String, String)> {
    let class: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let kind = if routing { "routing" } else { "batching" };
    let fill = |t: &str| t.replace("{{NAME}}", name).replace("{{CLASS}}", &class).replace("{{KIND}}", kind);
    let (app, test) = if routing { (ROUTER_APP, ROUTER_TEST) } else { (BATCHER_APP, BATCHER_TEST) };
    let mut files = vec![
        ("app.py".to_owned(), fill(app)),
        ("test_app.py".to_owned(), fill(test)),
        ("README.md".to_owned(), fill(README).replace("{{COMPONENTIZE_PY}}", COMPONENTIZE_PY)),
        (".gitignore".to_owned(), "/build/\n__pycache__/\n".to_owned()),
    ];
    files.extend(SDK_FILES.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())));
    files
}

/// How to run componentize-py: `SGLAB_PYTHON`'s module, or the command on PATH.
fn componentize_py() -> anyhow::Result<Command> {
    let missing = || {
        format!(
            "componentize-py not found: install it with `pip install componentize-py=={COMPONENTIZE_PY}` (in a \
             virtualenv), or set SGLAB_PYTHON to a Python that has it"
        )
    };
    if let Some(py) = sglab_python() {
        let ok = Command::new(&py)
            .args(["-c", "import componentize_py"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("{} (SGLAB_PYTHON={} cannot import it)", missing(), py.display());
        }
        let mut c = Command::new(py);
        c.args([
            "-c",
            "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
        ]);
        return Ok(c);
    }
    let found = Command::new("componentize-py").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_err() {
        bail!("{}", missing());
    }
    Ok(Command::new("componentize-py"))
}

/// `SGLAB_PYTHON`, made absolute when it is a relative path (the commands
/// run in the plugin's directory).
fn sglab_python() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("SGLAB_PYTHON")?);
    Some(if p.components().count() > 1 { std::path::absolute(&p).unwrap_or(p) } else { p })
}

/// The Python that imports `app.py` to learn its kind and name.
fn python() -> PathBuf {
    sglab_python().unwrap_or_else(|| "python3".into())
}

/// A scratch directory for this binary's copy of the SDK, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the SDK and the WIT come from: the directory's own copies
/// (`sglab_plugin/`, `wit/`, as `plugin new` vendors them) or this binary's,
/// written to `scratch`.
fn sdk_root(dir: &Path, scratch: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let vendored = |p: &str| dir.join(p).is_file();
    let wit = if vendored("wit/strategy.wit") { dir.join("wit") } else { scratch.join("wit") };
    let root = if vendored("sglab_plugin/__init__.py") { dir.to_path_buf() } else { scratch.to_path_buf() };
    let missing =
        SDK_FILES.iter().filter(|(p, _)| if p.starts_with("wit/") { !wit.starts_with(dir) } else { root == scratch });
    write_files(scratch, missing)?;
    Ok((root, wit))
}

fn write_files<'a>(root: &Path, files: impl Iterator<Item = &'a (&'a str, &'a str)>) -> anyhow::Result<()> {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("a file under root"))
            .with_context(|| format!("creating {}", root.display()))?;
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

const DETECT: &str = r#"
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app, sglab_plugin
s = sglab_plugin.exported()
print(sglab_plugin.kind_of(s), s.NAME)
"#;

/// Builds the Python plugin in `dir` (its `app.py`) to a component; returns its path.
pub fn build(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = dir.canonicalize().with_context(|| format!("{}: no such directory", dir.display()))?;
    let build = dir.join("build");
    let scratch = Scratch(std::env::temp_dir().join(format!("sglab-python-sdk-{}", std::process::id())));
    let (sdk, wit) = sdk_root(&dir, &scratch.0)?;
    let shown = dir.join("app.py").display().to_string();
    let detect = Command::new(python())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", DETECT])
        .arg(&dir)
        .arg(&sdk)
        .current_dir(&dir)
        .output()
        .with_context(|| format!("cannot run {} to read {shown}", python().display()))?;
    if !detect.status.success() {
        let err = String::from_utf8_lossy(&detect.stderr);
        bail!("{shown} does not import in plain Python (fix it, then build again):\n{}", err.trim_end());
    }
    let said = String::from_utf8_lossy(&detect.stdout);
    let (kind, name) = said.trim().split_once(' ').with_context(|| format!("{shown}: unexpected answer {said:?}"))?;
    let (world, entry) = match kind {
        "routing" => ("router-plugin", "sglab_router_entry"),
        _ => ("batcher-plugin", "sglab_batcher_entry"),
    };
    let out = match out {
        Some(p) => std::path::absolute(p).with_context(|| format!("{}: bad output path", p.display()))?,
        None => build.join(format!("{name}.wasm")),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut componentize = componentize_py()?;
    eprintln!("componentize-py: building {kind} plugin {name} from {shown} (about 10-30 s)");
    let status = componentize
        .arg("-d")
        .arg(&wit)
        .args(["-w", world, "componentize", entry])
        .arg("-p")
        .arg(&dir)
        .arg("-p")
        .arg(&sdk)
        .arg("-p")
        .arg(sdk.join("sglab_plugin/_component"))
        .arg("-o")
        .arg(&out)
        .current_dir(&dir)
        .status()
        .context("cannot run componentize-py")?;
    if !status.success() {
        bail!("componentize-py failed on {shown} ({status}); its messages are above");
    }
    Ok(out)
}
