//! Wall-clock formatting without a date library (the run records its
//! wall-clock start once; every interval uses the monotonic clock).

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parts(unix_ns: u128) -> (i64, u32, u32, u64, u64, u64, u32) {
    let secs = (unix_ns / 1_000_000_000) as i64;
    let nanos = (unix_ns % 1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    (y, mo, d, sod / 3600, sod / 60 % 60, sod % 60, nanos)
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-28T04:07:00.123456789Z`.
pub fn rfc3339(unix_ns: u128) -> String {
    let (y, mo, d, h, mi, s, ns) = parts(unix_ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}Z")
}

/// Compact UTC stamp for directory names, e.g. `20261128T040700Z`.
pub fn stamp(unix_ns: u128) -> String {
    let (y, mo, d, h, mi, s, _) = parts(unix_ns);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (leap day) 12:34:56.5
        assert_eq!(rfc3339(951_827_696_500_000_000), "2000-02-29T12:34:56.500000000Z");
        assert_eq!(stamp(1_795_838_400_000_000_000), "20261128T040000Z");
    }
}
