//! The linked devices' connections open on this server, by session: where
//! the dispatcher finds the connection a WhatsApp Web message goes through.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use maveraa_domain::SessionId;
use maveraa_domain::ports::LinkConnection;

/// Open connections by session.
#[derive(Default)]
pub struct LiveLinks {
    open: RwLock<HashMap<SessionId, Arc<dyn LinkConnection>>>,
}

impl std::fmt::Debug for LiveLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLinks")
            .field("open", &self.open.read().map(|m| m.len()).unwrap_or(0))
            .finish()
    }
}

impl LiveLinks {
    /// The open connection of `session`.
    pub fn get(&self, session: SessionId) -> Option<Arc<dyn LinkConnection>> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&session)
            .cloned()
    }

    /// Records `connection` as `session`'s open connection.
    pub fn insert(&self, session: SessionId, connection: Arc<dyn LinkConnection>) {
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, connection);
    }

    /// Forgets `session`'s connection.
    pub fn remove(&self, session: SessionId) -> Option<Arc<dyn LinkConnection>> {
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session)
    }

    /// The sessions with an open connection here.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

/// A linked session's connection that spaces its sends: at least
/// `interval` apart, each gap stretched by a random part of up to
/// `jitter` of it, so a queue is sent at a person's pace, not as the burst
/// WhatsApp bans numbers for. Everything else passes straight through.
pub struct PacedLink {
    inner: Arc<dyn LinkConnection>,
    interval: std::time::Duration,
    jitter: f64,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl std::fmt::Debug for PacedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacedLink")
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl PacedLink {
    /// `inner`, its sends at least `interval` apart, plus up to `jitter`
    /// (0 to 1) of it at random.
    pub fn new(inner: Arc<dyn LinkConnection>, interval: std::time::Duration, jitter: f64) -> Self {
        Self {
            inner,
            interval,
            jitter: if jitter.is_finite() {
                jitter.clamp(0.0, 1.0)
            } else {
                0.0
            },
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this send's turn, and sets the next one's.
    async fn turn(&self) {
        if self.interval.is_zero() {
            return;
        }
        // Held while waiting: sends take their turns in order.
        let mut next = self.next.lock().await;
        tokio::time::sleep_until(*next).await;
        // A uniform fraction from the OS RNG (through a v4 UUID's bits).
        let fraction = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64;
        let gap = self.interval.mul_f64(1.0 + self.jitter * fraction);
        *next = tokio::time::Instant::now() + gap;
    }
}

#[async_trait::async_trait]
impl maveraa_domain::ports::WhatsAppTransport for PacedLink {
    async fn send(
        &self,
        message: &maveraa_domain::transport::OutboundMessage,
    ) -> Result<String, maveraa_domain::ports::TransportError> {
        self.turn().await;
        self.inner.send(message).await
    }

    async fn mark_read(
        &self,
        provider_message_id: &str,
        from: &maveraa_domain::messaging::WaId,
    ) -> Result<(), maveraa_domain::ports::TransportError> {
        self.inner.mark_read(provider_message_id, from).await
    }
}

#[async_trait::async_trait]
impl LinkConnection for PacedLink {
    async fn pair_code(
        &self,
        phone: &str,
    ) -> Result<String, maveraa_domain::ports::TransportError> {
        self.inner.pair_code(phone).await
    }

    async fn logout(&self) -> Result<(), maveraa_domain::ports::TransportError> {
        self.inner.logout().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maveraa_domain::PhoneNumber;
    use maveraa_domain::ports::{TransportError, WhatsAppTransport};
    use maveraa_domain::transport::{OutboundContent, OutboundMessage};
    use std::sync::Mutex;

    /// Records when each send reached it.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<tokio::time::Instant>>);

    #[async_trait::async_trait]
    impl WhatsAppTransport for Recorder {
        async fn send(&self, _: &OutboundMessage) -> Result<String, TransportError> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(tokio::time::Instant::now());
            Ok("id".into())
        }
        async fn mark_read(
            &self,
            _: &str,
            _: &maveraa_domain::messaging::WaId,
        ) -> Result<(), TransportError> {
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl LinkConnection for Recorder {
        async fn pair_code(&self, _: &str) -> Result<String, TransportError> {
            Ok("CODE".into())
        }
        async fn logout(&self) -> Result<(), TransportError> {
            Ok(())
        }
        async fn close(&self) {}
    }

    /// On tokio's paused clock: the gaps are measured, not slept.
    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_by_the_interval_plus_at_most_its_jitter() {
        let recorder = Arc::new(Recorder::default());
        let paced = Arc::new(PacedLink::new(
            recorder.clone(),
            std::time::Duration::from_secs(2),
            0.5,
        ));
        let message = OutboundMessage {
            to: PhoneNumber::parse("to", "6281234567890").expect("phone"),
            content: OutboundContent::Text {
                body: maveraa_domain::messaging::MessageText::parse("text", "hi").expect("text"),
            },
            message_id: None,
        };
        let sends: Vec<_> = (0..6)
            .map(|_| {
                let (paced, message) = (paced.clone(), message.clone());
                tokio::spawn(async move { paced.send(&message).await })
            })
            .collect();
        for s in sends {
            s.await.expect("task").expect("sent");
        }
        let at = recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(at.len(), 6);
        let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
        for gap in &gaps {
            assert!(
                *gap >= std::time::Duration::from_secs(2)
                    && *gap <= std::time::Duration::from_secs(3),
                "{gaps:?}"
            );
        }
        assert!(gaps.windows(2).any(|w| w[0] != w[1]), "jittered: {gaps:?}");
        assert_eq!(paced.pair_code("628").await, Ok("CODE".into()));
    }
}
