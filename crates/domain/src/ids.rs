//! Typed identifiers. All are UUIDv7, so they sort by creation time.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// The text given was not an identifier of the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identifier")]
pub struct IdParseError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an identifier read back from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.as_hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self).map_err(|_| IdParseError)
            }
        }
    };
}

id_type!(
    /// Identifies a workspace, the tenant that owns contacts, keys and sessions.
    WorkspaceId
);
id_type!(
    /// Identifies a contact (the API's `_id`).
    ContactId
);
id_type!(
    /// Identifies an API key record (never the key itself).
    ApiKeyId
);
id_type!(
    /// Identifies a dashboard user.
    UserId
);

id_type!(
    /// Identifies a WhatsApp session globally (its webhook URL carries it);
    /// users name sessions with a [`crate::messaging::SessionName`] instead.
    SessionId
);
id_type!(
    /// Identifies a stored message (the API's `messageId`).
    MessageId
);

id_type!(
    /// Identifies a webhook endpoint.
    WebhookId
);
id_type!(
    /// Identifies one event's delivery to one endpoint (stable across its
    /// attempts; receivers may deduplicate by it). Made by the store, which
    /// gives random (v4) ones.
    DeliveryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = ContactId::new();
        let parsed: ContactId = id.to_string().parse().expect("parses");
        assert_eq!(id, parsed);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("60d5ec".parse::<ContactId>(), Err(IdParseError));
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = WorkspaceId::new();
        let b = WorkspaceId::new();
        assert!(a < b);
    }
}
