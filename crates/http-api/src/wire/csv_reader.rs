//! An incremental RFC 4180 reader: fed a body chunk by chunk, it hands out
//! each record as soon as its last byte arrives, holding only the record
//! being read. Quoted fields may hold commas, quotes (doubled) and line
//! breaks; lines end in LF or CRLF; blank lines are skipped. Records are
//! named by the line they start on (the header is line 1), as an editor or
//! a spreadsheet shows them.

/// Longest field accepted. A quote left open would otherwise take the
/// rest of the file into one field.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Why the reader cannot go on: past these, no later record can be told
/// apart with confidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A field over [`MAX_FIELD_BYTES`].
    #[error(
        "the record on line {line} has a field longer than {MAX_FIELD_BYTES} bytes (a quote left open?)"
    )]
    FieldTooLong {
        /// Where its record starts.
        line: u64,
    },
    /// The body ended inside a quoted field.
    #[error("the record on line {line} opens a quote that is never closed")]
    UnterminatedQuote {
        /// Where its record starts.
        line: u64,
    },
}

/// One record: its fields' bytes, as read (not yet checked as UTF-8).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The line it starts on.
    pub line: u64,
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it has no field (never, for a record handed out).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, if the record has it.
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..end])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records.
    Between,
    /// At the start of a field.
    FieldStart,
    /// In a field without quotes.
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote in a quoted field: its end, or the first of two.
    QuoteInQuoted,
}

/// The reader's state between chunks.
#[derive(Debug)]
pub struct CsvReader {
    state: State,
    /// The current record's fields, back to back.
    buf: Vec<u8>,
    /// Where each of its finished fields ends in `buf`.
    ends: Vec<usize>,
    /// Line breaks seen so far.
    newlines: u64,
    /// The line the current record starts on.
    record_line: u64,
}

impl Default for CsvReader {
    fn default() -> Self {
        Self {
            state: State::Between,
            buf: Vec::new(),
            ends: Vec::new(),
            newlines: 0,
            record_line: 0,
        }
    }
}

impl CsvReader {
    /// Reads `input`, calling `on_record` for each record it completes.
    ///
    /// # Errors
    /// A [`CsvError`] when a field grows past [`MAX_FIELD_BYTES`].
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_record: impl FnMut(Record<'_>),
    ) -> Result<(), CsvError> {
        for &b in input {
            let line = self.newlines + 1;
            if b == b'\n' {
                self.newlines += 1;
            }
            match self.state {
                State::Between => {
                    if b == b'\n' || b == b'\r' {
                        continue;
                    }
                    self.record_line = line;
                    self.field_start(b, &mut on_record);
                }
                State::FieldStart => self.field_start(b, &mut on_record),
                State::Unquoted => match b {
                    b',' => self.end_field(State::FieldStart),
                    b'\n' => self.end_record(&mut on_record),
                    b'\r' => {}
                    _ => self.buf.push(b),
                },
                State::Quoted => match b {
                    b'"' => self.state = State::QuoteInQuoted,
                    _ => self.buf.push(b),
                },
                State::QuoteInQuoted => match b {
                    b'"' => {
                        self.buf.push(b'"');
                        self.state = State::Quoted;
                    }
                    b',' => self.end_field(State::FieldStart),
                    b'\n' => self.end_record(&mut on_record),
                    b'\r' => {}
                    // `"ab"c` reads as `abc`, as most readers do.
                    _ => {
                        self.buf.push(b);
                        self.state = State::Unquoted;
                    }
                },
            }
            let start = self.ends.last().copied().unwrap_or(0);
            if self.buf.len() - start > MAX_FIELD_BYTES {
                return Err(CsvError::FieldTooLong {
                    line: self.record_line,
                });
            }
        }
        Ok(())
    }

    /// Ends the input: hands out a last record that has no line break.
    ///
    /// # Errors
    /// [`CsvError::UnterminatedQuote`] when the input ends in a quoted field.
    pub fn finish(&mut self, mut on_record: impl FnMut(Record<'_>)) -> Result<(), CsvError> {
        match self.state {
            State::Between => Ok(()),
            State::Quoted => Err(CsvError::UnterminatedQuote {
                line: self.record_line,
            }),
            _ => {
                self.end_record(&mut on_record);
                Ok(())
            }
        }
    }

    fn field_start(&mut self, b: u8, on_record: &mut impl FnMut(Record<'_>)) {
        match b {
            b'"' => self.state = State::Quoted,
            b',' => self.end_field(State::FieldStart),
            b'\n' => self.end_record(on_record),
            b'\r' => self.state = State::FieldStart,
            _ => {
                self.buf.push(b);
                self.state = State::Unquoted;
            }
        }
    }

    fn end_field(&mut self, next: State) {
        self.ends.push(self.buf.len());
        self.state = next;
    }

    fn end_record(&mut self, on_record: &mut impl FnMut(Record<'_>)) {
        self.ends.push(self.buf.len());
        on_record(Record {
            line: self.record_line,
            buf: &self.buf,
            ends: &self.ends,
        });
        self.buf.clear();
        self.ends.clear();
        self.state = State::Between;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `input` fed in chunks of `chunk` bytes, as
    /// (line, fields).
    fn read(input: &[u8], chunk: usize) -> Result<Vec<(u64, Vec<String>)>, CsvError> {
        let mut reader = CsvReader::default();
        let mut out = Vec::new();
        let mut take = |r: Record<'_>| {
            let fields = (0..r.len())
                .map(|i| String::from_utf8(r.field(i).unwrap_or_default().to_vec()).expect("utf-8"))
                .collect();
            out.push((r.line, fields));
        };
        for part in input.chunks(chunk) {
            reader.feed(part, &mut take)?;
        }
        reader.finish(&mut take)?;
        Ok(out)
    }

    fn fields(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn quotes_commas_and_line_breaks_read_the_same_in_any_chunking() {
        let input = b"name,phone,labels\r\n\"Smith, Jane\",6289876543210,\"Lead, Website\"\r\n\
\"Say \"\"hi\"\"\",6281234567890,\r\n\r\n\"Two\nlines\",6281111111111,VIP\nlast,6282222222222,x";
        let want = vec![
            (1, fields(&["name", "phone", "labels"])),
            (
                2,
                fields(&["Smith, Jane", "6289876543210", "Lead, Website"]),
            ),
            (3, fields(&["Say \"hi\"", "6281234567890", ""])),
            (5, fields(&["Two\nlines", "6281111111111", "VIP"])),
            (7, fields(&["last", "6282222222222", "x"])),
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                read(input, chunk).expect("reads"),
                want,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn empty_fields_and_a_trailing_comma_are_fields() {
        assert_eq!(
            read(b"a,,\n,b\n", 4).expect("reads"),
            vec![(1, fields(&["a", "", ""])), (2, fields(&["", "b"]))]
        );
    }

    #[test]
    fn an_open_quote_is_named_by_its_line() {
        assert_eq!(
            read(b"a,b\n\"open,c\nd\n", 5),
            Err(CsvError::UnterminatedQuote { line: 2 })
        );
        let mut long = b"h\nok\n\"".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_FIELD_BYTES + 1));
        assert_eq!(read(&long, 4096), Err(CsvError::FieldTooLong { line: 3 }));
    }
}
