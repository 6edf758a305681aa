//! A few JSON writers for the list bodies, the API's largest responses.
//!
//! serde_json escapes a string byte by byte through a lookup table; names,
//! phones and labels almost never need escaping, so these check a whole
//! string first and copy it as it is when they can. Pages of contacts and
//! conversations spent a tenth of the server's time in string escaping.

/// Whether `s` can go into a JSON string literal as it is.
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
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

    #[test]
    fn integers_and_keys() {
        let mut out = Vec::new();
        key(&mut out, "total");
        uint(&mut out, 10_000);
        assert_eq!(out, b"\"total\":10000");
    }
}
