//! Per-request records and their CSV form (`requests.csv`).
//!
//! Times are kept as nanoseconds since the run start and written as seconds.
//! The latency columns are computed from the *written* second values, so
//! `server_latency == finish_time - to_server_time` holds exactly for anyone
//! who reads the file back.

use std::io::Write as _;

use crate::policy::NodeIndex;
use crate::stats::itl::ItlRow;
use crate::{Nanos, secs};

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

    /// How many values [`RequestRecord::itl`] has.
    pub fn itl_count(&self) -> usize {
        self.token_times.windows(2).map(|w| w[1].1.saturating_sub(w[0].1) as usize).sum()
    }
}

/// The header of `requests.csv`. The first nine columns are fixed by contract.
pub const CSV_HEADER: &str = "req_id,input_length,decode_length,arrival_time,to_server_time,finish_time,server_latency,total_latency,ttft,first_token_time,node,status,error,scheduled_time,queue_time,tpot,cached_tokens,token_events,ttft_total,itl_mean,itl_p99,retractions,requested_output_length,finish_reason,client_input_length,error_kind";

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// A time or an interval in seconds with exactly 9 decimals, from whole
/// nanoseconds: no float noise, and `total_latency` is `finish_time -
/// arrival_time` to the digit (differences of written values are exact).
fn fixed_ns(out: &mut Vec<u8>, v: Option<i128>) {
    if let Some(v) = v {
        if v < 0 {
            out.push(b'-');
        }
        // Differences of two u64 times: |v| fits u64 (u128 division is a
        // library call per digit, which was most of the writer's time).
        let a = u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX);
        push_uint(out, a / 1_000_000_000, 1);
        out.push(b'.');
        push_frac9(out, a % 1_000_000_000);
    }
}

/// Two ASCII digits for each of 00..=99.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

fn pair(v: u64) -> [u8; 2] {
    let i = v as usize % 100 * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// Appends the 9 digits of `v` (below 10^9) with leading zeros: every time
/// column's fraction, in fixed steps and one fixed-size copy.
fn push_frac9(out: &mut Vec<u8>, v: u64) {
    let (hi, lo) = (v / 10_000, v % 10_000);
    let (h3, h2) = (hi / 100, hi % 100);
    let [a, b] = pair(h3);
    let [c, d] = pair(h2);
    let [e, f] = pair(lo / 100);
    let [g, h] = pair(lo % 100);
    out.extend_from_slice(&[b'0' + (h3 / 100 % 10) as u8, a, b, c, d, e, f, g, h]);
}

/// Appends `v` in decimal, zero-padded to at least `width` digits (at most
/// 20), two digits at a time: the formatting machinery of `write!` was most
/// of the record writer's time.
fn push_uint(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v >= 100 {
        let p = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if v >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[v as usize * 2..v as usize * 2 + 2]);
    } else if v > 0 {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

/// A ratio in seconds (tpot, ITL) at the same 9-decimal precision.
fn fixed_s(out: &mut Vec<u8>, v: Option<f64>) {
    let Some(v) = v else { return };
    match nanos_rounded(v) {
        Some(n) => {
            if v.is_sign_negative() {
                out.push(b'-');
            }
            push_uint(out, n / 1_000_000_000, 1);
            out.push(b'.');
            push_frac9(out, n % 1_000_000_000);
        }
        // Writing to a Vec cannot fail.
        None => drop(write!(out, "{v:.9}")),
    }
}

/// |v| × 10^9 rounded to the nearest integer, ties to even: the digits
/// `{:.9}` writes, from integer arithmetic on the exact binary value
/// (the float formatter was a sixth of the record writer's time). None
/// for what it does not cover (not finite, or 2^64 ns and more).
fn nanos_rounded(v: f64) -> Option<u64> {
    if !v.is_finite() {
        return None;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    // |v| = m × 2^e exactly.
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | 1 << 52, exp - 1075) };
    let p = u128::from(m) * 1_000_000_000;
    let q = if e >= 0 {
        if e >= 64 {
            return None;
        }
        p.checked_shl(e as u32).filter(|q| q >> 64 == 0)?
    } else if e <= -128 {
        // p < 2^83: the product is below 2^-45, which rounds to 0.
        0
    } else {
        let s = (-e) as u32;
        let (q, r) = (p >> s, p & ((1u128 << s) - 1));
        let half = 1u128 << (s - 1);
        q + u128::from(r > half || (r == half && q & 1 == 1))
    };
    u64::try_from(q).ok()
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
    fn fixed_ns_writes_nine_decimals_at_the_extremes() {
        let w = |v: i128| {
            let mut s = Vec::new();
            fixed_ns(&mut s, Some(v));
            String::from_utf8(s).unwrap()
        };
        assert_eq!(w(0), "0.000000000");
        assert_eq!(w(5), "0.000000005");
        assert_eq!(w(-1_000_000_007), "-1.000000007");
        assert_eq!(w(123_456_789_012), "123.456789012");
        assert_eq!(w(i128::from(u64::MAX)), "18446744073.709551615");
        assert_eq!(w(-i128::from(u64::MAX)), "-18446744073.709551615");
    }

    #[test]
    fn nine_decimals_are_what_the_formatter_writes() {
        let mut rng = crate::rng::Rng::new(4, 4);
        let mut cases =
            vec![0.0, -0.0, 1e-12, -1e-12, 0.5e-9, 1.5e-9, 2.5e-9, 1e300, -1e300, f64::MAX, f64::MIN_POSITIVE];
        cases.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324, 1.844_674_407_370_955e10]);
        // Exact ties at the tenth decimal (odd multiples of 2^-10 and of
        // 2^-k beyond), and ordinary latencies.
        cases.extend((0..2_000).map(|k| (2 * k + 1) as f64 / 1024.0));
        cases.extend((0..2_000).map(|k| (2 * k + 1) as f64 / 2048.0));
        for _ in 0..200_000 {
            let v = match rng.range_inclusive(0, 3) {
                0 => rng.next_f64() * 0.05,
                1 => (rng.next_f64() - 0.5) * 2e4,
                2 => f64::from_bits(rng.next_u64()),
                _ => rng.range_inclusive(0, 1 << 40) as f64 / 1e9,
            };
            cases.push(v);
        }
        for v in cases {
            let mut out = Vec::new();
            fixed_s(&mut out, Some(v));
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v:.9}"), "{v:e}");
        }
    }

    #[test]
    fn nine_digit_fractions_are_zero_padded_decimals() {
        let mut rng = crate::rng::Rng::new(9, 9);
        let mut cases = vec![0, 1, 9, 10, 99, 100, 9_999, 10_000, 99_999_999, 100_000_000, 999_999_999];
        cases.extend((0..100_000).map(|_| rng.range_inclusive(0, 999_999_999)));
        for v in cases {
            let mut out = Vec::new();
            push_frac9(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v:09}"));
        }
    }

    #[test]
    fn push_uint_writes_what_display_writes() {
        let mut v = 1u64;
        let mut cases = vec![0, 9, 10, 99, 100, 101, 999_999_999, u64::MAX];
        while v < u64::MAX / 7 {
            cases.extend([v, v - 1, v + 1]);
            v *= 7;
        }
        for c in cases {
            for width in [1, 9, 20] {
                let mut out = Vec::new();
                push_uint(&mut out, c, width);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{c:0width$}"), "{c} width {width}");
            }
        }
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
