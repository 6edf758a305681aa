//! Message ids on WhatsApp Web: the id a send of ours carries, derived
//! from our message id so that a retried send is the same message to
//! WhatsApp; and short memories of recent ids, for what the ports cannot
//! carry (a status report's own message id, a read receipt's chat).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use maveraa_domain::MessageId;
use sha2::{Digest, Sha256};

/// What WhatsApp Web's own ids start with (`3EB0` and 18 upper-case hex
/// digits: `wacore::request::RequestUtils::message_id_at`).
const PREFIX: &str = "3EB0";
/// Separates our derivation from any other use of the same hash.
const DOMAIN: &[u8] = b"maveraa/whatsapp-web/message-id/v1\0";

/// The WhatsApp message id a send of `id` carries: `3EB0` and 18
/// upper-case hex digits (9 bytes of a SHA-256 of our id), the shape and
/// length WhatsApp Web gives its own, so recipients treat it as theirs.
pub fn derive_message_id(id: MessageId) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(id.as_uuid().as_bytes());
    let hash = hasher.finalize();
    let mut out = String::with_capacity(PREFIX.len() + 18);
    out.push_str(PREFIX);
    out.push_str(&hex::encode_upper(&hash[..9]));
    out
}

/// A bounded memory of recent keys and their values: the oldest is
/// forgotten once `capacity` are held.
pub(crate) struct Recent<K, V> {
    capacity: usize,
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(key)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_have_whatsapp_webs_shape_and_are_stable() {
        let id = MessageId::new();
        let a = derive_message_id(id);
        assert_eq!(a, derive_message_id(id), "a retry is the same message");
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("3EB0"));
        assert!(
            a[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        assert_ne!(a, derive_message_id(MessageId::new()));
    }

    #[test]
    fn derived_ids_do_not_change_between_versions() {
        // Ids already sent must map to the same WhatsApp ids after an upgrade.
        let id = MessageId::from_uuid(uuid::Uuid::nil());
        assert_eq!(derive_message_id(id), "3EB02116DBB732C1C24CEC");
    }

    #[test]
    fn recent_forgets_the_oldest() {
        let r = Recent::new(2);
        r.insert("a".to_owned(), 1);
        r.insert("b".to_owned(), 2);
        r.insert("c".to_owned(), 3);
        assert_eq!(r.get("a"), None);
        assert_eq!(r.get("b"), Some(2));
        assert_eq!(r.get("c"), Some(3));
        r.insert("c".to_owned(), 4);
        assert_eq!(r.get("c"), Some(4));
        assert_eq!(r.get("b"), Some(2));
    }
}
