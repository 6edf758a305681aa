//! `/api/public/webhooks`: the endpoints a workspace's events are pushed
//! to, their signing secrets and their delivery logs. (The provider
//! webhooks that push into us are in `webhooks`.)

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::usecases::DEFAULT_ROLL_OVERLAP;
use maveraa_domain::{DeliveryId, WebhookId};

use crate::error::ApiError;
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
