//! Per-request records and their CSV form (`requests.csv`).
//!
//! Times are kept as nanoseconds since the run start and written as seconds.
//! The latency columns are computed from the *written* second values, so
//! `server_latency == finish_time - to_server_time` holds exactly for anyone
//! who reads the file back.

mod num;

use crate::policy::NodeIndex;
use crate::stats::itl::ItlRow;
use crate::{Nanos, secs};
use num::{fixed_ns, fixed_s, push_uint};

/// How a request ended, as written in the `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The server finished it.
    Ok,
    /// Sent, and failed (HTTP status, transport error, timeout, cut stream).
    Error,
    /// The routing plugin refused it.
    Rejected,
    /// Never sent, or cut off, because the run stopped.
    Cancelled,
}

impl Status {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Why a request did not finish ok, as written in the `error_kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The node answered with a non-2xx status.
    Http,
    /// The node refused a field of the request body (400/422 naming it).
    RefusedField,
    /// The node could not be reached.
    Connect,
    /// `client.timeout_s` passed.
    Timeout,
    /// The connection broke while the response was read.
    StreamBroken,
    /// The stream ended before it was complete (mid-event, or before any
    /// `finish_reason` or `[DONE]`).
    StreamCut,
    /// `[DONE]` came without any `finish_reason`.
    Truncated,
    /// An event was not the JSON the backend sends.
    Malformed,
    /// The server reported an error inside the stream.
    ServerError,
    /// More output than `client.max_output_factor` times the length asked
    /// for: the stream was cut.
    TooManyTokens,
    /// One event (or a whole body) over `client.max_event_bytes`: cut.
    EventTooLarge,
    /// Never sent, or cut off, because the run stopped.
    Cancelled,
    /// The routing plugin refused it.
    Rejected,
    /// sglab itself failed on this request.
    Internal,
}

impl ErrorKind {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::RefusedField => "refused_field",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::StreamBroken => "stream_broken",
            Self::StreamCut => "stream_cut",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::ServerError => "server_error",
            Self::TooManyTokens => "too_many_tokens",
            Self::EventTooLarge => "event_too_large",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Internal => "internal",
        }
    }
}

/// Everything recorded about one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Request id.
    pub id: u64,
    /// Prompt tokens (the server's count when it reports one).
    pub input_length: u32,
    /// Output tokens received.
    pub decode_length: u32,
    /// When the arrival process scheduled it.
    pub scheduled: Option<Nanos>,
    /// When it entered the client queue.
    pub arrival: Option<Nanos>,
    /// When the host started sending it.
    pub to_server: Option<Nanos>,
    /// First event with at least one token.
    pub first_token: Option<Nanos>,
    /// Final event, or the failure.
    pub finish: Option<Nanos>,
    /// Node that served it.
    pub node: Option<NodeIndex>,
    /// Outcome.
    pub status: Status,
    /// Error text (empty when ok).
    pub error: String,
    /// Prefix-cache hit tokens the server reported.
    pub cached_tokens: Option<u32>,
    /// Stream events that carried tokens.
    pub token_events: u32,
    /// Times the server retracted (preempted) the request, if it reports it.
    pub retractions: Option<u32>,
    /// Every token event: (time, cumulative output tokens). Feeds the ITL
    /// columns and `tokens.csv`.
    pub token_times: Vec<(Nanos, u32)>,
    /// The output length asked for (`max_new_tokens` / `max_tokens`).
    pub requested_output_length: u32,
    /// Why the server says it stopped (`length`, `stop`, ...; empty when it said nothing).
    pub finish_reason: String,
    /// The prompt length as the client counted it (`input_length` is the
    /// server's count where it reports one).
    pub client_input_length: u32,
    /// Why it did not finish ok (None when ok).
    pub error_kind: Option<ErrorKind>,
}

impl RequestRecord {
    /// A record for a request that has not been sent: `input_length` and
    /// `output_length` as the client asks for them.
    pub fn unsent(
        id: u64,
        (input_length, output_length): (u32, u32),
        scheduled: Option<Nanos>,
        status: Status,
        error: String,
    ) -> Self {
        Self {
            id,
            input_length,
            decode_length: 0,
            scheduled,
            arrival: None,
            to_server: None,
            first_token: None,
            finish: None,
            node: None,
            status,
            error,
            cached_tokens: None,
            token_events: 0,
            retractions: None,
            token_times: Vec::new(),
            requested_output_length: output_length,
            finish_reason: String::new(),
            client_input_length: input_length,
            error_kind: match status {
                Status::Ok => None,
                Status::Rejected => Some(ErrorKind::Rejected),
                Status::Cancelled => Some(ErrorKind::Cancelled),
                Status::Error => Some(ErrorKind::Internal),
            },
        }
    }

    /// Inter-token latencies in seconds, one per token after the first:
    /// each event's gap divided by the tokens it carried, repeated for
    /// each (SGLang's definition).
    pub fn itl(&self) -> Vec<f64> {
        let mut out = Vec::new();
        self.itl_into(&mut out);
        out
    }

    /// [`RequestRecord::itl`] into `out` (cleared first), so that a caller
    /// going through many records reuses one buffer.
    pub fn itl_into(&self, out: &mut Vec<f64>) {
        out.clear();
        out.reserve(self.decode_length as usize);
        self.for_each_itl(|v| out.push(v));
    }

    /// Calls `f` with each of [`RequestRecord::itl`]'s values, in order,
    /// without making the list.
    #[inline]
    pub fn for_each_itl(&self, mut f: impl FnMut(f64)) {
        let Some(&(t, c)) = self.token_times.first() else { return };
        // Each time is converted once (it ends one gap and starts the
        // next); a one-token event skips the division (x / 1.0 is x).
        let (mut s0, mut c0) = (secs(t), c);
        for &(t1, c1) in &self.token_times[1..] {
            let s1 = secs(t1);
            match c1.saturating_sub(c0) {
                0 => {}
                1 => f(s1 - s0),
                n => {
                    let v = (s1 - s0) / n as f64;
                    for _ in 0..n {
                        f(v);
                    }
                }
            }
            (s0, c0) = (s1, c1);
        }
    }
}

/// The header of `requests.csv`. The first nine columns are fixed by contract.
pub const CSV_HEADER: &str = "req_id,input_length,decode_length,arrival_time,to_server_time,finish_time,server_latency,total_latency,ttft,first_token_time,node,status,error,scheduled_time,queue_time,tpot,cached_tokens,token_events,ttft_total,itl_mean,itl_p99,retractions,requested_output_length,finish_reason,client_input_length,error_kind";

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn ns_diff(a: Option<Nanos>, b: Option<Nanos>) -> Option<i128> {
    Some(i128::from(a?) - i128::from(b?))
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Splits one CSV line written with [`csv_field`] back into its fields
/// (RFC 4180 quoting; a line never holds an embedded newline).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Derived per-request metrics, in seconds, from the written time values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Derived {
    /// finish - to_server.
    pub server_latency: Option<f64>,
    /// finish - arrival.
    pub total_latency: Option<f64>,
    /// first_token - to_server.
    pub ttft: Option<f64>,
    /// to_server - arrival.
    pub queue_time: Option<f64>,
    /// (finish - first_token) / (decode_length - 1).
    pub tpot: Option<f64>,
    /// first_token - arrival.
    pub ttft_total: Option<f64>,
}

impl RequestRecord {
    /// The derived metrics (None where an input time is missing).
    pub fn derived(&self) -> Derived {
        let (arr, sent, first, fin) =
            (self.arrival.map(secs), self.to_server.map(secs), self.first_token.map(secs), self.finish.map(secs));
        let tpot =
            if self.decode_length > 1 { diff(fin, first).map(|d| d / (self.decode_length - 1) as f64) } else { None };
        Derived {
            server_latency: diff(fin, sent),
            total_latency: diff(fin, arr),
            ttft: diff(first, sent),
            queue_time: diff(sent, arr),
            tpot,
            ttft_total: diff(first, arr),
        }
    }

    /// Appends this record as one CSV line (with newline) to `out`.
    pub fn write_csv(&self, out: &mut String) {
        let mut line = Vec::new();
        self.write_csv_row(&mut line, crate::stats::itl::row(self, &mut Vec::new(), |_| {}));
        out.push_str(std::str::from_utf8(&line).expect("a row is UTF-8: ASCII and the record's own strings"));
    }

    /// [`RequestRecord::write_csv`] as bytes (the record writer's batch),
    /// with this record's ITL mean and p99 already computed
    /// ([`crate::stats::itl::row`]).
    pub fn write_csv_row(&self, out: &mut Vec<u8>, itl: Option<ItlRow>) {
        let d = self.derived();
        for v in [self.id, u64::from(self.input_length), u64::from(self.decode_length)] {
            push_uint(out, v, 1);
            out.push(b',');
        }
        let at = |t: Option<Nanos>| t.map(i128::from);
        for v in [
            at(self.arrival),
            at(self.to_server),
            at(self.finish),
            ns_diff(self.finish, self.to_server),
            ns_diff(self.finish, self.arrival),
            ns_diff(self.first_token, self.to_server),
            at(self.first_token),
        ] {
            fixed_ns(out, v);
            out.push(b',');
        }
        let opt = |out: &mut Vec<u8>, v: Option<u32>| {
            if let Some(v) = v {
                push_uint(out, u64::from(v), 1);
            }
        };
        opt(out, self.node);
        out.push(b',');
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b',');
        out.extend_from_slice(csv_field(&self.error).as_bytes());
        out.push(b',');
        fixed_ns(out, at(self.scheduled));
        out.push(b',');
        fixed_ns(out, ns_diff(self.to_server, self.arrival));
        out.push(b',');
        fixed_s(out, d.tpot);
        out.push(b',');
        opt(out, self.cached_tokens);
        out.push(b',');
        push_uint(out, u64::from(self.token_events), 1);
        out.push(b',');
        fixed_ns(out, ns_diff(self.first_token, self.arrival));
        out.push(b',');
        if let Some(itl) = itl {
            fixed_s(out, Some(itl.mean));
            out.push(b',');
            fixed_s(out, Some(itl.p99));
        } else {
            out.push(b',');
        }
        out.push(b',');
        opt(out, self.retractions);
        out.push(b',');
        push_uint(out, u64::from(self.requested_output_length), 1);
        out.push(b',');
        out.extend_from_slice(csv_field(&self.finish_reason).as_bytes());
        out.push(b',');
        push_uint(out, u64::from(self.client_input_length), 1);
        out.push(b',');
        out.extend_from_slice(self.error_kind.map_or("", ErrorKind::as_str).as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_row_matches_header_and_is_exact() {
        let r = RequestRecord {
            id: 3,
            input_length: 512,
            decode_length: 100,
            scheduled: Some(1_000_000),
            arrival: Some(1_000_123),
            to_server: Some(1_000_456),
            first_token: Some(51_234_567),
            finish: Some(1_041_234_999),
            node: Some(1),
            status: Status::Ok,
            error: String::new(),
            cached_tokens: Some(0),
            token_events: 3,
            retractions: Some(0),
            token_times: vec![(51_234_567, 1), (61_234_567, 2), (81_234_567, 4)],
            requested_output_length: 128,
            finish_reason: "stop".into(),
            client_input_length: 510,
            error_kind: None,
        };
        let mut line = String::new();
        r.write_csv(&mut line);
        let cols: Vec<&str> = line.trim_end().split(',').collect();
        assert_eq!(cols.len(), CSV_HEADER.split(',').count());
        let f = |i: usize| cols[i].parse::<f64>().unwrap();
        // Times and intervals: 9 decimals, exact differences of the written values.
        let ns = |i: usize| {
            let (s, frac) = cols[i].split_once('.').unwrap();
            assert_eq!(frac.len(), 9, "{}", cols[i]);
            s.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
        };
        assert_eq!(cols[3], "0.001000123");
        assert_eq!(ns(6), ns(5) - ns(4));
        assert_eq!(ns(7), ns(5) - ns(3));
        assert_eq!(ns(8), ns(9) - ns(4));
        assert_eq!(ns(14), ns(4) - ns(3), "queue_time");
        assert_eq!(cols[10], "1");
        assert_eq!(cols[11], "ok");
        assert_eq!(ns(18), ns(9) - ns(3), "ttft_total");
        assert_eq!(cols[15], "0.010000004", "tpot at 9 decimals");
        // ITL: 10 ms for token 2, then 20 ms / 2 tokens = 10 ms twice.
        assert!((f(19) - 0.01).abs() < 1e-12 && (f(20) - 0.01).abs() < 1e-12, "{line}");
        assert_eq!(r.itl().len(), 3);
        assert_eq!(&cols[22..], ["128", "stop", "510", ""]);
    }

    #[test]
    fn unsent_rows_leave_times_empty_and_quote_errors() {
        let r = RequestRecord::unsent(9, (5, 7), None, Status::Cancelled, "run stopped: \"x\", y".into());
        let mut line = String::new();
        r.write_csv(&mut line);
        assert_eq!(line, "9,5,0,,,,,,,,,cancelled,\"run stopped: \"\"x\"\", y\",,,,,0,,,,,7,,5,cancelled\n");
    }

    #[test]
    fn split_csv_line_reads_back_quoted_fields() {
        let r = RequestRecord::unsent(9, (5, 7), None, Status::Cancelled, "run stopped: \"x\", y".into());
        let mut line = String::new();
        r.write_csv(&mut line);
        let cols = split_csv_line(line.trim_end());
        assert_eq!(cols.len(), CSV_HEADER.split(',').count());
        assert_eq!(cols[11], "cancelled");
        assert_eq!(cols[12], "run stopped: \"x\", y");
        assert_eq!(split_csv_line("a,,\"\""), vec!["a", "", ""]);
    }
}
