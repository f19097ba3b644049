//! A small HTTP/1.1 server on 127.0.0.1 for the `http` action's tests, plain or over TLS.
//!
//! One thread accepts, one thread serves each connection (one request, then close). Every
//! socket has a read timeout, so a test that goes wrong cannot leave the server blocked.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How long the server waits for a client to send something.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the server sends back.
pub enum Response {
    Reply {
        status: u16,
        reason: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Answer nothing and wait until the client closes the connection.
    Hang,
}

impl Response {
    pub fn json(status: u16, reason: &'static str, body: &serde_json::Value) -> Response {
        Response::Reply {
            status,
            reason,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(
        status: u16,
        reason: &'static str,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        Response::Reply {
            status,
            reason,
            headers: content_type
                .map(|ct| vec![("Content-Type".to_owned(), ct.to_owned())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// What happened on the server, for tests that check the client's side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request arrived (its path).
    Received(String),
    /// The client closed a connection the server was holding open ([`Response::Hang`]).
    ClientClosed,
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Arc<AtomicBool>,
    events: Mutex<Receiver<Event>>,
}

impl Server {
    /// A plain HTTP server answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        Server::spawn(None, Arc::new(handler))
    }

    /// An HTTPS server with this TLS configuration.
    pub fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Server {
        Server::spawn(Some(tls), Arc::new(handler))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let (events_tx, events) = mpsc::channel();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let stopping = Arc::clone(&stop);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, tls, events) = (Arc::clone(&handler), tls.clone(), events_tx.clone());
                thread::spawn(move || serve(stream, tls, &*handler, &events));
            }
        });
        Server {
            addr,
            scheme,
            stop,
            events: Mutex::new(events),
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The next thing that happened on the server, if something did.
    pub fn try_event(&self) -> Option<Event> {
        self.events.lock().ok()?.try_recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    events: &Sender<Event>,
) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    match tls {
        None => exchange(stream, handler, events),
        Some(config) => {
            let Ok(connection) = rustls::ServerConnection::new(config) else {
                return;
            };
            // A client that rejects the certificate ends the handshake: the first read
            // fails and the connection is dropped, as a real server would.
            exchange(
                rustls::StreamOwned::new(connection, stream),
                handler,
                events,
            );
        }
    }
}

fn exchange(stream: impl Read + Write, handler: &Handler, events: &Sender<Event>) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let _ = events.send(Event::Received(request.path.clone()));
    match handler(&request) {
        Response::Hang => {
            // Blocks until the client closes (0 bytes), an error, or the read timeout.
            let mut byte = [0u8; 1];
            if let Ok(0) = reader.read(&mut byte) {
                let _ = events.send(Event::ClientClosed);
            }
        }
        Response::Reply {
            status,
            reason,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let stream = reader.get_mut();
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Some(Request {
        method,
        path: path.to_owned(),
        query,
        headers,
        body,
    })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
