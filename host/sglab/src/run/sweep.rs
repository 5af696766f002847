//! Sweeps: the points of a `[sweep]` run, each into its own sub-directory
//! (with a `point.json` naming it), and `sweep.csv` (one row of headline
//! metrics per point) rebuilt from the directories after every point.
//! Real-time points run in sequence; virtual-time points run `--jobs` at a
//! time. `--resume DIR` skips points that finished; `--point K` runs one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sglab_core::timefmt;

use super::sweep_table::{POINT_FILE, PointMeta, point_summary, rebuild};
use super::{RunEnd, execute, ready};
use crate::experiment::Point;
use crate::results;

fn dir_name(i: usize, label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=' | ',') { c } else { '_' })
        .take(100)
        .collect();
    format!("{i:03}-{clean}")
}

/// A point that ran to its end (`summary.json` with status ok or stopped):
/// `--resume` skips it. Failed and interrupted points run again.
fn completed(dir: &Path) -> bool {
    point_summary(dir).is_some_and(|s| s.status.completed())
}

/// How a sweep runs.
pub struct SweepOpts {
    /// No progress bars.
    pub quiet: bool,
    /// Continue in this directory.
    pub resume: Option<PathBuf>,
    /// Leave the last point's nodes running.
    pub keep_servers: bool,
    /// decisions.jsonl per point.
    pub trace: bool,
    /// Virtual time: points at once.
    pub jobs: usize,
    /// Only this point.
    pub only: Option<usize>,
    /// A plain run (one point, no `[sweep]`): its directory is the run
    /// directory itself, with no `point.json` and no `sweep.csv`.
    pub single: bool,
}

/// The sweep's directory (made now), or for a plain run the experiment's
/// results folder, under which [`created`] makes the run's directory once
/// its config is known good.
fn base_dir(first: &sglab_core::config::Experiment, resume: Option<PathBuf>, single: bool) -> anyhow::Result<PathBuf> {
    if let Some(d) = resume {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        return Ok(d);
    }
    let parent = PathBuf::from(&first.experiment.output_dir).join(&first.experiment.name);
    if single { Ok(parent) } else { created(&parent) }
}

/// Makes `<parent>/<UTC stamp now>` (or the next free `<stamp>-N`).
fn created(parent: &Path) -> anyhow::Result<PathBuf> {
    results::create_dir(
        parent,
        &timefmt::stamp(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()),
    )
}

/// Makes point `i`'s directory afresh, with its `point.json`.
fn point_dir(base: &Path, i: usize, p: &Point) -> anyhow::Result<PathBuf> {
    let dir = base.join(dir_name(i, &p.label));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = PointMeta { point: i, label: p.label.clone(), values: p.values.clone() };
    std::fs::write(dir.join(POINT_FILE), serde_json::to_string_pretty(&meta)? + "\n")?;
    Ok(dir)
}

fn rebuild_table(base: &Path) {
    if let Err(e) = rebuild(base, crate::plots::Scale::Linear) {
        eprintln!("error: writing sweep.csv: {e:#}");
    }
}

/// Runs every point (or only `--point K`); returns the exit code (the
/// worst point's). In real time the points run one after another, and
/// nodes are kept running from one point to the next while their
/// `[[nodes]]` config does not change (their caches are flushed in
/// between). In virtual time `jobs` points run at once.
pub fn run(
    rt: &tokio::runtime::Runtime,
    points: Vec<Point>,
    opts: SweepOpts,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> ExitCode {
    let total = points.len();
    if let Some(k) = opts.only.filter(|k| *k >= total) {
        eprintln!("error: --point {k}: the sweep has {total} point(s) (0..={})", total - 1);
        return ExitCode::from(2);
    }
    let base = match base_dir(&points[0].loaded.exp, opts.resume.clone(), opts.single) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Points to run: not finished before (--resume), and the one asked for.
    let todo: Vec<usize> = (0..total)
        .filter(|i| opts.only.is_none_or(|k| k == *i))
        .filter(|&i| {
            let done = completed(&base.join(dir_name(i, &points[i].label)));
            if done {
                say!("== point {}/{total} ({}): done before, skipped", i + 1, points[i].label);
            }
            !done
        })
        .collect();
    let all_virtual = points.iter().all(|p| p.loaded.exp.experiment.clock == sglab_core::config::Clock::Virtual);
    let code = if all_virtual && opts.jobs > 1 && todo.len() > 1 {
        parallel(rt, &points, &todo, &base, &opts, sig)
    } else {
        sequential(rt, &points, &todo, &base, &opts, sig)
    };
    if let Some(c) = code.1 {
        return c;
    }
    if opts.single {
        return code.0;
    }
    rebuild_table(&base);
    let report = match crate::report::generate_sweep(&base, crate::plots::Scale::Linear) {
        Ok(p) => format!("; report: {}", p.display()),
        Err(e) => {
            eprintln!("error: the sweep's report.html not written: {e:#}");
            String::new()
        }
    };
    say!("\nsweep: {} points in {}; table: {}{report}", total, base.display(), base.join("sweep.csv").display());
    code.0
}

/// Virtual-time points on `jobs` threads. Each point is independent and
/// deterministic, so the results are the same for any `jobs`.
fn parallel(
    rt: &tokio::runtime::Runtime,
    points: &[Point],
    todo: &[usize],
    base: &Path,
    opts: &SweepOpts,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> (ExitCode, Option<ExitCode>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worst = std::sync::Mutex::new((ExitCode::SUCCESS, None::<ExitCode>));
    let total = points.len();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.min(todo.len()) {
            scope.spawn(|| {
                super::set_silent(true);
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { return };
                    let p = &points[i];
                    let dir = match point_dir(base, i, p) {
                        Ok(d) => d,
                        Err(e) => {
                            eprintln!("error: {e:#}");
                            worst.lock().expect("exit code").0 = ExitCode::FAILURE;
                            return;
                        }
                    };
                    let r = match ready(p.loaded.clone()) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("error: {e} (at sweep point {})", p.label);
                            worst.lock().expect("exit code").1 = Some(ExitCode::from(2));
                            return;
                        }
                    };
                    let end = rt.block_on(execute(r, true, dir, None, false, opts.trace, sig));
                    let mut w = worst.lock().expect("exit code");
                    match end {
                        Ok((RunEnd::Completed, _)) => {
                            super::set_silent(false);
                            say!("== point {}/{total}: {}: done", i + 1, p.label);
                            super::set_silent(true);
                        }
                        Ok((RunEnd::Failed, _)) => w.0 = ExitCode::FAILURE,
                        Ok((RunEnd::Interrupted(s), _)) => {
                            w.1 = Some(ExitCode::from(s.exit_code()));
                            eprintln!("sweep interrupted; continue with --resume {}", base.display());
                        }
                        Err(e) => {
                            eprintln!("error: point {} failed: {e:#}", p.label);
                            w.0 = ExitCode::FAILURE;
                        }
                    }
                    if w.1.is_some() {
                        return;
                    }
                }
            });
        }
    });
    worst.into_inner().expect("exit code")
}

fn sequential(
    rt: &tokio::runtime::Runtime,
    points: &[Point],
    todo: &[usize],
    base: &Path,
    opts: &SweepOpts,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> (ExitCode, Option<ExitCode>) {
    let total = points.len();
    let mut code = ExitCode::SUCCESS;
    let mut running: Option<crate::nodes::Nodes> = None;
    let stop = |running: &mut Option<crate::nodes::Nodes>| {
        if let Some(n) = running.take() {
            rt.block_on(async move {
                let mut n = n;
                n.stop().await;
            });
        }
    };
    for (k, &i) in todo.iter().enumerate() {
        let p = &points[i];
        if !opts.single {
            say!("== point {}/{total}: {}", i + 1, p.label);
        }
        // The point's config first: a config error leaves no directory behind.
        let r = match ready(p.loaded.clone()) {
            Ok(r) => r,
            Err(e) if opts.single => {
                eprintln!("error: {e}");
                return (ExitCode::from(2), Some(ExitCode::from(2)));
            }
            Err(e) => {
                eprintln!("error: {e} (at sweep point {})", p.label);
                stop(&mut running);
                return (ExitCode::from(2), Some(ExitCode::from(2)));
            }
        };
        let dir = match if opts.single { created(base) } else { point_dir(base, i, p) } {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e:#}");
                stop(&mut running);
                return (ExitCode::FAILURE, Some(ExitCode::FAILURE));
            }
        };
        // Keep the nodes for the next point that will run, when its nodes are the same.
        let keep = match todo.get(k + 1) {
            Some(&j) => points[j].loaded.exp.nodes == p.loaded.exp.nodes,
            None => opts.keep_servers,
        };
        let reuse = running.take();
        let end = rt.block_on(execute(r, opts.quiet, dir, reuse, keep, opts.trace, sig)).map(|(end, nodes)| {
            running = nodes;
            end
        });
        if !opts.single {
            rebuild_table(base);
        }
        match end {
            Ok(RunEnd::Completed) => {}
            Ok(RunEnd::Failed) => code = ExitCode::FAILURE,
            Ok(RunEnd::Interrupted(s)) => {
                stop(&mut running);
                if !opts.single {
                    eprintln!("sweep interrupted; continue with --resume {}", base.display());
                }
                return (code, Some(ExitCode::from(s.exit_code())));
            }
            Err(e) if opts.single => {
                eprintln!("error: {e:#}");
                code = ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: point {} failed: {e:#}", p.label);
                code = ExitCode::FAILURE;
            }
        }
    }
    if let Some(n) = running.take() {
        if opts.keep_servers {
            super::keep_running(&n);
            n.detach();
        } else {
            stop(&mut Some(n));
        }
    }
    (code, None)
}
