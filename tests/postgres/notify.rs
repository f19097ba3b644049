//! Two `serve` processes following one PostgreSQL store with the same webhook (as serves on
//! several hosts do, or a serve and the one restarted after it): each notification is
//! delivered once, by whichever records it in the store first.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver on a free port: keeps each request's body, answers 200.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let kept = kept.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    (url, bodies)
}

/// A serve following the scratch database, stopped by its pid when dropped.
struct Serve(Child);

impl Serve {
    fn start(scratch: &Scratch, log: &str) -> Serve {
        Serve(
            Command::new(env!("CARGO_BIN_EXE_runbook"))
                .args(["serve", "--config", "serve.yaml", "--store", &scratch.url])
                .current_dir(scratch.dir.path())
                .env_remove("RUNBOOK_STORE")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(scratch.dir.path().join(log)).unwrap())
                .spawn()
                .expect("start runbook serve"),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_serves_on_one_store_deliver_each_notification_once() {
    let scratch = Scratch::new();
    let (url, bodies) = receiver();
    scratch.write(
        "serve.yaml",
        &format!(
            "schedules: []\nnotifications:\n  webhooks:\n    - url: {url}\n      events: [run_started, run_succeeded]\n"
        ),
    );
    scratch.write(
        "fine.yaml",
        "version: 1\nname: fine\nsteps:\n  - id: ok\n    exec: { script: 'true' }\n",
    );
    let first = Serve::start(&scratch, "first.log");
    let second = Serve::start(&scratch, "second.log");
    // Both follow the store before the runs start.
    std::thread::sleep(Duration::from_secs(3));
    for n in 1..=3 {
        let run = scratch.runbook(&["run", "fine.yaml", "--run-id", &format!("fine-{n}")]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while bodies.lock().unwrap().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "{} notifications of 6; the serves logged:\n{}\n{}",
            bodies.lock().unwrap().len(),
            scratch.read("first.log"),
            scratch.read("second.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A moment more: a second delivery would come now.
    std::thread::sleep(Duration::from_secs(3));
    drop((first, second));
    let mut ids: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|body| {
            let body: Value = serde_json::from_str(body).expect("a JSON body");
            format!(
                "{} {}",
                body["event"].as_str().unwrap(),
                body["id"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 6, "{ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), 6, "a notification went out twice: {ids:?}");
    let logs = scratch.read("first.log") + &scratch.read("second.log");
    assert_eq!(logs.matches("notification delivered").count(), 6, "{logs}");
}
