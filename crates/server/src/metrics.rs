//! `/metrics` in Prometheus' text format, on an address of its own
//! (`metrics.address`), never on the public port: requests by route
//! template and status with latency histograms, send attempts by outcome,
//! the outbox's depth and the age of its oldest message, webhook delivery
//! attempts by outcome, and sessions by status.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use maveraa_domain::usecases::Dispatcher;
use maveraa_http_api::metrics::{HttpMetrics, escape};
use maveraa_storage::PgStore;

/// Webhook delivery attempts by this process: succeeded, failed, given up.
static WEBHOOK_ATTEMPTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one round's webhook delivery attempts.
pub fn record_webhook_deliveries(counts: &maveraa_domain::usecases::DeliveryCounts) {
    for (slot, n) in WEBHOOK_ATTEMPTS
        .iter()
        .zip([counts.succeeded, counts.failed, counts.given_up])
    {
        slot.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What the metrics are read from.
#[derive(Clone)]
struct Sources {
    http: web::Data<HttpMetrics>,
    dispatcher: Dispatcher,
    store: Arc<PgStore>,
}

/// The whole text a scrape answers.
async fn render(sources: web::Data<Sources>) -> HttpResponse {
    let mut out = String::with_capacity(16 * 1024);
    sources.http.render(&mut out);

    let counts = sources.dispatcher.counts();
    out.push_str("# HELP maveraa_send_attempts_total Send attempts by this process, by outcome.\n");
    out.push_str("# TYPE maveraa_send_attempts_total counter\n");
    for (outcome, n) in [
        ("sent", counts.sent),
        ("retried", counts.retried),
        ("failed", counts.failed),
        ("unknown", counts.unknown),
    ] {
        let _ = writeln!(
            out,
            "maveraa_send_attempts_total{{outcome=\"{outcome}\"}} {n}"
        );
    }

    out.push_str(
        "# HELP maveraa_webhook_attempts_total Webhook delivery attempts by this process, by outcome \
         (given_up: the last, failed, attempt of a delivery).\n",
    );
    out.push_str("# TYPE maveraa_webhook_attempts_total counter\n");
    for (outcome, slot) in ["succeeded", "failed", "given_up"]
        .iter()
        .zip(&WEBHOOK_ATTEMPTS)
    {
        let _ = writeln!(
            out,
            "maveraa_webhook_attempts_total{{outcome=\"{outcome}\"}} {}",
            slot.load(Ordering::Relaxed)
        );
    }

    out.push_str("# HELP maveraa_database_up Whether the database answered this scrape.\n");
    out.push_str("# TYPE maveraa_database_up gauge\n");
    match sources.store.gauges().await {
        Ok(g) => {
            out.push_str("maveraa_database_up 1\n");
            out.push_str("# HELP maveraa_outbox_depth Messages queued to send, all servers.\n");
            out.push_str("# TYPE maveraa_outbox_depth gauge\n");
            let _ = writeln!(out, "maveraa_outbox_depth {}", g.outbox_depth);
            out.push_str(
                "# HELP maveraa_outbox_oldest_age_seconds Age of the oldest queued message.\n",
            );
            out.push_str("# TYPE maveraa_outbox_oldest_age_seconds gauge\n");
            let _ = writeln!(
                out,
                "maveraa_outbox_oldest_age_seconds {:.3}",
                g.oldest_queued_secs
            );
            out.push_str("# HELP maveraa_sessions Sessions by status, all workspaces.\n");
            out.push_str("# TYPE maveraa_sessions gauge\n");
            for (status, n) in &g.sessions_by_status {
                let _ = writeln!(out, "maveraa_sessions{{status=\"{}\"}} {n}", escape(status));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            out.push_str("maveraa_database_up 0\n");
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

/// Binds `address` and builds the metrics server (not yet polled); its
/// port, for an address with port 0.
///
/// # Errors
/// When the address cannot be bound.
pub fn server(
    address: &str,
    http: web::Data<HttpMetrics>,
    dispatcher: Dispatcher,
    store: Arc<PgStore>,
) -> anyhow::Result<(Server, u16)> {
    let listener =
        TcpListener::bind(address).with_context(|| format!("binding metrics.address {address}"))?;
    let port = listener.local_addr()?.port();
    let sources = web::Data::new(Sources {
        http,
        dispatcher,
        store,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(sources.clone())
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}
