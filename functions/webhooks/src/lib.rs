//! The `webhooks` function: in AWS the table's stream feeds an EventBridge Pipe (inserted items
//! that carry events) into the loyalty bus; a rule sends them to an SQS queue, and this function
//! delivers each carried event, signed, to every configured URL. A message whose delivery fails
//! is reported as a partial batch failure, so SQS retries it (and only it) until it lands in the
//! dead-letter queue.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use loyalty::domain::event::Event;
use serde::Deserialize;

#[derive(Deserialize)]
struct Carried {
    events: Vec<Event>,
}

/// The events a queue message carries: the body is the EventBridge event whose `detail` is the
/// DynamoDB stream record the pipe read; its new image is a ledger line or an event carrier.
pub fn events_in(body: &str) -> Result<Vec<Event>, String> {
    let envelope: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let image = envelope
        .pointer("/detail/dynamodb/NewImage")
        .ok_or("no detail.dynamodb.NewImage")?;
    let item: serde_dynamo::Item =
        serde_json::from_value(image.clone()).map_err(|e| format!("not a DynamoDB image: {e}"))?;
    let carried: Carried =
        serde_dynamo::from_item(item).map_err(|e| format!("no events in the image: {e}"))?;
    Ok(carried.events)
}

/// Delivers every event of every message to every URL; the messages that failed anywhere are
/// returned for SQS to retry (receivers may see an event twice: at least once, same id).
pub async fn handle(
    client: &reqwest::Client,
    urls: &[String],
    secret: &[u8],
    batch: SqsEvent,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for message in batch.records {
        let id = message.message_id.clone().unwrap_or_default();
        let result = match events_in(message.body.as_deref().unwrap_or("")) {
            Ok(events) => deliver_all(client, urls, secret, &events).await,
            Err(e) => Err(e),
        };
        if let Err(why) = result {
            tracing::warn!(message = %id, %why, "webhook delivery failed; SQS will retry");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn deliver_all(
    client: &reqwest::Client,
    urls: &[String],
    secret: &[u8],
    events: &[Event],
) -> Result<(), String> {
    for event in events {
        for url in urls {
            loyalty::webhook::deliver(client, url, secret, event, chrono::Utc::now().timestamp())
                .await?;
        }
    }
    Ok(())
}
