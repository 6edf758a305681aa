//! A few JSON writers for the list bodies, the API's largest responses.
//!
//! serde_json escapes a string byte by byte through a lookup table; names,
//! phones and labels almost never need escaping, so these check a whole
//! string first and copy it as it is when they can (the measurements are
//! in docs/performance-notes.md).

/// Whether `s` can go into a JSON string literal as it is: no control
/// character, quote or backslash. Eight bytes at a time.
fn needs_no_escape(s: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of the result is set where `x` has a zero
    // byte (no false negatives; false positives only above a true zero).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = s.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20: subtracting 0x20 borrows into the high bit.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        if control
            | has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `s` as a JSON string literal.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if needs_no_escape(s) {
        out.extend_from_slice(s.as_bytes());
    } else {
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                c if u32::from(c) < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let n = u32::from(c) as usize;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[n >> 4]);
                    out.push(HEX[n & 0xf]);
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// Appends `"key":` (keys are ours: plain ASCII, never escaped).
pub(crate) fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `items` as a JSON array, each written by `write`.
pub(crate) fn array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// A response with `body`, JSON written by these functions.
pub(crate) fn response(
    mut builder: actix_web::HttpResponseBuilder,
    body: Vec<u8>,
) -> actix_web::HttpResponse {
    builder
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// Appends an unsigned integer.
pub(crate) fn uint(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string serde_json would write, we write the same.
    #[test]
    fn strings_match_serde_json() {
        for s in [
            "",
            "Budi Santoso",
            "quote \" and backslash \\",
            "line\nbreak\ttab\r\u{8}\u{c}",
            "control \u{1} \u{1f} \u{7f}",
            "unicode: Gülşen 王 🙂",
            "</script>",
            "exactly8",
            "sixteen bytes ok",
            "seventeen bytes\"!",
            "\u{1f}234567 and more after",
            "1234567\u{0}",
            "12345678\\",
            "caf\u{e9} \u{7f}\u{80}\u{ff}",
        ] {
            let mut ours = Vec::new();
            string(&mut ours, s);
            let theirs = serde_json::to_vec(s).expect("a string serialises");
            assert_eq!(
                String::from_utf8(ours).expect("utf-8"),
                String::from_utf8(theirs).expect("utf-8"),
                "for {s:?}"
            );
        }
    }

    /// The eight-at-a-time check agrees with the plain one for every ASCII
    /// byte at every position of a 19-byte string (two words and a tail).
    #[test]
    fn escape_check_agrees_with_the_plain_one() {
        let plain = |s: &str| s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        for position in 0..19 {
            for byte in 0u8..=0x7f {
                let mut bytes = *b"abcdefghijklmnopqrs";
                bytes[position] = byte;
                let s = std::str::from_utf8(&bytes).expect("ascii");
                assert_eq!(needs_no_escape(s), plain(s), "{s:?}");
            }
        }
        assert!(needs_no_escape("Gülşen Yılmaz 王小明 🙂 long enough"));
    }

    #[test]
    fn integers_keys_and_arrays() {
        let mut out = Vec::new();
        key(&mut out, "total");
        uint(&mut out, 10_000);
        out.push(b',');
        key(&mut out, "labels");
        array(&mut out, ["VIP", "Lead"], string);
        out.push(b',');
        key(&mut out, "none");
        array(&mut out, Vec::<&str>::new(), string);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#""total":10000,"labels":["VIP","Lead"],"none":[]"#
        );
    }
}
