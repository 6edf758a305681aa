//! Domain values decoded straight from a column's bytes.
//!
//! Reading a `text` into a `String` and then into a domain type costs a heap
//! allocation per value; these decode the bytes libpq holds directly into
//! the domain type, whose short text lives inline (docs/storage-tuning.md).

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::{Array, Text};
use maveraa_domain::messaging::{SessionName, WaId};
use maveraa_domain::{ContactName, Labels, PhoneNumber};

macro_rules! text_column {
    ($(#[$doc:meta])* $name:ident, $domain:ty) => {
        $(#[$doc])*
        #[derive(Debug, FromSqlRow)]
        pub(crate) struct $name(pub(crate) $domain);

        impl FromSql<Text, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                Ok(Self(<$domain>::from_trusted_str(std::str::from_utf8(
                    value.as_bytes(),
                )?)))
            }
        }

        impl From<$name> for $domain {
            fn from(column: $name) -> Self {
                column.0
            }
        }
    };
}

text_column!(
    /// A contact's name as stored.
    NameColumn,
    ContactName
);
text_column!(
    /// A phone number as stored (already normalised).
    PhoneColumn,
    PhoneNumber
);

text_column!(
    /// A conversation's contact, as stored (digits).
    WaIdColumn,
    WaId
);
text_column!(
    /// A session's name, as stored.
    SessionNameColumn,
    SessionName
);

/// A `text[]` of labels as stored.
#[derive(Debug, FromSqlRow)]
pub(crate) struct LabelsColumn(pub(crate) Labels);

/// Reads a big-endian `i32` at the front of `bytes`.
fn take_i32(bytes: &mut &[u8]) -> deserialize::Result<i32> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("array value ended early")?;
    *bytes = rest;
    Ok(i32::from_be_bytes(*head))
}

/// The elements of a one-dimensional `text[]` in PostgreSQL's binary
/// format, after its header.
#[derive(Clone)]
struct TextElements<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for TextElements<'a> {
    type Item = deserialize::Result<Option<&'a str>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some((|| {
            let len = take_i32(&mut self.bytes)?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(None); // NULL
            };
            if self.bytes.len() < len {
                return Err("array value ended early".into());
            }
            let (text, rest) = self.bytes.split_at(len);
            self.bytes = rest;
            Ok(Some(std::str::from_utf8(text)?))
        })())
    }
}

// The binary array format: dimensions, a has-nulls flag, the element type,
// then per dimension its length and lower bound, then each element as a
// length (-1 for NULL) and its bytes.
impl FromSql<Array<Text>, Pg> for LabelsColumn {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let mut bytes = value.as_bytes();
        let dims = take_i32(&mut bytes)?;
        let _has_nulls = take_i32(&mut bytes)?;
        let _element_type = take_i32(&mut bytes)?;
        if dims == 0 {
            return Ok(Self(Labels::default()));
        }
        if dims != 1 {
            return Err("labels must be a one-dimensional array".into());
        }
        let left = usize::try_from(take_i32(&mut bytes)?)?;
        let _lower_bound = take_i32(&mut bytes)?;
        let elements = TextElements { bytes, left };
        // Checked in a first pass, so the labels are built without an
        // intermediate vector.
        for element in elements.clone() {
            element?;
        }
        Ok(Self(Labels::from_trusted_parts(
            elements.filter_map(|e| e.ok().flatten()),
        )))
    }
}
