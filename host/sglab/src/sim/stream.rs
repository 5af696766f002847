//! Streamed responses: one SSE body type for `/generate` and the OpenAI
//! routes, differing only in how an event is written ([`Format`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use sglab_core::sim::TokenEvent;
use tokio::sync::mpsc;

use super::api::Server;
use super::engine_task::Stamped;
use super::observe::Tracker;

/// Body error type (the bodies here never fail).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one API writes its events.
pub trait Format: Send + Sync + Unpin + 'static {
    /// Appends the SSE frame(s) for a progress event.
    fn event(&mut self, ev: &TokenEvent, tracker: &Tracker, out: &mut String);
    /// Appends what follows the last event (usage chunk, `[DONE]`).
    fn end(&mut self, ev: &TokenEvent, tracker: &Tracker, out: &mut String);
    /// Appends an in-stream error and the end of the stream.
    fn error(&mut self, msg: &str, out: &mut String);
}

/// Removes the request's rid from the in-flight set when dropped.
pub struct RidGuard {
    pub(super) server: Arc<Server>,
    pub(super) rid: String,
}

impl Drop for RidGuard {
    fn drop(&mut self) {
        self.server.release_rid(&self.rid);
    }
}

/// An SSE response body fed by the engine.
pub struct EventStream<F: Format> {
    events: mpsc::UnboundedReceiver<Stamped>,
    fmt: F,
    tracker: Tracker,
    abort_after: Option<u32>,
    done: bool,
    server: Arc<Server>,
    _guard: RidGuard,
}

impl<F: Format> EventStream<F> {
    /// A stream over `events`.
    pub fn new(
        events: mpsc::UnboundedReceiver<Stamped>,
        fmt: F,
        tracker: Tracker,
        server: Arc<Server>,
        guard: RidGuard,
    ) -> Self {
        let abort_after = server.settings.args.abort_after_tokens;
        Self { events, fmt, tracker, abort_after, done: false, server, _guard: guard }
    }

    /// Waits for the request to finish (non-streaming responses). Returns
    /// the last event, the tracker and the format, or an error message.
    pub async fn collect(mut self) -> Result<(TokenEvent, Tracker, F), String> {
        while let Some((ev, at)) = self.events.recv().await {
            self.tracker.event(&ev, at);
            if let Some(err) = &ev.error {
                self.server.observer.aborted();
                return Err(err.clone());
            }
            if self.abort_after.is_some_and(|n| ev.completion_tokens >= n) && !ev.finished {
                return Err("--abort-after-tokens: request dropped".to_owned());
            }
            if ev.finished {
                self.server.observer.finished(&self.tracker, &ev);
                return Ok((ev, self.tracker, self.fmt));
            }
        }
        Err("the request was aborted".to_owned())
    }
}

impl<F: Format> Body for EventStream<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match this.events.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some((ev, at))) => {
                this.tracker.event(&ev, at);
                let mut out = String::new();
                if let Some(err) = &ev.error {
                    this.server.observer.aborted();
                    this.fmt.error(err, &mut out);
                    this.done = true;
                } else {
                    this.fmt.event(&ev, &this.tracker, &mut out);
                    if ev.finished {
                        this.server.observer.finished(&this.tracker, &ev);
                        this.fmt.end(&ev, &this.tracker, &mut out);
                        this.done = true;
                    } else if this.abort_after.is_some_and(|n| ev.completion_tokens >= n) {
                        // End the stream here, without the final event, as a
                        // server that died mid-generation leaves it. (Ending
                        // the body cleanly, not with an error, guarantees the
                        // client receives every token event sent before.)
                        this.done = true;
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
            }
            Poll::Ready(None) => {
                this.done = true;
                let mut out = String::new();
                this.fmt.error("request aborted", &mut out);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
            }
        }
    }
}
