//! Loading an experiment file: TOML text, `--set` overrides, `--url`
//! replacement, schema and value checks. Every error names the file, the key
//! and the value.

use std::path::{Path, PathBuf};

use sglab_core::config::{Experiment, NodeSpec};
use toml::{Table, Value};

/// Why an experiment file was refused. Displayed as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {msg}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        msg: String,
    },
    /// TOML syntax.
    #[error("{path}: line {line}: {msg}")]
    Syntax {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// Parser message.
        msg: String,
    },
    /// A `--set` argument.
    #[error("--set {arg}: {msg}")]
    Override {
        /// As given.
        arg: String,
        /// What is wrong.
        msg: String,
    },
    /// A key of the wrong type, unknown, or missing.
    #[error("{path}: {key}: {msg}")]
    Schema {
        /// File.
        path: String,
        /// Dotted key.
        key: String,
        /// serde's message (names the value).
        msg: String,
    },
    /// A value out of range.
    #[error("{path}: {source}")]
    Invalid {
        /// File.
        path: String,
        /// What and why.
        source: sglab_core::config::InvalidValue,
    },
    /// A plugin named by the file could not be used.
    #[error("{path}: {key}: {msg}")]
    Plugin {
        /// File.
        path: String,
        /// `batching.plugin`, `routing.config`, ...
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// A loaded, checked experiment.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The resolved experiment (defaults filled, overrides applied).
    pub exp: Experiment,
    /// The file as given.
    pub path: PathBuf,
    /// Where relative plugin paths resolve.
    pub base_dir: PathBuf,
}

impl Loaded {
    /// The file name for messages.
    pub fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses `value` as a TOML value; bare words become strings.
fn parse_scalar(value: &str) -> Value {
    match format!("v = {value}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(value.to_owned())),
        Err(_) => Value::String(value.to_owned()),
    }
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Table(_) | Value::Array(_))
}

/// Why `value` may not replace `old` (with `same_kind`: a list or table
/// only by a TOML list or table, so `--set nodes=1` is a mistake, not a
/// silent change of shape).
fn kind_mismatch(old: Option<&Value>, value: &Value, same_kind: bool) -> Option<String> {
    let old = old.filter(|o| same_kind && is_container(o))?;
    let same = matches!((old, value), (Value::Array(_), Value::Array(_)) | (Value::Table(_), Value::Table(_)));
    (!same).then(|| {
        "it is a table or list; --set replaces it only with a TOML value of the same kind \
         (e.g. nodes.0.args=[\"--max-running-requests\", \"8\"])"
            .to_owned()
    })
}

fn set_path(cur: &mut Value, parts: &[&str], value: Value, same_kind: bool) -> Result<(), String> {
    let (first, rest) = parts.split_first().expect("non-empty key");
    let child = match cur {
        Value::Table(t) if rest.is_empty() => {
            if let Some(e) = kind_mismatch(t.get(*first), &value, same_kind) {
                return Err(e);
            }
            t.insert((*first).to_owned(), value);
            return Ok(());
        }
        Value::Table(t) => t.entry((*first).to_owned()).or_insert_with(|| Value::Table(Table::new())),
        Value::Array(a) => {
            let len = a.len();
            let i: usize = first.parse().map_err(|_| format!("{first:?} indexes a list; use a number"))?;
            a.get_mut(i).ok_or_else(|| format!("index {i} is past the end of a list of {len}"))?
        }
        other => return Err(format!("{first:?} is inside a {} value, not a table", other.type_str())),
    };
    if rest.is_empty() {
        if let Some(e) = kind_mismatch(Some(child), &value, same_kind) {
            return Err(e);
        }
        *child = value;
        Ok(())
    } else {
        set_path(child, rest, value, same_kind)
    }
}

/// Splits `dotted.key=value` into the key's parts and the value text, as
/// TOML reads a dotted key: a part in double or single quotes keeps its
/// dots and `=` (`sweep."experiment.seed"=[1, 2]`), and unquoted parts are
/// trimmed.
fn split_set(arg: &str) -> Result<(Vec<String>, &str), String> {
    let mut parts = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    let end = |cur: &mut String, quoted: &mut bool, parts: &mut Vec<String>| {
        let part = if *quoted { std::mem::take(cur) } else { std::mem::take(cur).trim().to_owned() };
        let ok = *quoted || !part.is_empty();
        *quoted = false;
        parts.push(part);
        ok
    };
    let mut chars = arg.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    match d {
                        _ if d == c => {
                            closed = true;
                            break;
                        }
                        '\\' if c == '"' => match chars.next() {
                            Some((_, 'n')) => cur.push('\n'),
                            Some((_, 't')) => cur.push('\t'),
                            Some((_, e)) => cur.push(e),
                            None => break,
                        },
                        _ => cur.push(d),
                    }
                }
                if !closed {
                    return Err(format!("unterminated {c} in the key of {arg:?}"));
                }
                quoted = true;
            }
            '.' | '=' => {
                if !end(&mut cur, &mut quoted, &mut parts) {
                    return Err(format!("invalid key {:?}", &arg[..arg.find('=').unwrap_or(arg.len())]));
                }
                if c == '=' {
                    return Ok((parts, &arg[i + 1..]));
                }
            }
            _ => cur.push(c),
        }
    }
    Err("expected dotted.key=value".into())
}

/// Applies one `dotted.key=value` override to `root` (list entries are
/// addressed by index: `nodes.0.replicas=4`; a quoted part keeps its dots:
/// `sweep."routing.plugin"=["round-robin", "cache-aware"]`).
pub fn apply_set(root: &mut Table, arg: &str) -> Result<(), ConfigError> {
    let err = |msg: String| ConfigError::Override { arg: arg.to_owned(), msg };
    let (parts, value) = split_set(arg).map_err(err)?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let mut whole = Value::Table(std::mem::take(root));
    let result = set_path(&mut whole, &parts, parse_scalar(value.trim()), true);
    if let Value::Table(t) = whole {
        *root = t;
    }
    result.map_err(err)
}

/// One point of a sweep: the overrides that define it.
#[derive(Debug, Clone)]
pub struct Point {
    /// `key=value,...` (empty for a plain run).
    pub label: String,
    /// The swept keys and their values at this point.
    pub values: Vec<(String, Value)>,
    /// The resolved experiment at this point.
    pub loaded: Loaded,
}

fn deserialize(table: Table, shown: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let exp: Experiment = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let msg = e.into_inner().message().trim().to_owned();
        let key = if key == "." { "(top level)".to_owned() } else { key };
        ConfigError::Schema { path: shown.to_owned(), key, msg }
    })?;
    exp.validate().map_err(|source| ConfigError::Invalid { path: shown.to_owned(), source })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Loaded { exp, path: path.to_path_buf(), base_dir })
}

/// The key `--repeats` sweeps.
pub const REPEAT_KEY: &str = "experiment.seed";

/// Each point `n` times, repeat k with seed + k (`--repeats N`); the seed
/// becomes a swept key, so each repeat has its own row and directory.
pub fn repeat(points: Vec<Point>, n: u32) -> Result<Vec<Point>, String> {
    if n <= 1 {
        return Ok(points);
    }
    if points.iter().any(|p| p.values.iter().any(|(k, _)| k == REPEAT_KEY)) {
        return Err(format!("--repeats {n}: the sweep already varies {REPEAT_KEY}; use one or the other"));
    }
    Ok(points
        .into_iter()
        .flat_map(|p| {
            (0..u64::from(n)).map(move |k| {
                let mut q = p.clone();
                let seed = p.loaded.exp.experiment.seed.wrapping_add(k);
                q.loaded.exp.experiment.seed = seed;
                q.values.push((REPEAT_KEY.to_owned(), Value::Integer(seed as i64)));
                let sep = if p.label.is_empty() { "" } else { "," };
                q.label = format!("{}{sep}{REPEAT_KEY}={seed}", p.label);
                q
            })
        })
        .collect())
}

fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_label).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// The points of a `[sweep]` table: a grid over `"dotted.key" = [values]`
/// entries, and/or explicit `[[sweep.points]]` tables of dotted keys.
fn sweep_points(sweep: Table, shown: &str) -> Result<Vec<Vec<(String, Value)>>, ConfigError> {
    let bad = |key: &str, msg: String| ConfigError::Schema { path: shown.to_owned(), key: format!("sweep.{key}"), msg };
    let mut grid: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    let mut explicit = Vec::new();
    for (key, value) in sweep {
        if key == "points" {
            let Value::Array(points) = value else {
                return Err(bad("points", "must be an array of tables ([[sweep.points]])".into()));
            };
            for (i, p) in points.into_iter().enumerate() {
                let Value::Table(t) = p else { return Err(bad(&format!("points[{i}]"), "must be a table".into())) };
                explicit.push(t.into_iter().collect::<Vec<_>>());
            }
            continue;
        }
        let Value::Array(values) = value else {
            return Err(bad(&key, "must be a list of values to sweep, e.g. [1, 2, 4]".into()));
        };
        if values.is_empty() {
            return Err(bad(&key, "is an empty list".into()));
        }
        let mut next = Vec::with_capacity(grid.len() * values.len());
        for point in &grid {
            for v in &values {
                let mut p = point.clone();
                p.push((key.clone(), v.clone()));
                next.push(p);
            }
        }
        grid = next;
    }
    let has_grid = grid.first().is_some_and(|p| !p.is_empty());
    Ok(match (has_grid, explicit.is_empty()) {
        (true, true) => grid,
        (false, false) => explicit,
        (true, false) => {
            grid.into_iter().flat_map(|g| explicit.iter().map(move |e| [g.clone(), e.clone()].concat())).collect()
        }
        (false, true) => return Err(bad("", "is empty: add \"dotted.key\" = [values] or [[sweep.points]]".into())),
    })
}

/// Reads, overrides, deserialises and validates an experiment file; a
/// `[sweep]` table expands it into several points, each checked.
pub fn load_points(path: &Path, sets: &[String], urls: &[String]) -> Result<Vec<Point>, ConfigError> {
    let shown = path.display().to_string();
    let text = crate::bounded::read_text(path, crate::bounded::EXPERIMENT_BYTES)
        .map_err(|msg| ConfigError::Read { path: shown.clone(), msg })?;
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: shown.clone(),
        line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
        msg: e.message().to_owned(),
    })?;
    // `experiment.name` defaults to the file's name without its extension.
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        let section = table.entry("experiment").or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(t) = section {
            t.entry("name").or_insert_with(|| Value::String(stem.to_owned()));
        }
    }
    for s in sets {
        apply_set(&mut table, s)?;
    }
    if !urls.is_empty() {
        let nodes = urls.iter().map(|u| Value::try_from(NodeSpec::url(u.clone())).expect("node serialises")).collect();
        table.insert("nodes".to_owned(), Value::Array(nodes));
    }
    let Some(sweep) = table.remove("sweep") else {
        return Ok(vec![Point { label: String::new(), values: Vec::new(), loaded: deserialize(table, &shown, path)? }]);
    };
    let Value::Table(sweep) = sweep else {
        return Err(ConfigError::Schema { path: shown, key: "sweep".into(), msg: "must be a table".into() });
    };
    let mut points = Vec::new();
    for values in sweep_points(sweep, &shown)? {
        let mut t = table.clone();
        let mut whole = Value::Table(std::mem::take(&mut t));
        for (k, v) in &values {
            let parts: Vec<&str> = k.split('.').collect();
            set_path(&mut whole, &parts, v.clone(), false).map_err(|msg| ConfigError::Schema {
                path: shown.clone(),
                key: format!("sweep.{k}"),
                msg,
            })?;
        }
        let Value::Table(t) = whole else { unreachable!("a table stays a table") };
        let label = values.iter().map(|(k, v)| format!("{k}={}", value_label(v))).collect::<Vec<_>>().join(",");
        let loaded = deserialize(t, &shown, path).map_err(|e| match e {
            ConfigError::Schema { path, key, msg } => {
                ConfigError::Schema { path, key, msg: format!("{msg} (at sweep point {label})") }
            }
            ConfigError::Invalid { path, source } => ConfigError::Schema {
                path,
                key: source.key.clone(),
                msg: format!("= {}: {} (at sweep point {label})", source.value, source.reason),
            },
            other => other,
        })?;
        points.push(Point { label, values, loaded });
    }
    Ok(points)
}

/// Reads a single (non-sweep) experiment.
pub fn load(path: &Path, sets: &[String], urls: &[String]) -> Result<Loaded, ConfigError> {
    let mut points = load_points(path, sets, urls)?;
    Ok(points.remove(0).loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(arg: &str) -> Result<Table, String> {
        let mut t: Table = "[sweep]\n\"workload.rate\" = [1]\n".parse().expect("valid TOML");
        apply_set(&mut t, arg).map_err(|e| e.to_string())?;
        Ok(t)
    }

    #[test]
    fn set_keys_are_read_as_toml_dotted_keys() {
        let t = set("sweep.\"experiment.seed\"=[1, 2]").unwrap();
        assert_eq!(t["sweep"]["experiment.seed"], Value::Array(vec![Value::Integer(1), Value::Integer(2)]));
        assert_eq!(t["sweep"]["workload.rate"], Value::Array(vec![Value::Integer(1)]), "the other key stays");
        let t = set(" workload . input_len = 64").unwrap();
        assert_eq!(t["workload"]["input_len"], Value::Integer(64));
        let t = set("sweep.'a=b.c'=3").unwrap();
        assert_eq!(t["sweep"]["a=b.c"], Value::Integer(3), "a literal key keeps = and dots");
        let t = set("x.\"q\\\"t\"=1").unwrap();
        assert_eq!(t["x"]["q\"t"], Value::Integer(1), "an escaped quote");
        assert_eq!(
            set("workload..input_len=1").unwrap_err(),
            "--set workload..input_len=1: invalid key \"workload..input_len\""
        );
        assert_eq!(
            set("sweep.\"open=1").unwrap_err(),
            "--set sweep.\"open=1: unterminated \" in the key of \"sweep.\\\"open=1\""
        );
        assert_eq!(set("workload.input_len").unwrap_err(), "--set workload.input_len: expected dotted.key=value");
    }
}
