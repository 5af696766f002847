//! Background pollers of a run (server metrics, GPU metrics): a task that
//! wakes at a fixed interval until the run stops it, writing rows to a CSV
//! file, and reports how many rows it wrote.

use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running poller; `finish` stops it and flushes its file.
pub struct Poller {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<u64>>,
}

/// The wake-ups of one poller.
pub struct Ticks {
    tick: tokio::time::Interval,
    stopped: watch::Receiver<bool>,
}

impl Ticks {
    /// Waits for the next wake-up; false once the poller is stopped.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.stopped.changed() => false,
        }
    }
}

impl Poller {
    /// Spawns `body`, which polls on each of its `Ticks` (the first comes at
    /// once) and returns the rows it wrote.
    pub fn spawn<F, Fut>(interval: Duration, body: F) -> Self
    where
        F: FnOnce(Ticks) -> Fut,
        Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(body(Ticks { tick: tokio::time::interval(interval), stopped }));
        Self { stop, task }
    }

    /// Stops polling; returns the rows written.
    pub async fn finish(self) -> anyhow::Result<u64> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// Creates `path` with its header line.
pub fn csv_file(path: &Path, header: &str) -> anyhow::Result<BufWriter<File>> {
    let mut file = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(file, "{header}")?;
    Ok(file)
}
