//! A small HTTP/1.1 server for metrics scrapes: one thread per connection, bounded.
//!
//! It knows nothing of metrics: a `Handler` turns each request into a response. Every limit a
//! slow or hostile client could push on is bounded: the number of connections, the size of a
//! request head, the time to send it, the idle time between keep-alive requests and the time
//! to take a response. A client that overruns one of them loses its own connection only.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    pub max_connections: usize,
    pub max_head_bytes: usize,
    /// Time allowed to send a whole request head, once its first byte arrived.
    pub head_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_requests_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
        }
    }
}

pub struct Server {
    /// Read-locked while serving; `close` takes it once `serve` has returned.
    listener: RwLock<Option<TcpListener>>,
    fd: i32,
    address: SocketAddr,
    limits: Limits,
    stopping: AtomicBool,
    /// The address `shutdown`'s wake-up connection came from: not a client, never served.
    wake_from: std::sync::Mutex<Option<SocketAddr>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn new(listener: TcpListener, limits: Limits) -> io::Result<Server> {
        listener.set_nonblocking(false)?;
        let address = listener.local_addr()?;
        Ok(Server {
            fd: listener.as_raw_fd(),
            listener: RwLock::new(Some(listener)),
            address,
            limits,
            stopping: AtomicBool::new(false),
            wake_from: std::sync::Mutex::new(None),
            connections: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Accepts connections until `shutdown`, each served on its own thread.
    pub fn serve(&self, handler: Arc<dyn Handler>) {
        let listener = self.listener.read().unwrap_or_else(|p| p.into_inner());
        let Some(listener) = listener.as_ref() else {
            return;
        };
        while !self.is_stopping() {
            let stream = match listener.accept() {
                Ok((_, from)) if self.is_wake_up(from) => continue,
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if self.is_stopping() => break,
                Err(_) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.is_stopping() {
                break;
            }
            self.spawn_connection(stream, handler.clone());
        }
    }

    fn is_wake_up(&self, from: SocketAddr) -> bool {
        let mut wake_from = self.wake_from.lock().unwrap_or_else(|p| p.into_inner());
        let is_wake_up = *wake_from == Some(from);
        if is_wake_up {
            *wake_from = None;
        }
        is_wake_up
    }

    /// Accepts one connection and serves it on its own thread, as `socketserver`'s
    /// `handle_request` does; `false` when none came within `timeout` (`None`: wait).
    pub fn serve_one(&self, handler: Arc<dyn Handler>, timeout: Option<Duration>) -> bool {
        let listener = self.listener.read().unwrap_or_else(|p| p.into_inner());
        let Some(listener) = listener.as_ref() else {
            return false;
        };
        if let Some(timeout) = timeout {
            if !wait_readable(listener, timeout) {
                return false;
            }
        }
        match listener.accept() {
            Ok((_, from)) if self.is_wake_up(from) => self.serve_one(handler, timeout),
            Ok((stream, _)) => {
                self.spawn_connection(stream, handler);
                true
            }
            Err(_) => false,
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
        let spawned = std::thread::Builder::new()
            .name("fastprom-http".into())
            .spawn(move || {
                if busy {
                    refuse_connection(stream);
                } else {
                    let _ = serve_connection(stream, handler.as_ref(), &limits);
                }
                connections.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            self.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The listening socket's descriptor (-1 once closed).
    pub fn fileno(&self) -> i32 {
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

    /// Makes `serve` return: sets the flag, then wakes the blocked `accept` with a connection.
    pub fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wake = self.address;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if let Ok(stream) = TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            *self.wake_from.lock().unwrap_or_else(|p| p.into_inner()) = stream.local_addr().ok();
        }
    }
}

/// Answers 503 to a connection over the limit. Its request is read first (briefly), so that
/// closing does not reset the connection before the client reads the answer. Refusing threads
/// are short-lived and counted with the others, up to twice the limit.
fn refuse_connection(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut buffer = [0u8; 4096];
    let _ = (&stream).read(&mut buffer);
    let busy = Response::text("503 Service Unavailable", "Too many connections\n");
    let _ = write_response(&mut &stream, &busy, false, false);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Serves requests on one connection until it closes, errs or overruns a limit.
fn serve_connection(stream: TcpStream, handler: &dyn Handler, limits: &Limits) -> io::Result<()> {
    stream.set_write_timeout(Some(limits.write_timeout))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(4096, &stream);
    for served in 0..limits.max_requests_per_connection {
        let idle = if served == 0 {
            limits.head_timeout
        } else {
            limits.idle_timeout
        };
        let head = match read_head(&mut reader, &stream, idle, limits) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::Bad(status)) => {
                let response = Response::text(status, &format!("{status}\n"));
                write_response(&mut &stream, &response, false, false)?;
                return stream.shutdown(Shutdown::Both);
            }
            Err(HeadError::Page(page)) => {
                (&stream).write_all(&page)?;
                return stream.shutdown(Shutdown::Both);
            }
            Err(HeadError::Silent) => return stream.shutdown(Shutdown::Both),
        };
        let keep_alive = head.keep_alive && served + 1 < limits.max_requests_per_connection;
        let response = handler.handle(&head.request);
        // HEAD gets the whole answer (the app's 405 and its text), as from the reference's WSGI server.
        write_response(&mut &stream, &response, keep_alive, head.simple)?;
        if !keep_alive {
            break;
        }
    }
    stream.shutdown(Shutdown::Both)
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
fn read_head(
    reader: &mut BufReader<&TcpStream>,
    stream: &TcpStream,
    idle: Duration,
    limits: &Limits,
) -> Result<Option<Head>, HeadError> {
    stream.set_read_timeout(Some(idle))?;
    match reader.fill_buf() {
        Ok([]) => return Ok(None),
        Ok(_) => {}
        Err(e) if is_timeout(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + limits.head_timeout;
    let mut budget = limits.max_head_bytes;
    let request_line = read_line(reader, stream, deadline, &mut budget)?;
    let (method, target, version) = parse_request_line(&request_line)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: query.to_string(),
        headers: Vec::new(),
    };
    loop {
        let line = read_line(reader, stream, deadline, &mut budget)?;
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
fn read_line(
    reader: &mut BufReader<&TcpStream>,
    stream: &TcpStream,
    deadline: Instant,
    budget: &mut usize,
) -> Result<String, HeadError> {
    let mut line = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HeadError::Bad("408 Request Timeout"));
        }
        stream.set_read_timeout(Some(remaining))?;
        let available = match reader.fill_buf() {
            Ok([]) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(bytes) => bytes,
            Err(e) if is_timeout(&e) => return Err(HeadError::Bad("408 Request Timeout")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
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

/// Whether a connection is waiting on `listener` within `timeout`.
fn wait_readable(listener: &TcpListener, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, millis) > 0 }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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

fn write_response(
    out: &mut impl Write,
    response: &Response,
    keep_alive: bool,
    body_only: bool,
) -> io::Result<()> {
    if body_only {
        out.write_all(&response.body)?;
        return out.flush();
    }
    // An HTTP/1.0 answer closes the connection without saying so, as Python's servers answer.
    let version = if keep_alive { "HTTP/1.1" } else { "HTTP/1.0" };
    let mut head = format!("{version} {}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
    // Header values came from Python strings; non-latin-1 text is sent as UTF-8.
    out.write_all(head.as_bytes())?;
    out.write_all(&response.body)?;
    out.flush()
}

/// Reads a whole response, for tests: status line, headers and body up to the end.
#[cfg(test)]
fn fetch(address: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
        let mut slow = TcpStream::connect(server.address()).unwrap();
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
        let _idle = TcpStream::connect(server.address()).unwrap();
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
