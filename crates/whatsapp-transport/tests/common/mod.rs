//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use maveraa_domain::messaging::{
    CloudApiSettings, ProviderEvent, ProviderSettings, SecretString, Session, SessionName,
    SessionStatus,
};
use maveraa_domain::ports::ProviderEventSink;
use maveraa_domain::{RepositoryError, SessionId, WorkspaceId};
use tokio::sync::mpsc;

pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const TOKEN: &str = "EAAG-factory-token";

pub fn session(name: &str, provider: ProviderSettings) -> Session {
    Session {
        id: SessionId::new(),
        workspace_id: WorkspaceId::new(),
        name: SessionName::parse("sessionId", name).expect("valid name"),
        provider,
        status: SessionStatus::Connected,
        last_error: None,
        me: None,
        created_at: Utc::now(),
    }
}

pub fn simulator_session(name: &str) -> Session {
    session(name, ProviderSettings::Simulator)
}

pub fn cloud_session(name: &str, phone_number_id: &str, token: &str) -> Session {
    session(
        name,
        ProviderSettings::CloudApi(CloudApiSettings {
            phone_number_id: phone_number_id.to_owned(),
            access_token: SecretString::new(token),
            app_secret: SecretString::new("app-secret"),
            verify_token: SecretString::new("verify-token"),
        }),
    )
}

/// A sink that forwards every delivery, with the session, to a channel.
#[derive(Debug)]
pub struct ChannelSink {
    tx: mpsc::UnboundedSender<(Session, Vec<ProviderEvent>)>,
    /// Failures to answer, oldest first (`true` = fail that delivery).
    pub failures: Mutex<Vec<bool>>,
}

impl ChannelSink {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(Session, Vec<ProviderEvent>)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                failures: Mutex::new(Vec::new()),
            },
            rx,
        )
    }
}

#[async_trait]
impl ProviderEventSink for ChannelSink {
    async fn deliver(
        &self,
        session: &Session,
        events: Vec<ProviderEvent>,
    ) -> Result<(), RepositoryError> {
        let fail = {
            let mut failures = self.failures.lock().expect("lock");
            if failures.is_empty() {
                false
            } else {
                failures.remove(0)
            }
        };
        let _ = self.tx.send((session.clone(), events));
        if fail {
            Err(RepositoryError::Unavailable("test failure".to_owned()))
        } else {
            Ok(())
        }
    }
}
