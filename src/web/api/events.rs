//! `GET /api/runs/{id}/events`: the run's journal events, live (Server-Sent Events) or as a
//! plain JSON list (`?format=json`).
//!
//! Each event goes as one `data:` line of JSON (the journal's event, with its `seq`) and an
//! `id:` of its sequence number; a client that reconnects with `Last-Event-ID` (as a
//! browser's `EventSource` does) gets the events after it. When the run is over and every
//! event is sent, an `end` event (`{"status": ...}`) closes the stream.

use super::ApiError;
use crate::web::WebState;
use crate::web::auth::Viewer;
use crate::web::live::{LiveMessage, Numbered, events_after};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// `json` for a plain list of the events so far; a live stream otherwise.
    pub format: Option<String>,
    /// Only events after this sequence number (what `Last-Event-ID` says for a stream).
    pub after: Option<u64>,
}

/// The run's events: Server-Sent Events, or a JSON list with `?format=json`.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "the run's id"), EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses(
        (status = 200, description = "`text/event-stream`: one `data:` JSON event per journal event, `id:` its number; or, with `?format=json`, a JSON list", body = [Object]),
        (status = 404, body = super::ErrorBody)))]
pub async fn events(
    _viewer: Viewer,
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Unknown run: 404 before any stream starts.
    state.store.run(&id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.after)
        .unwrap_or(0);
    if query.format.as_deref() == Some("json") {
        let events = events_after(state.store.as_ref(), &id, after).await?;
        let list: Vec<Value> = events.iter().map(numbered_json).collect();
        return Ok(Json(list).into_response());
    }
    // Subscribe before reading what is journaled, so nothing falls between the two.
    let subscription = state.live.subscribe(state.store.clone(), &id);
    let backlog = events_after(state.store.as_ref(), &id, after).await?;
    let stream = Stream {
        state: state.clone(),
        run_id: id,
        last: after,
        backlog: backlog.into(),
        receiver: subscription.receiver,
        ended: false,
        done: false,
    };
    let events = futures::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), stream))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The journal's event with its sequence number.
fn numbered_json(numbered: &Numbered) -> Value {
    let mut value = serde_json::to_value(numbered.envelope.as_ref()).unwrap_or(Value::Null);
    if let Value::Object(object) = &mut value {
        object.insert("seq".to_owned(), Value::from(numbered.seq));
    }
    value
}

/// One client's stream: the backlog from the store, then the broadcast of the run's poller.
struct Stream {
    state: WebState,
    run_id: String,
    /// The number of the last event sent.
    last: u64,
    backlog: VecDeque<Numbered>,
    receiver: tokio::sync::broadcast::Receiver<LiveMessage>,
    /// The run is over: once the backlog is sent, the `end` event goes.
    ended: bool,
    done: bool,
}

impl Stream {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.done {
                return None;
            }
            if let Some(numbered) = self.backlog.pop_front() {
                if numbered.seq <= self.last {
                    continue;
                }
                self.last = numbered.seq;
                return Some(
                    Event::default()
                        .id(numbered.seq.to_string())
                        .data(numbered_json(&numbered).to_string()),
                );
            }
            if self.ended {
                self.done = true;
                let status = self
                    .state
                    .store
                    .run(&self.run_id)
                    .await
                    .map(|s| s.status.name())
                    .unwrap_or("unknown");
                return Some(
                    Event::default()
                        .event("end")
                        .data(serde_json::json!({"status": status}).to_string()),
                );
            }
            let message = tokio::select! {
                _ = self.state.stop.cancelled() => return None,
                message = self.receiver.recv() => message,
            };
            match message {
                Ok(LiveMessage::Event(numbered)) if numbered.seq <= self.last => {}
                Ok(LiveMessage::Event(numbered)) if numbered.seq == self.last + 1 => {
                    self.backlog.push_back(numbered);
                }
                // A gap (this client fell behind): the store has what was missed.
                Ok(LiveMessage::Event(_)) | Err(RecvError::Lagged(_)) => self.refill().await,
                Ok(LiveMessage::Ended) | Err(RecvError::Closed) => {
                    self.refill().await;
                    self.ended = true;
                }
            }
        }
    }

    async fn refill(&mut self) {
        if let Ok(events) = events_after(self.state.store.as_ref(), &self.run_id, self.last).await {
            self.backlog = events.into();
        }
    }
}
