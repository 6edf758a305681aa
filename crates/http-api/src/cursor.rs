//! Opaque cursors for keyset paging (`next` in list answers, `after` in
//! their query strings), after Stripe's `starting_after` and Slack's
//! `next_cursor`.
//!
//! The domain pages by [`Position`] (a sort time and a key); how that is
//! written for clients is this adapter's business, so the format lives
//! here. A cursor is the URL-safe base64 (no padding) of:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | format version, [`VERSION`] |
//! | 1 | the list: `c` contacts, `v` conversations, `m` messages |
//! | 8 | the first 8 bytes of SHA-256 over the list's filters |
//! | 8 | the sort time, microseconds since the epoch, big-endian |
//! | 16 | the row's id (a conversation's: its session's) |
//! | rest | a conversation's contact (its digits) |
//!
//! The filter fingerprint makes a cursor used with other filters a `400`
//! rather than a page of another list. Nothing in a cursor needs to be
//! secret or unforgeable: every query is bounded by the caller's
//! workspace, so a made-up position only starts a page of its own data
//! somewhere else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use maveraa_domain::messaging::{SessionName, WaId};
use maveraa_domain::{
    ContactId, ContactPosition, ConversationKey, ConversationPosition, MessageId, MessagePosition,
    Position, SessionId,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// The format written; a later format gets another number, and a server
/// refuses (as malformed) the versions it does not know.
const VERSION: u8 = 1;
const HEADER: usize = 1 + 1 + 8 + 8 + 16;

/// The field cursors come in.
pub(crate) const FIELD: &str = "after";

/// Which list a cursor belongs to, with the filters it was made under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    kind: u8,
    fingerprint: [u8; 8],
}

impl Scope {
    fn new(kind: u8, filters: &[Option<&str>]) -> Self {
        let mut hash = Sha256::new();
        hash.update([VERSION, kind]);
        // Each filter tagged and length-prefixed: ("ab", None) and
        // (None, "ab") or ("a", "b") never hash alike.
        for filter in filters {
            match filter {
                None => hash.update([0]),
                Some(value) => {
                    hash.update([1]);
                    hash.update(u64::try_from(value.len()).unwrap_or(u64::MAX).to_be_bytes());
                    hash.update(value.as_bytes());
                }
            }
        }
        let digest = hash.finalize();
        let mut fingerprint = [0; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        Self { kind, fingerprint }
    }

    /// The contact list under `search` and `label`.
    pub(crate) fn contacts(search: Option<&str>, label: Option<&str>) -> Self {
        Self::new(b'c', &[search, label])
    }

    /// The conversation list, of one session or all.
    pub(crate) fn conversations(session: Option<&SessionName>) -> Self {
        Self::new(b'v', &[session.map(SessionName::as_str)])
    }

    /// The messages of the conversation with `remote` through `session`.
    pub(crate) fn messages(session: &SessionName, remote: &WaId) -> Self {
        Self::new(b'm', &[Some(session.as_str()), Some(remote.as_str())])
    }

    fn encode(self, at: DateTime<Utc>, id: Uuid, tail: &str) -> String {
        let mut bytes = Vec::with_capacity(HEADER + tail.len());
        bytes.push(VERSION);
        bytes.push(self.kind);
        bytes.extend_from_slice(&self.fingerprint);
        bytes.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(tail.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The time, id and tail of `cursor`.
    ///
    /// # Errors
    /// `400 validation_failed` on `after` when it is not a cursor of this
    /// list, or was made under other filters.
    fn decode(self, cursor: &str) -> Result<(DateTime<Utc>, Uuid, String), ApiError> {
        let malformed = || {
            ApiError::validation(
                FIELD,
                "after must be a cursor this list answered in `next`, unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .map_err(|_| malformed())?;
        if bytes.len() < HEADER || bytes[0] != VERSION || bytes[1] != self.kind {
            return Err(malformed());
        }
        if bytes[2..10] != self.fingerprint {
            return Err(ApiError::validation(
                FIELD,
                "after is a cursor of this list under other filters: send the same \
                 search, label, sessionId and remoteJid as the request that answered it",
            ));
        }
        let mut micros = [0; 8];
        micros.copy_from_slice(&bytes[10..18]);
        let at =
            DateTime::from_timestamp_micros(i64::from_be_bytes(micros)).ok_or_else(malformed)?;
        let id = Uuid::from_slice(&bytes[18..HEADER]).map_err(|_| malformed())?;
        let tail = String::from_utf8(bytes[HEADER..].to_vec()).map_err(|_| malformed())?;
        Ok((at, id, tail))
    }

    /// The cursor of a contact's position.
    pub(crate) fn encode_contact(self, p: &ContactPosition) -> String {
        self.encode(p.at, p.key.as_uuid(), "")
    }

    /// A contact position from `cursor`.
    ///
    /// # Errors
    /// As [`Scope::decode`], and for a cursor with a tail.
    pub(crate) fn decode_contact(self, cursor: &str) -> Result<ContactPosition, ApiError> {
        let (at, id, tail) = self.decode(cursor)?;
        no_tail(&tail)?;
        Ok(Position {
            at,
            key: ContactId::from_uuid(id),
        })
    }

    /// The cursor of a message's position.
    pub(crate) fn encode_message(self, p: &MessagePosition) -> String {
        self.encode(p.at, p.key.as_uuid(), "")
    }

    /// A message position from `cursor`.
    ///
    /// # Errors
    /// As [`Scope::decode`], and for a cursor with a tail.
    pub(crate) fn decode_message(self, cursor: &str) -> Result<MessagePosition, ApiError> {
        let (at, id, tail) = self.decode(cursor)?;
        no_tail(&tail)?;
        Ok(Position {
            at,
            key: MessageId::from_uuid(id),
        })
    }

    /// The cursor of a conversation's position.
    pub(crate) fn encode_conversation(self, p: &ConversationPosition) -> String {
        self.encode(p.at, p.key.session.as_uuid(), p.key.remote.as_str())
    }

    /// A conversation position from `cursor`.
    ///
    /// # Errors
    /// As [`Scope::decode`], and for a contact that is not one.
    pub(crate) fn decode_conversation(
        self,
        cursor: &str,
    ) -> Result<ConversationPosition, ApiError> {
        let (at, id, tail) = self.decode(cursor)?;
        let remote = WaId::parse(FIELD, &tail).map_err(|_| {
            ApiError::validation(
                FIELD,
                "after must be a cursor this list answered in `next`, unchanged",
            )
        })?;
        Ok(Position {
            at,
            key: ConversationKey {
                session: SessionId::from_uuid(id),
                remote,
            },
        })
    }
}

fn no_tail(tail: &str) -> Result<(), ApiError> {
    if tail.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(
            FIELD,
            "after must be a cursor this list answered in `next`, unchanged",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time")
    }

    #[test]
    fn positions_round_trip_to_the_microsecond() {
        let scope = Scope::contacts(Some("ali"), None);
        let p = ContactPosition {
            at: at(),
            key: ContactId::new(),
        };
        let cursor = scope.encode_contact(&p);
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe as it is: {cursor}"
        );
        assert_eq!(scope.decode_contact(&cursor).ok(), Some(p));

        let session = SessionName::parse("sessionId", "s1").expect("name");
        let scope = Scope::conversations(Some(&session));
        let p = ConversationPosition {
            at: at(),
            key: ConversationKey {
                session: SessionId::new(),
                remote: WaId::parse("to", "6281234567890").expect("wa"),
            },
        };
        assert_eq!(
            scope
                .decode_conversation(&scope.encode_conversation(&p))
                .ok(),
            Some(p)
        );
    }

    #[test]
    fn a_cursor_is_refused_under_other_filters_or_another_list() {
        let p = ContactPosition {
            at: at(),
            key: ContactId::new(),
        };
        let cursor = Scope::contacts(Some("ab"), None).encode_contact(&p);
        for other in [
            Scope::contacts(None, Some("ab")),
            Scope::contacts(Some("a"), Some("b")),
            Scope::contacts(None, None),
            Scope::contacts(Some("AB"), None),
        ] {
            let err = other.decode_contact(&cursor).expect_err("other filters");
            assert_eq!(err.field(), Some("after"));
            assert!(err.to_string().contains("other filters"), "{err}");
        }
        let session = SessionName::parse("sessionId", "s1").expect("name");
        let remote = WaId::parse("to", "6281234567890").expect("wa");
        let err = Scope::messages(&session, &remote)
            .decode_message(&cursor)
            .expect_err("another list");
        assert_eq!(err.field(), Some("after"));
    }

    #[test]
    fn malformed_cursors_are_refused_naming_after() {
        let scope = Scope::contacts(None, None);
        let good = scope.encode_contact(&ContactPosition {
            at: at(),
            key: ContactId::new(),
        });
        let mut bytes = URL_SAFE_NO_PAD.decode(&good).expect("base64");
        bytes[0] = 9;
        let future = URL_SAFE_NO_PAD.encode(&bytes);
        let long = format!("{good}AAAA");
        for bad in [
            "",
            "not a cursor",
            "AAAA",
            &good[..good.len() - 2],
            &future,
            &long,
        ] {
            let err = scope.decode_contact(bad).expect_err(bad);
            assert_eq!(err.code(), "validation_failed", "{bad}");
            assert_eq!(err.field(), Some("after"), "{bad}");
        }
    }
}
