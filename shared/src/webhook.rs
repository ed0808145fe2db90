//! Signed webhook delivery of one event (API.md "Webhooks"): the event as the JSON body,
//! `Loyalty-Event-Id`, and `Loyalty-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`. A 2xx answer acknowledges; anything else is for the caller to retry.
//! `loyalty-local` and the `webhooks` function both deliver through here.

use crate::domain::event::Event;
use hmac::{KeyInit, Mac};
use std::time::Duration;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The `Loyalty-Signature` header value for `body` sent at unix time `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A client for deliveries: short timeouts, so one slow receiver cannot hold a worker long.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client with timeouts only")
}

/// POSTs `event` to `url` once. `Ok` on 2xx; otherwise why not (status or transport error).
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    event: &Event,
    now_unix: i64,
) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("loyalty-event-id", event.id.to_string())
        .header("loyalty-signature", signature(secret, now_unix, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", res.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_has_its_form_and_depends_on_secret_time_and_body() {
        // tests/api/events_feed.rs checks the value against an HMAC the test computes itself.
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"secret", 1_700_000_000, b"{ }"));
    }
}
