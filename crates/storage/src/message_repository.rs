//! The domain's `MessageRepository` port on [`PgStore`]: each call runs
//! the SQL of [`crate::messages`] on a database thread.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use maveraa_domain::messaging::{
    Conversation, ConversationQuery, IdempotencyKey, InboundMessage, Message, Session,
    StatusUpdate, WaId,
};
use maveraa_domain::ports::{EnqueueOutcome, MessageRepository};
use maveraa_domain::{
    ConversationKey, MessageId, MessagePosition, Page, PageStart, RepositoryError, SessionId,
    WorkspaceId,
};

use crate::messages::inbound::{SessionColumns, record_inbound};
use crate::messages::rows::{MessageRow, encode_content};
use crate::messages::{conversations, reports, retry, rows};
use crate::store::PgStore;

#[async_trait]
impl MessageRepository for PgStore {
    async fn enqueue(
        &self,
        message: &Message,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<EnqueueOutcome, RepositoryError> {
        Ok(self
            .sends
            .enqueue(&self.db, message.clone(), idempotency.cloned())
            .await?)
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<Message>, RepositoryError> {
        Ok(self
            .db
            .run(move |conn| rows::get(conn, workspace, id))
            .await?)
    }

    async fn list_for_conversation(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
        start: PageStart<MessageId>,
        limit: u32,
    ) -> Result<Page<Message, MessageId>, RepositoryError> {
        let remote = remote.as_str().to_owned();
        let (rows, more): (Vec<MessageRow>, bool) = self
            .db
            .run(move |conn| {
                conversations::messages(conn, workspace, session, &remote, start, limit)
            })
            .await?;
        let items: Vec<Message> = rows
            .into_iter()
            .map(Message::try_from)
            .collect::<Result<_, _>>()?;
        let next = if more {
            items.last().map(|m| MessagePosition {
                at: m.created_at,
                key: m.id,
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn record_inbound(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.record_message(session, id, message, received_at, false)
            .await
    }

    async fn record_echo(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.record_message(session, id, message, received_at, true)
            .await
    }

    async fn apply_status(
        &self,
        session: SessionId,
        update: &StatusUpdate,
    ) -> Result<bool, RepositoryError> {
        let update = update.clone();
        Ok(self
            .db
            .run(move |conn| reports::apply_status(conn, session.as_uuid(), &update))
            .await?)
    }

    async fn list_conversations(
        &self,
        workspace: WorkspaceId,
        query: &ConversationQuery,
    ) -> Result<Page<Conversation, ConversationKey>, RepositoryError> {
        let query = query.clone();
        let names = self.session_names.clone();
        let (items, next) = self
            .reads
            .run(move |conn| conversations::list(conn, &names, workspace, &query))
            .await?;
        Ok(Page { items, next })
    }

    async fn mark_conversation_read(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
    ) -> Result<Option<Option<String>>, RepositoryError> {
        let remote = remote.as_str().to_owned();
        Ok(self
            .db
            .run(move |conn| conversations::mark_read(conn, workspace, session, &remote))
            .await?)
    }

    async fn requeue(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Option<Message>, RepositoryError> {
        Ok(self
            .db
            .run(move |conn| retry::requeue(conn, workspace, id, at))
            .await?)
    }

    async fn requeue_failed(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        error_code: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let error_code = error_code.map(str::to_owned);
        Ok(self
            .db
            .run(move |conn| {
                retry::requeue_failed(conn, workspace, session, error_code.as_deref(), at)
            })
            .await?)
    }
}

impl PgStore {
    /// An inbound message, or with `echo` one the account sent elsewhere.
    async fn record_message(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
        echo: bool,
    ) -> Result<bool, RepositoryError> {
        let columns = SessionColumns {
            id: session.id.as_uuid(),
            workspace_id: session.workspace_id.as_uuid(),
        };
        let content = encode_content(&message.content)?;
        let message = message.clone();
        Ok(self
            .db
            .run(move |conn| {
                record_inbound(
                    conn,
                    &columns,
                    id.as_uuid(),
                    &message,
                    &content,
                    received_at,
                    echo,
                )
            })
            .await?)
    }
}
