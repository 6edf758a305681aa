//! RFC 3339 timestamps in UTC, written by hand: chrono's general formatter
//! parses its format string for every value, and lists format one or two
//! timestamps per item (see docs/performance-notes.md).

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Writes `n` as `width` zero-padded digits.
fn digits(out: &mut [u8], n: u32, width: usize) {
    let mut n = n;
    for i in (0..width).rev() {
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` into the first 19 bytes of `out`.
fn date_time(out: &mut [u8], t: &DateTime<Utc>) {
    // Years outside 0..=9999 cannot be stored by PostgreSQL's timestamptz
    // in this form anyway; clamp rather than misprint.
    digits(&mut out[0..4], t.year().clamp(0, 9999).unsigned_abs(), 4);
    out[4] = b'-';
    digits(&mut out[5..7], t.month(), 2);
    out[7] = b'-';
    digits(&mut out[8..10], t.day(), 2);
    out[10] = b'T';
    digits(&mut out[11..13], t.hour(), 2);
    out[13] = b':';
    digits(&mut out[14..16], t.minute(), 2);
    out[16] = b':';
    digits(&mut out[17..19], t.second().min(59), 2);
}

/// A formatted timestamp held on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339 {
    buf: [u8; 27],
    len: usize,
}

impl Rfc3339 {
    /// Whole seconds: `2023-10-01T12:00:00Z` (the reference's `createdAt`).
    pub fn secs(t: &DateTime<Utc>) -> Self {
        let mut buf = [0u8; 27];
        date_time(&mut buf, t);
        buf[19] = b'Z';
        Self { buf, len: 20 }
    }

    /// Microseconds: `2023-10-01T12:05:00.123456Z`.
    pub fn micros(t: &DateTime<Utc>) -> Self {
        let mut buf = [0u8; 27];
        date_time(&mut buf, t);
        buf[19] = b'.';
        digits(
            &mut buf[20..26],
            (t.nanosecond() % 1_000_000_000) / 1_000,
            6,
        );
        buf[26] = b'Z';
        Self { buf, len: 27 }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn matches_chrono() {
        for s in [
            "2023-10-01T12:00:00.123456Z",
            "1999-01-09T03:04:05Z",
            "2026-11-25T23:59:59.000001Z",
        ] {
            let t: DateTime<Utc> = s.parse().expect("time");
            assert_eq!(
                Rfc3339::secs(&t).as_str(),
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            assert_eq!(
                Rfc3339::micros(&t).as_str(),
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
    }
}
