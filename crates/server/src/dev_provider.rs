//! `maveraa dev-provider`: a local stand-in for Meta's Cloud API that
//! accepts every send at once. For load tests of the dispatcher (point
//! `whatsapp.cloud_api_base_url` at it) and for trying cloud-api sessions
//! without a Meta account. It also takes webhook deliveries at
//! `/hooks/{name}` (answering 204), as a receiver for load tests of the
//! event delivery. It stores nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

async fn accept(counter: web::Data<Arc<AtomicU64>>, _body: web::Bytes) -> HttpResponse {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "messages": [{"id": format!("wamid.dev{n}")}]
    }))
}

/// Webhook deliveries taken.
#[derive(Debug, Default)]
struct Hooks(AtomicU64);

async fn hook(hooks: web::Data<Hooks>, _body: web::Bytes) -> HttpResponse {
    hooks.0.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

async fn count(counter: web::Data<Arc<AtomicU64>>, hooks: web::Data<Hooks>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "accepted": counter.load(Ordering::Relaxed),
        "hooks": hooks.0.load(Ordering::Relaxed),
    }))
}

/// Serves on 127.0.0.1:`port` until interrupted.
///
/// # Errors
/// When the port cannot be bound.
pub fn run(port: u16) -> anyhow::Result<()> {
    let counter = web::Data::new(Arc::new(AtomicU64::new(0)));
    let hooks = web::Data::new(Hooks::default());
    actix_web::rt::System::new().block_on(async move {
        tracing::info!(port, "dev provider accepting Cloud API sends");
        HttpServer::new(move || {
            App::new()
                .app_data(counter.clone())
                .app_data(hooks.clone())
                .route("/count", web::get().to(count))
                .route("/hooks/{name}", web::post().to(hook))
                .route("/{phone_number_id}/messages", web::post().to(accept))
                // With a version in the base URL, as Meta's has.
                .route(
                    "/{version}/{phone_number_id}/messages",
                    web::post().to(accept),
                )
        })
        .bind(("127.0.0.1", port))?
        .shutdown_timeout(1)
        .run()
        .await?;
        Ok(())
    })
}
