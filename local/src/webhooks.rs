//! Webhooks from `loyalty-local`: one worker per configured URL tails the event carriers (the
//! same items the DynamoDB stream feeds to EventBridge in AWS) in id order and POSTs each event,
//! signed. Delivery is at least once and in order, so a member's events arrive in `seq` order: a
//! failing receiver is retried with exponential backoff (capped) for 24 hours before its event is
//! set aside in a dead-letter file, and nothing after it is sent meanwhile. The position is saved
//! after every acknowledged event, so a restart resumes where delivery stopped.

use chrono::{DateTime, Duration, Utc};
use loyalty::service::Services;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// How the worker waits and retries; tests shorten it.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Pause between polls when there is nothing to send.
    pub poll: std::time::Duration,
    /// Events younger than this are left for the next poll: a commit decided a moment ago may
    /// still be on its way, and delivering past it would skip it.
    pub settle: Duration,
    pub first_retry: std::time::Duration,
    pub max_retry: std::time::Duration,
    /// How long one event is retried before it goes to the dead-letter file.
    pub give_up_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: std::time::Duration::from_millis(500),
            settle: Duration::seconds(5),
            first_retry: std::time::Duration::from_secs(1),
            max_retry: std::time::Duration::from_secs(300),
            give_up_after: Duration::hours(24),
        }
    }
}

/// Everything before `from` was delivered, and at `from` or after it everything up to `after`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    pub from: Option<DateTime<Utc>>,
    pub after: Option<uuid::Uuid>,
}

pub struct Webhook {
    pub url: String,
    pub secret: Arc<Vec<u8>>,
    /// Where the position (and dead letters) live; `None` keeps them in memory (`--memory`).
    pub state_dir: Option<PathBuf>,
    pub timing: Timing,
}

impl Webhook {
    fn file(&self, ext: &str) -> Option<PathBuf> {
        let name = &loyalty::service::idempotency::sha256_hex(&[self.url.as_bytes()])[..16];
        self.state_dir
            .as_ref()
            .map(|d| d.join(format!("{name}.{ext}")))
    }

    fn load(&self) -> Position {
        self.file("position.json")
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, p: &Position) {
        if let Some(f) = self.file("position.json") {
            // Written aside and renamed, so a crash leaves the old position or the new one.
            let tmp = f.with_extension("tmp");
            let ok = std::fs::create_dir_all(f.parent().unwrap_or(&f))
                .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(p).unwrap_or_default()))
                .and_then(|()| std::fs::rename(&tmp, &f));
            if let Err(e) = ok {
                tracing::error!(url = %self.url, error = %e, "cannot save the webhook position");
            }
        }
    }

    fn dead_letter(&self, event: &loyalty::domain::event::Event, why: &str) {
        tracing::error!(url = %self.url, event = %event.id, %why, "webhook given up after retrying");
        if let Some(f) = self.file("dead.jsonl") {
            use std::io::Write;
            let line = serde_json::json!({"event": event, "error": why}).to_string();
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .and_then(|mut file| writeln!(file, "{line}"));
        }
    }

    /// Delivers forever (until the task is dropped).
    pub async fn run(self, svc: Services) {
        let client = loyalty::webhook::client();
        let mut pos = self.load();
        loop {
            let now = svc.ctx.now();
            let horizon = now - self.timing.settle;
            // First start, or the test clock moved back before the position: start (again) a
            // little before now. Re-sending an event is allowed (at least once); skipping is not.
            let from = match pos.from {
                Some(f) if f <= horizon => f,
                _ => {
                    pos = Position {
                        from: Some(horizon - Duration::minutes(1)),
                        after: None,
                    };
                    horizon - Duration::minutes(1)
                }
            };
            let to = horizon.min(from + Duration::hours(24));
            if to <= from {
                tokio::time::sleep(self.timing.poll).await;
                continue;
            }
            let page = svc
                .events
                .events_between(from, to, pos.after.map(|a| a.to_string()).as_deref(), 100)
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "reading events for webhooks");
                    tokio::time::sleep(self.timing.poll).await;
                    continue;
                }
            };
            for event in &page.items {
                self.deliver(&client, &svc, event).await;
                pos.after = Some(event.id);
                self.save(&pos);
            }
            if page.next_cursor.is_none() {
                pos = Position {
                    from: Some(to),
                    after: None,
                };
                self.save(&pos);
                if to >= horizon {
                    tokio::time::sleep(self.timing.poll).await;
                }
            }
        }
    }

    async fn deliver(
        &self,
        client: &reqwest::Client,
        svc: &Services,
        event: &loyalty::domain::event::Event,
    ) {
        let started = svc.ctx.now();
        let mut wait = self.timing.first_retry;
        loop {
            let sent = loyalty::webhook::deliver(
                client,
                &self.url,
                &self.secret,
                event,
                Utc::now().timestamp(),
            )
            .await;
            match sent {
                Ok(()) => return,
                Err(why) if svc.ctx.now() - started >= self.timing.give_up_after => {
                    self.dead_letter(event, &why);
                    return;
                }
                Err(why) => {
                    tracing::warn!(url = %self.url, event = %event.id, %why, retry_in = ?wait, "webhook not acknowledged");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.timing.max_retry);
                }
            }
        }
    }
}

/// `LOYALTY_WEBHOOK_SECRET`, else `<data>/webhook-secret` (created with 256 random bits), else
/// (no data directory) a secret for this process; with where it came from.
pub fn load_secret(data_dir: Option<&std::path::Path>) -> std::io::Result<(Vec<u8>, String)> {
    if let Ok(s) = std::env::var("LOYALTY_WEBHOOK_SECRET") {
        return Ok((s.into_bytes(), "LOYALTY_WEBHOOK_SECRET".into()));
    }
    let fresh = || hex_random();
    let Some(dir) = data_dir else {
        return Ok((fresh().into_bytes(), "this process only (--memory)".into()));
    };
    let path = dir.join("webhook-secret");
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let s = fresh();
            crate::auth::write_private(&path, &s)?;
            s
        }
        Err(e) => return Err(e),
    };
    Ok((secret.into_bytes(), path.display().to_string()))
}

fn hex_random() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
