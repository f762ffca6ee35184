//! The delivery worker: drains the outbox, one delivery at a time per
//! webhook (so a webhook receives its events in order) and different
//! webhooks concurrently (so a slow receiver delays only itself).
//!
//! A delivery succeeds on any 2xx answer. Anything else (other status, a
//! timeout, a refused connection, an address refused by the SSRF guard) is
//! retried with exponential backoff until `max_attempts`, then marked
//! `failed`. A crash between an attempt and its record only repeats the
//! attempt (at least once delivery; receivers dedupe by `X-Webhook-Id`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::WebhookConfig;
use super::{guard, signing};
use crate::store::webhooks::{AttemptOutcome, DeliveryJob, Outbox};
use crate::store::{Db, now, timestamp};

/// How often the worker looks for due deliveries.
const POLL: Duration = Duration::from_millis(200);
/// Longest stored error text.
const MAX_ERROR: usize = 500;
/// How long finished deliveries stay in the history.
const RETENTION_DAYS: i64 = 30;
/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the delivery worker on the current tokio runtime.
pub fn spawn_delivery(db: Db, config: WebhookConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(db, config))
}

fn client(config: &WebhookConfig) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("Convene-Webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private {
        b = b.dns_resolver(Arc::new(guard::GuardedResolver));
    }
    match b.build() {
        Ok(c) => c,
        Err(e) => {
            // Only a broken TLS backend fails here; without a client nothing
            // can be delivered, but the rest of the server keeps running.
            tracing::error!(error = %e, "webhook HTTP client could not be built");
            reqwest::Client::new()
        }
    }
}

async fn run(db: Db, config: WebhookConfig) {
    let client = client(&config);
    let config = Arc::new(config);
    let in_flight: Arc<Mutex<HashSet<(Outbox, String)>>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let prune = pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        if prune {
            pruned_at = Some(tokio::time::Instant::now());
        }
        for outbox in Outbox::ALL {
            if prune {
                let before = timestamp(Utc::now() - chrono::Duration::days(RETENTION_DAYS));
                match db.prune_deliveries(outbox, &before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deliveries = n, ?outbox, "pruned old webhook deliveries")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ?outbox, "could not prune webhook deliveries")
                    }
                }
            }
            let due = match db.due_deliveries(outbox, &now()).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, ?outbox, "could not read the webhook outbox");
                    continue;
                }
            };
            if !start_due(outbox, due, &db, &client, &config, &in_flight, &slots).await {
                return;
            }
        }
    }
}

/// Starts the due deliveries of one outbox, one per webhook at a time.
/// False when the worker is shutting down (the semaphore closed).
async fn start_due(
    outbox: Outbox,
    due: Vec<(String, String, String)>,
    db: &Db,
    client: &reqwest::Client,
    config: &Arc<WebhookConfig>,
    in_flight: &Arc<Mutex<HashSet<(Outbox, String)>>>,
    slots: &Arc<tokio::sync::Semaphore>,
) -> bool {
    for (delivery_id, webhook_id, due_at) in due {
        let busy_key = (outbox, webhook_id);
        {
            let mut busy = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(busy_key.clone()) {
                continue;
            }
        }
        // Another server on the same database may have taken it.
        let lease = config
            .timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(30));
        let lease_until =
            timestamp(Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default());
        match db
            .claim_delivery(outbox, &delivery_id, &due_at, &lease_until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&busy_key);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, ?outbox, "could not claim a webhook delivery");
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&busy_key);
                continue;
            }
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return false;
        };
        let (db, client, config, in_flight) = (
            db.clone(),
            client.clone(),
            config.clone(),
            in_flight.clone(),
        );
        tokio::spawn(async move {
            deliver_one(&db, &client, &config, outbox, &delivery_id).await;
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&busy_key);
            drop(permit);
        });
    }
    true
}

/// Backoff before attempt `attempts + 1`, having made `attempts` (>= 1).
pub fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    config
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(config.retry_max)
}

async fn deliver_one(
    db: &Db,
    client: &reqwest::Client,
    config: &WebhookConfig,
    outbox: Outbox,
    id: &str,
) {
    let job = match db.delivery_job(outbox, id).await {
        Ok(Some(j)) => j,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, delivery = %id, "could not load a webhook delivery");
            return;
        }
    };
    let (status_code, error) = attempt(client, config, &job).await;
    let attempts = u32::try_from(job.attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let outcome = match (status_code, error) {
        (Some(code), None) => {
            metrics::counter!("convene_webhook_deliveries_total", "result" => "success")
                .increment(1);
            AttemptOutcome::Succeeded { status_code: code }
        }
        (status_code, error) => {
            let mut error = error.unwrap_or_else(|| "no response".into());
            if error.len() > MAX_ERROR {
                let mut cut = MAX_ERROR;
                while !error.is_char_boundary(cut) {
                    cut -= 1;
                }
                error.truncate(cut);
            }
            if attempts >= config.max_attempts {
                metrics::counter!("convene_webhook_deliveries_total", "result" => "failed")
                    .increment(1);
                tracing::warn!(delivery = %job.id, webhook = %job.webhook_id, attempts, %error,
                    "webhook delivery failed for good");
                AttemptOutcome::Failed { status_code, error }
            } else {
                metrics::counter!("convene_webhook_deliveries_total", "result" => "retry")
                    .increment(1);
                let wait = backoff(config, attempts);
                let next = Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                tracing::info!(delivery = %job.id, webhook = %job.webhook_id, attempts, %error,
                    retry_in_ms = wait.as_millis() as u64, "webhook delivery will be retried");
                AttemptOutcome::Retry {
                    status_code,
                    error,
                    next_attempt_at: timestamp(next),
                }
            }
        }
    };
    if let Err(e) = db.record_attempt(outbox, &job.id, &outcome).await {
        tracing::error!(error = %e, delivery = %job.id, "could not record a webhook attempt");
    }
}

/// One HTTP attempt: `(Some(code), None)` on a 2xx, else what went wrong.
async fn attempt(
    client: &reqwest::Client,
    config: &WebhookConfig,
    job: &DeliveryJob,
) -> (Option<u16>, Option<String>) {
    let url = match guard::parse_endpoint(&job.endpoint) {
        Ok(u) => u,
        Err(e) => return (None, Some(format!("endpoint {e}"))),
    };
    if !config.allow_private
        && let Err(e) = guard::check_literal(&url)
    {
        return (None, Some(e));
    }
    let ts = Utc::now().timestamp();
    let body = job.payload.as_bytes().to_vec();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-webhook-id", &job.id)
        .header("x-webhook-timestamp", ts.to_string());
    if let Some(secret) = &job.secret {
        req = req
            .header("x-signature", signing::body_signature(secret, &body))
            .header(
                "x-webhook-signature",
                signing::timestamped_signature(secret, ts, &body),
            );
    }
    if let Some(auth) = &job.authorization_header {
        req = req.header("authorization", auth);
    }
    match req.body(body).send().await {
        Ok(res) => {
            let code = res.status().as_u16();
            if res.status().is_success() {
                (Some(code), None)
            } else {
                (
                    Some(code),
                    Some(format!("the endpoint answered HTTP {code}")),
                )
            }
        }
        Err(e) => (None, Some(describe(&e))),
    }
}

/// The error and its causes in one line (the SSRF refusal is a cause).
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = WebhookConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..WebhookConfig::default()
        };
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 3), Duration::from_millis(400));
        assert_eq!(backoff(&c, 5), Duration::from_secs(1));
        assert_eq!(backoff(&c, 40), Duration::from_secs(1));
    }
}
