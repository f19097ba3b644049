//! Live events over Server-Sent Events: delivered as they are journaled, resumed from
//! `Last-Event-ID`, one poller shared by every client of a run.

use crate::api::{serve_with, start, wait_status};
use crate::support::{Running, VIEWER_TOKEN};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TICKING: &str = r#"version: 1
name: ticking
steps:
  - id: one
    exec: {command: [echo, one]}
  - id: pause
    needs: [one]
    sleep: 2s
  - id: two
    needs: [pause]
    exec: {command: [echo, two]}
"#;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub data: String,
    /// When it arrived.
    pub at: Instant,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A raw HTTP/1.1 client of an event stream: the body is read chunk by chunk as it comes.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    pub status: u16,
}

impl SseClient {
    pub fn connect(serve: &Running, path: &str, last_event_id: Option<u64>) -> SseClient {
        let address = serve.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to serve");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {VIEWER_TOKEN}\r\n"
        );
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
        }
        SseClient {
            reader,
            pending: Vec::new(),
            status,
        }
    }

    /// The next chunk of the chunked body; `None` at its end.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let mut size = String::new();
        if self.reader.read_line(&mut size).ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return None;
        }
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).ok()?;
        data.truncate(size);
        Some(data)
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ends.
    pub fn next(&mut self) -> Option<SseEvent> {
        loop {
            let text = String::from_utf8_lossy(&self.pending).to_string();
            if let Some(end) = text.find("\n\n") {
                let block = text[..end].to_owned();
                self.pending = text.as_bytes()[end + 2..].to_vec();
                let mut event = SseEvent {
                    id: None,
                    kind: None,
                    data: String::new(),
                    at: Instant::now(),
                };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        event.id = Some(id.trim().to_owned());
                    } else if let Some(kind) = line.strip_prefix("event:") {
                        event.kind = Some(kind.trim().to_owned());
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data.push_str(data.trim_start());
                    }
                }
                if event.id.is_none() && event.kind.is_none() && event.data.is_empty() {
                    continue;
                }
                return Some(event);
            }
            let chunk = self.chunk()?;
            self.pending.extend_from_slice(&chunk);
        }
    }
}

#[test]
fn events_arrive_live_and_a_reconnect_resumes_after_the_last_event_id() {
    let serve = serve_with(&[("ticking.yaml", TICKING)]);
    let run_id = start(&serve, "ticking", json!({}));
    let mut client = SseClient::connect(&serve, &format!("/api/runs/{run_id}/events"), None);
    assert_eq!(client.status, 200);
    let mut events = Vec::new();
    let mut ended = None;
    while let Some(event) = client.next() {
        if event.kind.as_deref() == Some("end") {
            ended = Some(event);
            break;
        }
        events.push(event);
    }
    let ended = ended.expect("an end event when the run is over");
    assert_eq!(ended.json()["status"], "succeeded");
    // Numbered from 1 without gaps, each id its seq.
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.id.as_deref(), Some((index + 1).to_string().as_str()));
        assert_eq!(event.json()["seq"], index + 1);
        assert_eq!(event.json()["run_id"], run_id.as_str());
    }
    assert_eq!(events[0].json()["event"], "run_started");
    // Live: the end of step `two` came about 2 s after the end of step `one`.
    let ended_at = |step: &str| {
        events
            .iter()
            .find(|e| e.json()["event"] == "step_ended" && e.json()["path"] == step)
            .unwrap_or_else(|| panic!("no step_ended of {step}: {events:?}"))
            .at
    };
    let apart = ended_at("two").duration_since(ended_at("one"));
    assert!(
        apart >= Duration::from_millis(1500),
        "not live: {apart:?} apart"
    );

    // A reconnect from event 3 gets event 4 on, then the end.
    let mut again = SseClient::connect(&serve, &format!("/api/runs/{run_id}/events"), Some(3));
    let first = again.next().expect("an event");
    assert_eq!(first.id.as_deref(), Some("4"));
    let mut rest = vec![first];
    while let Some(event) = again.next() {
        if event.kind.as_deref() == Some("end") {
            break;
        }
        rest.push(event);
    }
    assert_eq!(rest.len(), events.len() - 3);
    // The plain list has the same events.
    let list = serve.get(
        &format!("/api/runs/{run_id}/events?format=json&after=2"),
        Some(VIEWER_TOKEN),
    );
    assert_eq!(list.json().as_array().unwrap().len(), events.len() - 2);
    assert_eq!(list.json()[0]["seq"], 3);
}

#[test]
fn many_clients_of_one_run_get_every_event_and_an_unknown_run_is_404() {
    let serve = serve_with(&[("ticking.yaml", TICKING)]);
    let run_id = start(&serve, "ticking", json!({}));
    wait_status(&serve, &run_id, "running");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("/api/runs/{run_id}/events");
            let mut client = SseClient::connect(&serve, &url, None);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while let Some(event) = client.next() {
                    if event.kind.as_deref() == Some("end") {
                        return (ids, true);
                    }
                    ids.push(event.id.unwrap_or_default());
                }
                (ids, false)
            })
        })
        .collect();
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let expected: Vec<String> = (1..=results[0].0.len()).map(|n| n.to_string()).collect();
    for (ids, ended) in &results {
        assert!(ended, "a client's stream ended without the end event");
        assert_eq!(ids, &expected);
    }
    let missing = SseClient::connect(&serve, "/api/runs/nope/events", None);
    assert_eq!(missing.status, 404);
}

#[test]
fn streams_end_when_serve_stops_so_that_it_drains() {
    let gated = "version: 1\nname: gated\nsteps:\n  - id: go_ahead\n    approval: {prompt: Go?}\n";
    let serve = serve_with(&[("gated.yaml", gated)]);
    let run_id = start(&serve, "gated", json!({}));
    wait_status(&serve, &run_id, "waiting");
    let mut client = SseClient::connect(&serve, &format!("/api/runs/{run_id}/events"), None);
    assert_eq!(
        client.next().expect("the first event").id.as_deref(),
        Some("1")
    );
    let asked = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    while client.next().is_some() {}
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the stream outlived serve's stop by {took:?}"
    );
    serve.wait_for("serve to say it drained", Duration::from_secs(10), || {
        serve.log().contains("stop requested")
    });
}
