//! Query-string parameters shared by the list endpoints.

use chrono::{DateTime, SubsecRound, Utc};

use crate::error::ApiError;

/// The decoded `key=value` pairs of a query string, in order.
///
/// # Errors
/// `400 validation_failed` on field `query` when it is not URL-encoded.
pub(crate) fn pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::validation("query", format!("the query string is malformed: {e}")))
}

/// A page size from 1 to `max`.
///
/// # Errors
/// `400 validation_failed` on field `limit`.
pub(crate) fn limit(value: &str, max: u32) -> Result<u32, ApiError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| {
            ApiError::validation("limit", format!("limit must be an integer from 1 to {max}"))
        })
}

/// An RFC 3339 timestamp (`2023-10-01T12:05:00.000Z`), for `before`:
/// rounded up to whole microseconds, storage's precision, so that every
/// item strictly earlier than the instant given is earlier than the
/// result too (rounding down would skip one stored at the truncated time).
///
/// # Errors
/// `400 validation_failed` on `field`.
pub(crate) fn timestamp(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| {
            // An unencoded `+01:00` arrives as ` 01:00` (`+` means space in
            // a query string): read it as the caller meant it.
            match value.rsplit_once(' ') {
                Some((head, offset)) => DateTime::parse_from_rfc3339(&format!("{head}+{offset}")),
                None => Err(e),
            }
        })
        .map(|t| {
            let t = t.with_timezone(&Utc);
            let truncated = t.trunc_subsecs(6);
            if truncated == t {
                t
            } else {
                truncated + chrono::TimeDelta::microseconds(1)
            }
        })
        .map_err(|_| {
            ApiError::validation(
                field,
                format!("{field} must be an RFC 3339 timestamp, e.g. 2023-10-01T12:05:00.000Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(" 20 ", 500).ok(), Some(20));
        assert_eq!(limit("500", 500).ok(), Some(500));
        for bad in ["0", "501", "-1", "ten", ""] {
            let err = limit(bad, 500).expect_err(bad);
            assert_eq!(err.code(), "validation_failed");
            assert_eq!(err.field(), Some("limit"));
        }
    }

    #[test]
    fn timestamps_accept_offsets_and_a_decoded_plus() {
        let want = "2023-10-01T12:05:00Z".parse::<DateTime<Utc>>().ok();
        assert_eq!(timestamp("before", "2023-10-01T12:05:00Z").ok(), want);
        assert_eq!(timestamp("before", "2023-10-01T19:05:00+07:00").ok(), want);
        assert_eq!(timestamp("before", "2023-10-01T19:05:00 07:00").ok(), want);
        let micros = |s| timestamp("before", s).map(|t| t.timestamp_subsec_nanos());
        assert_eq!(
            micros("2023-10-01T12:05:00.651744Z").ok(),
            Some(651_744_000)
        );
        assert_eq!(
            micros("2023-10-01T12:05:00.6517449Z").ok(),
            Some(651_745_000),
            "rounded up: an item at .651744 is before the instant given"
        );
        let err = timestamp("before", "yesterday").expect_err("not a time");
        assert_eq!(err.field(), Some("before"));
    }

    #[test]
    fn pairs_are_decoded() {
        assert_eq!(
            pairs("a=1&b=%20x").ok(),
            Some(vec![("a".into(), "1".into()), ("b".into(), " x".into())])
        );
    }
}
