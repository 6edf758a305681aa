//! Value types. Holding one means it is valid: the fields are private and
//! the only way in is a `parse` that checks (or, for values read back from
//! storage, a `from_trusted` that does not check again).

use std::fmt;

// Text values are `CompactString`s: up to 24 bytes live inline, so reading
// a page of contacts does not cost a heap allocation per name, phone and
// label (see docs/performance-notes.md).
use compact_str::CompactString;

/// What follows the digits in a WhatsApp user JID.
pub const JID_SUFFIX: &str = "@s.whatsapp.net";

/// Input that breaks a rule, with the name of the offending field as the
/// public API spells it (`phone`, `name`, `labels`...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field, as named in the public API.
    pub field: String,
    /// A human-readable explanation, safe to show to the API's caller.
    pub message: String,
}

impl ValidationError {
    /// A validation error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A phone number in international form: digits only, country code first,
/// no `+` (for example `6289876543210`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(CompactString);

impl PhoneNumber {
    /// Shortest number accepted, in digits with the country code.
    pub const MIN_DIGITS: usize = 8;
    /// Longest number E.164 allows.
    pub const MAX_DIGITS: usize = 15;

    /// Parses a number given with its country code, in any usual notation:
    /// `6289876543210`, `+62 898-7654-3210`, `(+62) 898.7654.3210` and
    /// `0062 898 7654 3210` are the same number.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when the text has letters or other
    /// symbols, is too short or too long, or is not a valid number of its
    /// country.
    pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        let mut digits = String::with_capacity(trimmed.len());
        let mut plus_seen = false;
        for c in trimmed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus_seen => plus_seen = true,
                ' ' | '-' | '.' | '(' | ')' | '/' => {}
                '+' => {
                    return Err(ValidationError::new(field, "'+' may only start the number"));
                }
                _ => {
                    return Err(ValidationError::new(
                        field,
                        "may contain only digits, spaces, dashes, dots, parentheses and a leading '+'",
                    ));
                }
            }
        }
        // "00" is the international call prefix in most countries.
        let digits = digits
            .strip_prefix("00")
            .map(str::to_owned)
            .unwrap_or(digits);
        if digits.len() < Self::MIN_DIGITS {
            return Err(ValidationError::new(
                field,
                format!(
                    "is too short: a number with its country code has at least {} digits",
                    Self::MIN_DIGITS
                ),
            ));
        }
        if digits.len() > Self::MAX_DIGITS {
            return Err(ValidationError::new(
                field,
                format!("is too long: at most {} digits", Self::MAX_DIGITS),
            ));
        }
        if digits.starts_with('0') {
            return Err(ValidationError::new(
                field,
                "must start with the country code (for example 62 for Indonesia), not a trunk 0",
            ));
        }
        let invalid = || {
            ValidationError::new(
                field,
                "is not a valid phone number; give it with its country code, e.g. 6281234567890",
            )
        };
        let parsed = phonenumber::parse(None, format!("+{digits}")).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&parsed) {
            return Err(invalid());
        }
        // E.164 without its '+': the country code, then the national number
        // with any leading zeros it keeps (Italy). Written here because the
        // crate's formatter matches its national format patterns first,
        // even for E.164, which is costly (docs/performance-notes.md).
        Ok(Self(compact_str::format_compact!(
            "{}{}",
            parsed.code().value(),
            parsed.national()
        )))
    }

    /// Wraps a number read back from storage, where it was stored already
    /// normalised. Does not validate.
    pub fn from_trusted(digits: String) -> Self {
        Self(digits.into())
    }

    /// As [`PhoneNumber::from_trusted`], from borrowed text (no allocation
    /// for a number, which fits inline).
    pub fn from_trusted_str(digits: &str) -> Self {
        Self(digits.into())
    }

    /// The digits, country code first.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The WhatsApp JID of this number (`6281234567890@s.whatsapp.net`).
    pub fn to_jid(&self) -> String {
        format!("{}{JID_SUFFIX}", self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

/// Trims `input` and checks it is non-empty and at most `max` characters.
fn bounded_text<'a>(field: &str, input: &'a str, max: usize) -> Result<&'a str, ValidationError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed)
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(CompactString);

        impl $name {
            /// Longest value accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims `input` and checks it.
            ///
            /// # Errors
            /// A [`ValidationError`] on `field` when the trimmed text is
            /// empty, longer than the maximum or has control characters.
            pub fn parse(field: &str, input: &str) -> Result<Self, ValidationError> {
                bounded_text(field, input, Self::MAX_CHARS).map(|t| Self(t.into()))
            }

            /// Wraps a value read back from storage. Does not validate.
            pub fn from_trusted(value: String) -> Self {
                Self(value.into())
            }

            /// As `from_trusted`, from borrowed text (no allocation when
            /// it is at most 24 bytes).
            pub fn from_trusted_str(value: &str) -> Self {
                Self(value.into())
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A contact's name: trimmed, non-empty, at most 200 characters.
    ContactName,
    200
);
text_type!(
    /// A workspace's name: trimmed, non-empty, at most 200 characters.
    WorkspaceName,
    200
);
text_type!(
    /// One label: trimmed, non-empty, at most 50 characters.
    Label,
    50
);

/// A contact's labels: in the order given, without empty parts and without
/// duplicates (compared case-insensitively, the first spelling wins), at
/// most [`Labels::MAX_COUNT`].
// Held as one string, the labels separated by NUL (which no label has: a
// label has no control characters, and PostgreSQL text cannot hold NUL),
// so that a contact's usual few labels fit inline, with no allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels(CompactString);

/// Separates the labels inside [`Labels`].
const LABEL_SEPARATOR: char = '\0';

impl Labels {
    /// Most labels a contact may have.
    pub const MAX_COUNT: usize = 50;

    /// Parses the reference API's comma-separated form: `"Lead, Website"`.
    ///
    /// # Errors
    /// See [`Labels::from_parts`].
    pub fn parse_csv(field: &str, input: &str) -> Result<Self, ValidationError> {
        Self::from_parts(field, input.split(','))
    }

    /// Builds labels from separate parts (a JSON array, or the pieces of a
    /// comma-separated string). Parts are trimmed; empty parts are dropped.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when a label is longer than
    /// [`Label::MAX_CHARS`] or has control characters, or when more than
    /// [`Labels::MAX_COUNT`] distinct labels remain.
    pub fn from_parts<'a>(
        field: &str,
        parts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ValidationError> {
        let mut labels: Vec<Label> = Vec::new();
        for part in parts {
            if part.trim().is_empty() {
                continue;
            }
            let label = Label::parse(field, part)?;
            let seen = labels
                .iter()
                .any(|l| l.as_str().to_lowercase() == label.as_str().to_lowercase());
            if !seen {
                labels.push(label);
            }
        }
        if labels.len() > Self::MAX_COUNT {
            return Err(ValidationError::new(
                field,
                format!("may hold at most {} labels", Self::MAX_COUNT),
            ));
        }
        Ok(Self::from_trusted_parts(labels.iter().map(Label::as_str)))
    }

    /// Wraps labels read back from storage. Does not validate; empty
    /// values are dropped.
    pub fn from_trusted(values: Vec<String>) -> Self {
        Self::from_trusted_parts(values.iter().map(String::as_str))
    }

    /// As [`Labels::from_trusted`], from borrowed parts. Empty parts are
    /// dropped.
    pub fn from_trusted_parts<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut joined = CompactString::default();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            if !joined.is_empty() {
                joined.push(LABEL_SEPARATOR);
            }
            joined.push_str(value);
        }
        Self(joined)
    }

    /// The labels, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(LABEL_SEPARATOR).filter(|l| !l.is_empty())
    }

    /// The labels as owned strings, in order.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.matches(LABEL_SEPARATOR).count() + 1
        }
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our E.164 digits are the crate's E.164 formatting, leading national
    /// zeros (Italian fixed lines) included.
    #[test]
    fn phone_digits_are_the_crates_e164() {
        for input in [
            "+62 898-7654-3210",
            "+1 650 253 0000",
            "+44 20 7946 0958",
            "+39 06 6982 1234",
            "+39 347 123 4567",
            "+49 30 901820",
            "+55 11 91234 5678",
            "+225 07 0123 4567",
        ] {
            let parsed = phonenumber::parse(None, input).expect(input);
            let expected = parsed.format().mode(phonenumber::Mode::E164).to_string();
            let ours = PhoneNumber::parse("phone", input).expect(input);
            assert_eq!(format!("+{}", ours.as_str()), expected, "{input}");
        }
        assert_eq!(
            PhoneNumber::parse("phone", "+39 06 6982 1234")
                .expect("valid")
                .as_str(),
            "390669821234"
        );
    }

    #[test]
    fn phone_notations_normalise_to_the_same_digits() {
        for input in [
            "6289876543210",
            "+62 898-7654-3210",
            "+6289876543210",
            "(+62) 898.7654.3210",
            "0062 898 7654 3210",
            "  6289876543210  ",
        ] {
            let phone = PhoneNumber::parse("phone", input).expect(input);
            assert_eq!(phone.as_str(), "6289876543210", "{input}");
        }
        assert_eq!(
            PhoneNumber::parse("phone", "6281234567890")
                .expect("valid")
                .as_str(),
            "6281234567890"
        );
        assert_eq!(
            PhoneNumber::parse("phone", "+1 (650) 253-0000")
                .expect("valid")
                .as_str(),
            "16502530000"
        );
    }

    #[test]
    fn phone_rejects_letters_short_and_invalid() {
        for (input, expect) in [
            ("62812abc4567", "only digits"),
            ("6281", "too short"),
            ("", "required"),
            ("   ", "required"),
            ("1234567890123456", "too long"),
            ("081234567890", "country code"),
            ("62+81234567890", "'+'"),
            ("99912345678", "not a valid"),
            ("6200000000", "not a valid"),
        ] {
            let err = PhoneNumber::parse("phone", input).expect_err(input);
            assert_eq!(err.field, "phone");
            assert!(err.message.contains(expect), "{input}: {}", err.message);
        }
    }

    #[test]
    fn jid_is_digits_at_whatsapp() {
        let phone = PhoneNumber::parse("phone", "+62 812-3456-7890").expect("valid");
        assert_eq!(phone.to_jid(), "6281234567890@s.whatsapp.net");
    }

    #[test]
    fn name_is_trimmed_and_bounded() {
        assert_eq!(
            ContactName::parse("name", "  Jane Smith ")
                .expect("ok")
                .as_str(),
            "Jane Smith"
        );
        assert!(ContactName::parse("name", "   ").is_err());
        assert!(ContactName::parse("name", &"x".repeat(200)).is_ok());
        let err = ContactName::parse("name", &"é".repeat(201)).expect_err("too long");
        assert_eq!(err.field, "name");
        assert!(ContactName::parse("name", "a\u{0}b").is_err());
    }

    #[test]
    fn labels_are_trimmed_deduplicated_and_ordered() {
        let labels = Labels::parse_csv("labels", "Lead, Website,, lead ,VIP, ").expect("ok");
        assert_eq!(labels.to_vec(), vec!["Lead", "Website", "VIP"]);
        let labels = Labels::from_parts("labels", ["  b", "a", "b", ""]).expect("ok");
        assert_eq!(labels.to_vec(), vec!["b", "a"]);
        assert!(Labels::parse_csv("labels", "").expect("ok").is_empty());
    }

    #[test]
    fn labels_count_iterate_and_compare_in_order() {
        let none = Labels::default();
        assert_eq!(
            (none.len(), none.is_empty(), none.iter().count()),
            (0, true, 0)
        );
        let one = Labels::from_trusted(vec!["Lead".into()]);
        assert_eq!((one.len(), one.to_vec()), (1, vec!["Lead".to_owned()]));
        let many = Labels::from_trusted(vec![
            "VIP".into(),
            String::new(),
            "a longer label than 24 bytes".into(),
        ]);
        assert_eq!(many.len(), 2, "empty parts dropped");
        assert_eq!(many.to_vec(), vec!["VIP", "a longer label than 24 bytes"]);
        assert_eq!(
            format!("{many:?}"),
            r#"["VIP", "a longer label than 24 bytes"]"#
        );
        let parsed = Labels::parse_csv("labels", "VIP, a longer label than 24 bytes").expect("ok");
        assert_eq!(parsed, many);
        assert_ne!(
            parsed,
            Labels::parse_csv("labels", "a longer label than 24 bytes, VIP").expect("ok")
        );
        assert_ne!(one, none);
    }

    #[test]
    fn labels_are_bounded() {
        let fifty: Vec<String> = (0..50).map(|i| format!("l{i}")).collect();
        assert_eq!(
            Labels::from_parts("labels", fifty.iter().map(String::as_str))
                .expect("50 is fine")
                .len(),
            50
        );
        let fifty_one: Vec<String> = (0..51).map(|i| format!("l{i}")).collect();
        let err = Labels::from_parts("labels", fifty_one.iter().map(String::as_str))
            .expect_err("51 is too many");
        assert_eq!(err.field, "labels");
        assert!(Labels::parse_csv("labels", &"x".repeat(51)).is_err());
        assert!(Labels::parse_csv("labels", &"x".repeat(50)).is_ok());
    }
}
