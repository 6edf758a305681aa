//! The inbox: conversations, a conversation's messages with ticks, replies.

use super::*;

struct ConversationRow {
    session: String,
    remote: String,
    title: String,
    unread: u32,
    when: String,
    last: String,
    open: bool,
}

struct OpenConversation {
    title: String,
    session: String,
    remote: String,
}

struct MessageRow {
    text: String,
    when: String,
    outbound: bool,
    status: &'static str,
    tick: &'static str,
    error: Option<String>,
    /// Where to download received media.
    media: Option<String>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    nav: Option<Nav>,
    flash: Option<String>,
    error: Option<String>,
    csrf: String,
    sessions: Vec<String>,
    session: String,
    conversations: Vec<ConversationRow>,
    open: Option<OpenConversation>,
    messages: Vec<MessageRow>,
}

#[derive(Template)]
#[template(path = "inbox_list.html")]
struct InboxList {
    conversations: Vec<ConversationRow>,
}

#[derive(Template)]
#[template(path = "inbox_messages.html")]
struct InboxMessages {
    messages: Vec<MessageRow>,
}

#[derive(Debug, Default, Deserialize)]
pub(in crate::dashboard) struct InboxQuery {
    #[serde(default)]
    session: String,
    part: Option<String>,
}

/// Conversations shown at once.
const CONVERSATIONS: u32 = 50;
/// Messages of a conversation shown at once (the newest).
const MESSAGES: u32 = 100;

async fn conversation_rows(
    signed: &Signed,
    state: &ApiState,
    session: &str,
    open: Option<(&str, &str)>,
) -> Result<Vec<ConversationRow>, PageError> {
    let filter = match session {
        "" => None,
        s => Some(SessionName::parse("session", s).map_err(|_| PageError::NotFound)?),
    };
    let page = state
        .inbox
        .conversations(
            signed.workspace(),
            filter.as_ref(),
            PageStart::Newest,
            CONVERSATIONS,
        )
        .await;
    let page = match page {
        Ok(p) => p,
        Err(maveraa_domain::InboxError::SessionNotFound) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    Ok(page
        .items
        .into_iter()
        .map(|c| {
            let session = c.session_name.as_str().to_owned();
            let remote = c.remote.as_str().to_owned();
            ConversationRow {
                open: open == Some((session.as_str(), remote.as_str())),
                title: c
                    .push_name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("+{remote}")),
                session,
                remote,
                unread: c.unread_count,
                when: time(&c.last_message_at),
                last: c.last_message.chars().take(80).collect(),
            }
        })
        .collect())
}

async fn session_names(signed: &Signed, state: &ApiState) -> Result<Vec<String>, PageError> {
    Ok(state
        .sessions
        .list(signed.workspace())
        .await
        .map_err(internal)?
        .iter()
        .map(|s| s.name.as_str().to_owned())
        .collect())
}

/// `GET /inbox` (`session`; `part=list`: the list alone)
pub(in crate::dashboard) async fn inbox(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, PageError> {
    let conversations = conversation_rows(&signed, &state, &query.session, None).await?;
    if query.part.as_deref() == Some("list") {
        return render(&InboxList { conversations }, StatusCode::OK);
    }
    render(
        &InboxPage {
            nav: Some(Nav::of(&signed, "inbox")),
            flash: flash(&req),
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            sessions: session_names(&signed, &state).await?,
            session: query.session.clone(),
            conversations,
            open: None,
            messages: Vec::new(),
        },
        StatusCode::OK,
    )
}

fn conversation_key(path: &(String, String)) -> Result<(SessionName, WaId), PageError> {
    let session = SessionName::parse("session", &path.0).map_err(|_| PageError::NotFound)?;
    let remote = WaId::parse("remote", &path.1).map_err(|_| PageError::NotFound)?;
    Ok((session, remote))
}

async fn message_rows(
    signed: &Signed,
    state: &ApiState,
    session: &SessionName,
    remote: &WaId,
) -> Result<Vec<MessageRow>, PageError> {
    let page = match state
        .inbox
        .conversation_messages(
            signed.workspace(),
            session,
            remote,
            PageStart::Newest,
            MESSAGES,
        )
        .await
    {
        Ok(p) => p,
        Err(
            maveraa_domain::InboxError::SessionNotFound
            | maveraa_domain::InboxError::ConversationNotFound,
        ) => return Err(PageError::NotFound),
        Err(e) => return Err(internal(e)),
    };
    // Oldest first on the page, as a chat reads.
    Ok(page
        .items
        .iter()
        .rev()
        .map(|m| {
            let outbound = m.direction == Direction::Outbound;
            let (status, tick) = match m.status {
                MessageStatus::Queued => ("queued", "\u{1f552}"),
                MessageStatus::Sent => ("sent", "\u{2713}"),
                MessageStatus::Delivered => ("delivered", "\u{2713}\u{2713}"),
                MessageStatus::Read => ("read", "\u{2713}\u{2713}"),
                MessageStatus::Failed => ("failed", "\u{2717}"),
                MessageStatus::Received => ("received", ""),
            };
            MessageRow {
                text: m.content.preview(),
                when: time(&m.provider_timestamp.unwrap_or(m.created_at)),
                outbound,
                status,
                tick,
                error: m.error.as_ref().map(|e| e.message.clone()),
                media: m
                    .has_received_media()
                    .then(|| format!("/messages/{}/media", m.id)),
            }
        })
        .collect())
}

/// `GET /inbox/{session}/{remote}` (`part=messages`: the messages alone).
/// Opening a conversation marks it read.
pub(in crate::dashboard) async fn conversation(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, PageError> {
    let (session, remote) = conversation_key(&path)?;
    let messages = message_rows(&signed, &state, &session, &remote).await?;
    // Read while open: new inbound messages too, as they appear.
    match state
        .inbox
        .mark_read(signed.workspace(), &session, &remote)
        .await
    {
        Ok(_) | Err(maveraa_domain::InboxError::ConversationNotFound) => {}
        Err(e) => tracing::warn!(error = %e, "dashboard: could not mark a conversation read"),
    }
    if query.part.as_deref() == Some("messages") {
        return render(&InboxMessages { messages }, StatusCode::OK);
    }
    let conversations = conversation_rows(
        &signed,
        &state,
        &query.session,
        Some((session.as_str(), remote.as_str())),
    )
    .await?;
    let title = conversations
        .iter()
        .find(|c| c.open)
        .map_or_else(|| format!("+{}", remote.as_str()), |c| c.title.clone());
    render(
        &InboxPage {
            nav: Some(Nav::of(&signed, "inbox")),
            flash: flash(&req),
            error: None,
            csrf: signed.0.session.csrf_token.clone(),
            sessions: session_names(&signed, &state).await?,
            session: query.session.clone(),
            conversations,
            open: Some(OpenConversation {
                title,
                session: session.as_str().to_owned(),
                remote: remote.as_str().to_owned(),
            }),
            messages,
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub(in crate::dashboard) struct ReplyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    text: String,
}

/// `POST /inbox/{session}/{remote}`: a text reply, queued like an API send.
pub(in crate::dashboard) async fn reply(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    form: web::Form<ReplyForm>,
) -> Result<HttpResponse, PageError> {
    signed.check(&req, &form.csrf)?;
    let (session, remote) = conversation_key(&path)?;
    let back = format!(
        "/inbox/{}/{}",
        urlencode(session.as_str()),
        urlencode(remote.as_str())
    );
    let sent = async {
        let request = SendMessage {
            session: session.clone(),
            to: PhoneNumber::parse("targetNumber", remote.as_str())?,
            content: OutboundContent::Text {
                body: MessageText::parse_without_media("message", &form.text)?,
            },
        };
        Ok::<_, ValidationError>(request)
    }
    .await;
    let request = match sent {
        Ok(r) => r,
        Err(_) => return Ok(see_other(&back)),
    };
    match state
        .messaging
        .send(signed.workspace(), request, None)
        .await
    {
        Ok(_) => Ok(see_other(&back)),
        Err(maveraa_domain::MessagingError::SessionNotFound) => Err(PageError::NotFound),
        Err(e) => Err(internal(e)),
    }
}

/// `GET /messages/{id}/media` (not under `/inbox/`, where it would take
/// the conversation pages of a session named "media"): a received message's file, fetched from its
/// provider, as a download.
pub(in crate::dashboard) async fn message_media(
    signed: Signed,
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id: maveraa_domain::MessageId = path.parse().map_err(|_| PageError::NotFound)?;
    match state.messaging.media(signed.workspace(), id).await {
        Ok((message, file)) => Ok(crate::messages::media_response(&message, file)),
        Err(maveraa_domain::MessagingError::NotFound | maveraa_domain::MessagingError::NoMedia) => {
            Err(PageError::NotFound)
        }
        Err(maveraa_domain::MessagingError::Media(e)) => {
            Err(PageError::MediaUnavailable(match e {
                maveraa_domain::ports::MediaError::Gone { .. } => {
                    "WhatsApp no longer has this file.".to_owned()
                }
                maveraa_domain::ports::MediaError::TooLarge { limit_bytes } => format!(
                    "This file is larger than this server fetches ({} MB).",
                    limit_bytes / 1_000_000
                ),
                maveraa_domain::ports::MediaError::Unavailable { .. } => {
                    "The file could not be fetched from WhatsApp now; try again later.".to_owned()
                }
            }))
        }
        Err(e) => Err(internal(e)),
    }
}
