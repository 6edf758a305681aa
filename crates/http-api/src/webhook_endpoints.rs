//! `/api/public/webhooks`: the endpoints a workspace's events are pushed
//! to, their signing secrets and their delivery logs. (The provider
//! webhooks that push into us are in `webhooks`.)

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::usecases::DEFAULT_ROLL_OVERLAP;
use maveraa_domain::{DeliveryId, WebhookId};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authenticated, OptionalJson};
use crate::wire::webhooks::{
    CreateWebhookRequest, DeliveryBody, DeliveryList, RollSecretRequest, UpdateWebhookRequest,
    WebhookBody, WebhookList, delivery_query, next_cursor,
};
use crate::{ApiState, path_param};

/// The endpoint id in the path; one that is not an id of ours is simply
/// not found.
fn endpoint_id(req: &HttpRequest) -> Result<WebhookId, ApiError> {
    path_param(req, "webhookId")
        .parse()
        .map_err(|_| ApiError::not_found("webhook endpoint"))
}

/// `POST /api/public/webhooks`: `201` with the endpoint and its signing
/// secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/public/webhooks",
    tag = "Webhooks",
    operation_id = "createWebhook",
    summary = "Register an endpoint of your app",
    description = "Events of the types it takes are posted to it, signed with its secret \
        (`X-Maveraa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">`), and retried \
        until it answers a 2xx. The secret is in this answer only.",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The endpoint, with its secret", body = WebhookBody,
            headers(("Location" = String, description = "The endpoint's path"))),
        (status = 409, description = "`too_many_webhooks`: the workspace has 20 endpoints", body = ErrorBody),
    )
)]
pub async fn create(
    auth: Authenticated,
    state: web::Data<ApiState>,
    body: ApiJson<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.0.try_into_domain()?;
    let (endpoint, secret) = state.webhooks.create(auth.0.workspace_id, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/public/webhooks/{}", endpoint.id),
        ))
        .json(WebhookBody::new(&endpoint, Some(&secret))))
}

/// `GET /api/public/webhooks`
#[utoipa::path(
    get,
    path = "/api/public/webhooks",
    tag = "Webhooks",
    operation_id = "listWebhooks",
    summary = "The workspace's endpoints",
    responses((status = 200, description = "Oldest first, without secrets", body = WebhookList))
)]
pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let endpoints = state.webhooks.list(auth.0.workspace_id).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        webhooks: endpoints
            .iter()
            .map(|e| WebhookBody::new(e, None))
            .collect(),
    }))
}

/// `GET /api/public/webhooks/{webhookId}`
#[utoipa::path(
    get,
    path = "/api/public/webhooks/{webhookId}",
    tag = "Webhooks",
    operation_id = "getWebhook",
    summary = "One endpoint",
    params(("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")),
    responses(
        (status = 200, description = "The endpoint, without its secret", body = WebhookBody),
        (status = 404, description = "`not_found`: no such endpoint in the workspace", body = ErrorBody),
    )
)]
pub async fn get(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state
        .webhooks
        .get(auth.0.workspace_id, endpoint_id(&req)?)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookBody::new(&endpoint, None)))
}

/// `PATCH /api/public/webhooks/{webhookId}`
#[utoipa::path(
    patch,
    path = "/api/public/webhooks/{webhookId}",
    tag = "Webhooks",
    operation_id = "updateWebhook",
    summary = "Change an endpoint, enable or disable it",
    params(("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The endpoint", body = WebhookBody),
        (status = 404, description = "`not_found`: no such endpoint in the workspace", body = ErrorBody),
    )
)]
pub async fn update(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state
        .webhooks
        .update(auth.0.workspace_id, endpoint_id(&req)?, body.0.into())
        .await?;
    Ok(HttpResponse::Ok().json(WebhookBody::new(&endpoint, None)))
}

/// `DELETE /api/public/webhooks/{webhookId}`: the endpoint and its log.
#[utoipa::path(
    delete,
    path = "/api/public/webhooks/{webhookId}",
    tag = "Webhooks",
    operation_id = "deleteWebhook",
    summary = "Delete an endpoint and its delivery log",
    params(("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such endpoint in the workspace", body = ErrorBody),
    )
)]
pub async fn delete(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .webhooks
        .delete(auth.0.workspace_id, endpoint_id(&req)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/public/webhooks/{webhookId}/roll-secret`: a new secret,
/// shown this once; the one before signs beside it for
/// `expiresInSeconds` (a day by default).
#[utoipa::path(
    post,
    path = "/api/public/webhooks/{webhookId}/roll-secret",
    tag = "Webhooks",
    operation_id = "rollWebhookSecret",
    summary = "Give an endpoint a new signing secret",
    description = "The new secret is in this answer only. Until `previousSecretExpiresAt`, \
        deliveries carry a signature by each secret (two `v1=`), so your app can change over \
        without refusing one. The body may be left out.",
    params(("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")),
    request_body = RollSecretRequest,
    responses(
        (status = 200, description = "The endpoint, with its new secret", body = WebhookBody),
        (status = 404, description = "`not_found`: no such endpoint in the workspace", body = ErrorBody),
    )
)]
pub async fn roll_secret(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: OptionalJson<RollSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let overlap = body
        .0
        .expires_in_seconds
        .map_or(DEFAULT_ROLL_OVERLAP, Duration::from_secs);
    let (endpoint, secret) = state
        .webhooks
        .roll_secret(auth.0.workspace_id, endpoint_id(&req)?, overlap)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookBody::new(&endpoint, Some(&secret))))
}

/// `GET /api/public/webhooks/{webhookId}/deliveries`: newest event first,
/// `status` to filter, `after` for the next page.
#[utoipa::path(
    get,
    path = "/api/public/webhooks/{webhookId}/deliveries",
    tag = "Webhooks",
    operation_id = "listWebhookDeliveries",
    summary = "An endpoint's delivery log",
    description = "Newest event first: each delivery's status, attempts, last answer and next attempt.",
    params(
        ("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"),
        ("status" = Option<String>, Query, description = "`pending`, `succeeded` or `failed`: only these", example = "failed"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (50 by default)"),
        ("after" = Option<String>, Query, description = "The `next` of the page before (an event id): older deliveries", example = "evt_912"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 404, description = "`not_found`: no such endpoint in the workspace", body = ErrorBody),
    )
)]
pub async fn deliveries(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = delivery_query(req.query_string())?;
    let page = state
        .webhooks
        .deliveries(auth.0.workspace_id, endpoint_id(&req)?, &query)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        next: next_cursor(&page, query.limit),
        deliveries: page.iter().map(DeliveryBody::from).collect(),
    }))
}

/// `POST /api/public/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver`:
/// `202`, the delivery pending and due now.
#[utoipa::path(
    post,
    path = "/api/public/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver",
    tag = "Webhooks",
    operation_id = "redeliverWebhook",
    summary = "Deliver an event again",
    description = "The delivery is pending again and due now, with the same delivery id.",
    params(
        ("webhookId" = String, Path, description = "The endpoint's id", example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"),
        ("deliveryId" = String, Path, description = "The delivery's id", example = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"),
    ),
    responses(
        (status = 202, description = "The delivery, pending", body = DeliveryBody),
        (status = 404, description = "`not_found`: no such endpoint or delivery", body = ErrorBody),
        (status = 410, description = "`event_expired`: the event is past the log's retention", body = ErrorBody),
    )
)]
pub async fn redeliver(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let delivery: DeliveryId = path_param(&req, "deliveryId")
        .parse()
        .map_err(|_| ApiError::not_found("webhook delivery"))?;
    let d = state
        .webhooks
        .redeliver(auth.0.workspace_id, endpoint_id(&req)?, delivery)
        .await?;
    Ok(HttpResponse::Accepted().json(DeliveryBody::from(&d)))
}
