//! A small HTTP/1.1 server for metrics scrapes, on an event loop of its own few threads.
//!
//! It knows nothing of metrics: a `Handler` turns each request into a response. Connections
//! are tasks on a tokio runtime, so thousands of idle or slow ones cost a small buffer each and
//! no thread; handlers (renders) run on the runtime's blocking pool, a few at a time. Every
//! limit a slow or hostile client could push on is bounded: the number of connections, the size
//! of a request head, the time to send it, the idle time between keep-alive requests and the
//! time to take a response. A client that overruns one of them loses its own connection only.
//!
//! The request head is read line by line, by the rules of Python's `http.server` (which the
//! reference's server runs on), so that odd requests (HTTP/0.9, bad versions, malformed lines)
//! get the same bytes back as from the reference.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::time::Instant;

/// One parsed request. Header names are lower-cased; repeated headers are joined with `,`, as
/// WSGI servers do.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn add_header(&mut self, name: String, value: String) {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => self.headers.push((name, value)),
        }
    }
}

pub struct Response {
    /// Status line text, e.g. `200 OK`.
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        Response {
            status: status.to_string(),
            headers,
            body,
        }
    }

    pub fn text(status: &str, body: &str) -> Response {
        let content_type = ("Content-Type".to_string(), "text/plain".to_string());
        Response::new(status, vec![content_type], body.as_bytes().to_vec())
    }
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Response;
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; up to as many more get a 503, the rest are closed.
    pub max_connections: usize,
    pub max_head_bytes: usize,
    /// Time allowed to send a whole request head, once its first byte arrived.
    pub head_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_requests_per_connection: usize,
    /// Handlers (renders) running at once; the requests beyond wait their turn, in order.
    pub max_renders: usize,
    /// Each connection's read buffer (a request head longer than this still fits in
    /// `max_head_bytes`: it is read in several pieces).
    pub read_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
            max_renders: 4,
            read_buffer_bytes: 2048,
        }
    }
}

pub struct Server {
    /// Read-locked while serving; `close` takes it once `serve` has returned.
    listener: RwLock<Option<std::net::TcpListener>>,
    fd: i64,
    address: SocketAddr,
    limits: Arc<Limits>,
    stopping: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
    /// Its own few threads: connections are tasks on them, renders run on its blocking pool.
    runtime: Option<Runtime>,
}

impl Server {
    pub fn new(listener: std::net::TcpListener, limits: Limits) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(limits.max_renders.max(1))
            .thread_name("fastprom-http")
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Server {
            fd: raw_socket(&listener),
            listener: RwLock::new(Some(listener)),
            address,
            limits: Arc::new(limits),
            stopping: watch::channel(false).0,
            connections: Arc::new(AtomicUsize::new(0)),
            runtime: Some(runtime),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the server")
    }

    /// An event-loop listener on a duplicate of the listening socket.
    fn async_listener(&self, listener: &std::net::TcpListener) -> io::Result<TcpListener> {
        let _entered = self.runtime().enter();
        TcpListener::from_std(listener.try_clone()?)
    }

    /// Accepts connections until `shutdown`; each is a task on the server's runtime.
    pub fn serve(&self, handler: Arc<dyn Handler>) {
        let listener = self.listener.read().unwrap_or_else(|p| p.into_inner());
        let Some(listener) = listener.as_ref() else {
            return;
        };
        let Ok(listener) = self.async_listener(listener) else {
            return;
        };
        let mut stopping = self.stopping.subscribe();
        self.runtime().block_on(async {
            loop {
                let accepted = tokio::select! {
                    _ = stopping.wait_for(|stop| *stop) => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, _)) => self.spawn_connection(stream, handler.clone()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Out of file descriptors, say: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }

    /// Accepts one connection and serves it in the background, as `socketserver`'s
    /// `handle_request` does; `false` when none came within `timeout` (`None`: wait).
    pub fn serve_one(&self, handler: Arc<dyn Handler>, timeout: Option<Duration>) -> bool {
        let listener = self.listener.read().unwrap_or_else(|p| p.into_inner());
        let Some(listener) = listener.as_ref() else {
            return false;
        };
        let Ok(listener) = self.async_listener(listener) else {
            return false;
        };
        let accepted = self.runtime().block_on(async {
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, listener.accept()).await.ok(),
                None => Some(listener.accept().await),
            }
        });
        match accepted {
            Some(Ok((stream, _))) => {
                self.spawn_connection(stream, handler);
                true
            }
            _ => false,
        }
    }

    fn spawn_connection(&self, stream: TcpStream, handler: Arc<dyn Handler>) {
        let active = self.connections.fetch_add(1, Ordering::AcqRel);
        if active >= 2 * self.limits.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let busy = active >= self.limits.max_connections;
        let limits = self.limits.clone();
        let connections = self.connections.clone();
        self.runtime().spawn(async move {
            if busy {
                refuse_connection(stream).await;
            } else {
                let _ = serve_connection(stream, handler, &limits).await;
            }
            connections.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// The listening socket's descriptor (-1 once closed).
    pub fn fileno(&self) -> i64 {
        let listener = self.listener.try_read();
        match listener.as_deref() {
            Ok(None) => -1,
            _ => self.fd,
        }
    }

    /// Stops serving and closes the listening socket.
    pub fn close(&self) {
        self.shutdown();
        self.listener
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Makes `serve` return (now or, if it has not started, as soon as it starts).
    pub fn shutdown(&self) {
        self.stopping.send_replace(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Without waiting: a render in flight may be waiting for the GIL the dropping thread holds.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(unix)]
fn raw_socket(listener: &std::net::TcpListener) -> i64 {
    use std::os::fd::AsRawFd;
    listener.as_raw_fd() as i64
}

#[cfg(windows)]
fn raw_socket(listener: &std::net::TcpListener) -> i64 {
    use std::os::windows::io::AsRawSocket;
    listener.as_raw_socket() as i64
}

#[cfg(not(any(unix, windows)))]
fn raw_socket(_listener: &std::net::TcpListener) -> i64 {
    -1
}

/// Answers 503 to a connection over the limit. Its request is read first (briefly), so that
/// closing does not reset the connection before the client reads the answer.
async fn refuse_connection(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await;
    let busy = Response::text("503 Service Unavailable", "Too many connections\n");
    let answer = encode_response(&busy, false, false);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
    let _ = stream.shutdown().await;
}

/// Serves requests on one connection until it closes, errs or overruns a limit.
async fn serve_connection(
    stream: TcpStream,
    handler: Arc<dyn Handler>,
    limits: &Limits,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(limits.read_buffer_bytes, stream);
    for served in 0..limits.max_requests_per_connection {
        let idle = if served == 0 {
            limits.head_timeout
        } else {
            limits.idle_timeout
        };
        let head = match read_head(&mut reader, idle, limits).await {
            Ok(Some(head)) => head,
            Ok(None) => return close(reader),
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::Bad(status)) => {
                let response = Response::text(status, &format!("{status}\n"));
                send(
                    &mut reader,
                    &encode_response(&response, false, false),
                    limits,
                )
                .await?;
                return close(reader);
            }
            Err(HeadError::Page(page)) => {
                send(&mut reader, &page, limits).await?;
                return close(reader);
            }
            Err(HeadError::Silent) => return close(reader),
        };
        let keep_alive = head.keep_alive && served + 1 < limits.max_requests_per_connection;
        let handler = handler.clone();
        let request = head.request;
        // Rendering blocks (and may take the GIL): it runs on the runtime's bounded blocking pool.
        let response = tokio::task::spawn_blocking(move || handler.handle(&request))
            .await
            .map_err(|_| io::Error::other("the handler panicked"))?;
        // HEAD gets the whole answer (the app's 405 and its text), as from the reference's WSGI server.
        let answer = encode_response(&response, keep_alive, head.simple);
        drop(response);
        send(&mut reader, &answer, limits).await?;
        if !keep_alive {
            break;
        }
    }
    close(reader)
}

/// Writes `bytes` within the write timeout: a client that does not read loses its connection.
async fn send(reader: &mut BufReader<TcpStream>, bytes: &[u8], limits: &Limits) -> io::Result<()> {
    let stream = reader.get_mut();
    match tokio::time::timeout(limits.write_timeout, stream.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Shuts both directions, as Python's servers do, and closes.
fn close(reader: BufReader<TcpStream>) -> io::Result<()> {
    reader.into_inner().into_std()?.shutdown(Shutdown::Both)
}

struct Head {
    request: Request,
    keep_alive: bool,
    /// An HTTP/0.9 request: the answer is the body alone.
    simple: bool,
}

enum HeadError {
    Io(io::Error),
    Bad(&'static str),
    /// A bare page sent before closing, as Python's server answers a malformed request line.
    Page(Vec<u8>),
    /// Close without an answer (an empty request line).
    Silent,
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> HeadError {
        HeadError::Io(e)
    }
}

/// Reads one request head; `None` when the client closed or stayed idle. The whole head must
/// arrive within `head_timeout` of its first byte: a client trickling bytes cannot hold on.
async fn read_head(
    reader: &mut BufReader<TcpStream>,
    idle: Duration,
    limits: &Limits,
) -> Result<Option<Head>, HeadError> {
    match tokio::time::timeout(idle, reader.fill_buf()).await {
        Ok(Ok([])) | Err(_) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.into()),
    }
    let deadline = Instant::now() + limits.head_timeout;
    let mut budget = limits.max_head_bytes;
    let request_line = read_line(reader, deadline, &mut budget).await?;
    let (method, target, version) = parse_request_line(&request_line)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: query.to_string(),
        headers: Vec::new(),
    };
    loop {
        let line = read_line(reader, deadline, &mut budget).await?;
        if line.is_empty() {
            break;
        }
        // Python's header parser passes over a line without a colon; so does this one.
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        request.add_header(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let has_body = request.header("transfer-encoding").is_some()
        || request
            .header("content-length")
            .is_some_and(|n| n.trim() != "0");
    let connection = request
        .header("connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let keep_alive = !has_body
        && if version == "HTTP/1.1" {
            !connection.contains("close")
        } else {
            connection.contains("keep-alive")
        };
    Ok(Some(Head {
        request,
        keep_alive: keep_alive && version != "HTTP/0.9",
        simple: version == "HTTP/0.9",
    }))
}

/// Splits a request line by the rules of Python's `http.server`, which the reference's server
/// runs on, and refuses what it refuses with the same page. Such a refusal comes before the
/// client's HTTP version is known, so it is sent without a status line, as Python sends it.
fn parse_request_line(line: &str) -> Result<(&str, &str, &str), HeadError> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    if words.is_empty() {
        return Err(HeadError::Silent);
    }
    let version = if words.len() >= 3 {
        let version = words[words.len() - 1];
        check_version(version)?;
        version
    } else {
        "HTTP/0.9"
    };
    if !(2..=3).contains(&words.len()) {
        return Err(python_error(
            400,
            &format!("Bad request syntax ({})", py_repr(line)),
        ));
    }
    if words.len() == 2 && words[0] != "GET" {
        let message = format!("Bad HTTP/0.9 request type ({})", py_repr(words[0]));
        return Err(python_error(400, &message));
    }
    Ok((words[0], words[1], version))
}

fn check_version(version: &str) -> Result<(), HeadError> {
    let bad = || python_error(400, &format!("Bad request version ({})", py_repr(version)));
    let number = version.strip_prefix("HTTP/").ok_or_else(bad)?;
    let parts: Vec<&str> = number.split('.').collect();
    let is_number =
        |p: &&str| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 2 || !parts.iter().all(is_number) {
        return Err(bad());
    }
    let major: u64 = parts[0].parse().map_err(|_| bad())?;
    if major >= 2 {
        return Err(python_error(
            505,
            &format!("Invalid HTTP version ({number})"),
        ));
    }
    Ok(())
}

/// Python's `repr` of a str, for the messages above (latin-1 text from the request line).
fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa1).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The error page of Python's `http.server` (its `DEFAULT_ERROR_MESSAGE` layout).
fn python_error(code: u16, message: &str) -> HeadError {
    let explain = match code {
        505 => "Cannot fulfill request.",
        _ => "Bad request syntax or unsupported method.",
    };
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        \
         <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        \
         <p>Error code: {code}</p>\n        <p>Message: {escaped}.</p>\n        \
         <p>Error code explanation: {code} - {explain}</p>\n    </body>\n</html>\n"
    );
    HeadError::Page(page.into_bytes())
}

/// One CRLF- or LF-terminated line of the head, decoded as latin-1.
async fn read_line(
    reader: &mut BufReader<TcpStream>,
    deadline: Instant,
    budget: &mut usize,
) -> Result<String, HeadError> {
    let mut line = Vec::new();
    loop {
        let available = match tokio::time::timeout_at(deadline, reader.fill_buf()).await {
            Err(_) => return Err(HeadError::Bad("408 Request Timeout")),
            Ok(Ok([])) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e.into()),
        };
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if taken > *budget {
            return Err(HeadError::Bad("431 Request Header Fields Too Large"));
        }
        *budget -= taken;
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(line.iter().map(|&b| b as char).collect());
        }
    }
}

/// `%XX` sequences decoded as latin-1, as WSGI's `PATH_INFO`.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out.iter().map(|&b| b as char).collect()
}

/// The bytes of an answer: its status line and headers, or the body alone for HTTP/0.9.
fn encode_response(response: &Response, keep_alive: bool, body_only: bool) -> Vec<u8> {
    if body_only {
        return response.body.clone();
    }
    // An HTTP/1.0 answer closes the connection without saying so, as Python's servers answer.
    let version = if keep_alive { "HTTP/1.1" } else { "HTTP/1.0" };
    let mut head = format!("{version} {}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
    // Header values came from Python strings; non-latin-1 text is sent as UTF-8.
    let mut out = head.into_bytes();
    out.extend_from_slice(&response.body);
    out
}

/// Reads a whole response, for tests: status line, headers and body up to the end.
#[cfg(test)]
fn fetch(address: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &Request) -> Response {
            let accept = request.header("accept").unwrap_or("-");
            let body = format!(
                "{} {} {} {}",
                request.method, request.path, request.query, accept
            );
            Response::text("200 OK", &body)
        }
    }

    fn start(limits: Limits) -> Arc<Server> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(Server::new(listener, limits).unwrap());
        let serving = server.clone();
        std::thread::spawn(move || serving.serve(Arc::new(Echo)));
        server
    }

    #[test]
    fn answers_and_joins_repeated_headers() {
        let server = start(Limits::default());
        let out = fetch(
            server.address(),
            "GET /a%2Fb?x=1 HTTP/1.0\r\nAccept: a\r\naccept: b\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nGET /a/b x=1 a,b"), "{out}");
        server.shutdown();
    }

    #[test]
    fn keep_alive_serves_several_requests() {
        let server = start(Limits::default());
        let out = fetch(
            server.address(),
            "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("HTTP/1.0 200 OK"), "{out}");
        server.shutdown();
    }

    #[test]
    fn oversized_head_is_refused_and_others_still_served() {
        let limits = Limits {
            max_head_bytes: 100,
            ..Limits::default()
        };
        let server = start(limits);
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(1000));
        let out = fetch(server.address(), &huge);
        assert!(out.starts_with("HTTP/1.0 431 "), "{out}");
        let out = fetch(server.address(), "GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        server.shutdown();
    }

    #[test]
    fn half_sent_request_times_out_without_blocking_others() {
        let limits = Limits {
            head_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = start(limits);
        let mut slow = std::net::TcpStream::connect(server.address()).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nAccept: x").unwrap();
        let out = fetch(server.address(), "GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        let mut rest = String::new();
        slow.read_to_string(&mut rest).unwrap();
        assert!(rest.starts_with("HTTP/1.0 408 "), "{rest}");
        server.shutdown();
    }

    #[test]
    fn connections_beyond_the_limit_get_503() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let server = start(limits);
        let _idle = std::net::TcpStream::connect(server.address()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let out = fetch(server.address(), "GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 503 "), "{out}");
        server.shutdown();
    }

    #[test]
    fn malformed_request_line_gets_pythons_error_page() {
        let server = start(Limits::default());
        let out = fetch(server.address(), "NONSENSE\r\n\r\n");
        assert!(out.starts_with("<!DOCTYPE HTML>"), "{out}");
        assert!(
            out.contains("<p>Message: Bad request syntax ('NONSENSE').</p>"),
            "{out}"
        );
        let out = fetch(server.address(), "GET / HTTP/2.0\r\n\r\n");
        assert!(out.contains("<p>Error code: 505</p>"), "{out}");
        server.shutdown();
    }
}
