//! Every example experiment in examples/ is valid: `sglab run --check`
//! loads it, its dataset and its plugins without starting anything.

use std::process::Command;

#[test]
fn every_example_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let examples = root.join("examples");
    // As the examples say: the sglang-router points use the Python with
    // sglang-router installed (scripts/test.sh puts it in .venv).
    let python = std::env::var_os("SGLAB_PYTHON").unwrap_or_else(|| root.join(".venv/bin/python").into_os_string());
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sglab"))
            .arg("run")
            .arg(&path)
            .arg("--check")
            .env("SGLAB_PYTHON", &python)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("ok: "), "{stdout}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples");
}
