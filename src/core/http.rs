//! A small HTTP/1.1 server for metrics scrapes, on an event loop of its own few threads.
//!
//! It knows nothing of metrics: a `Handler` turns each request into a response. Connections
//! are tasks on a tokio runtime, so thousands of idle or slow ones cost a small buffer each and
//! no thread; handlers (renders) run on the runtime's blocking pool, a few at a time. Every
//! limit a slow or hostile client could push on is bounded: the number of connections, the size
//! of a request head, the time to send it, the idle time between keep-alive requests and the
//! time to take a response. A client that overruns one of them loses its own connection only.
//! When connections (or descriptors) run out, those that have waited longest for a request are
//! closed to make room: clients that hold connections without asking cannot lock others out.
//!
//! Requests the handler answers alike (same `sharing_key`) that wait for a render at the same
//! time share one: a flood of scrapes costs one render at a time, not one each, and the answer,
//! held once, is what slow readers share. A shared render starts after every request it
//! answers arrived, so none gets an older answer than its own render would have given.
//!
//! A well-formed request head is parsed by `httparse`. One it refuses (HTTP/0.9, a bad
//! version, a malformed line, too many headers) is read again line by line, by the rules of
//! Python's `http.server` (which the reference's server runs on), so that it gets the same
//! bytes back as from the reference.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};
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

    /// A folded line joins the value of header `name` with its line break, as Python keeps it.
    fn fold_into(&mut self, name: &str, line: &str) {
        if let Some((_, value)) = self.headers.iter_mut().find(|(n, _)| n == name) {
            value.push_str("\r\n");
            value.push_str(line);
        }
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

    /// Requests with the same key get the same answer when handled at the same moment, so
    /// those waiting together may share one call; `None` (the default): never shared.
    fn sharing_key(&self, _request: &Request) -> Option<String> {
        None
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once (at most what the descriptor limit leaves room for). Past
    /// it, a new connection closes the one waiting longest for a request; if none waits, up to
    /// as many more get a 503, the rest are closed.
    pub max_connections: usize,
    pub max_head_bytes: usize,
    /// Time allowed to send a whole request head, once its first byte arrived.
    pub head_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_requests_per_connection: usize,
    /// Handlers (renders) running at once; the requests beyond wait their turn, in order
    /// (alike ones share a render).
    pub max_renders: usize,
    /// Bytes read from a connection at once (a request head longer than this still fits in
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
    renders: Arc<Renders>,
    waiting: Arc<Waiting>,
    /// Its own few threads: connections are tasks on them, renders run on its blocking pool.
    runtime: Option<Runtime>,
}

impl Server {
    pub fn new(listener: std::net::TcpListener, mut limits: Limits) -> io::Result<Server> {
        // Connections past the process's descriptors would fail to be accepted: the limit
        // comes first, where the oldest waiting connection can make room.
        limits.max_connections = limits.max_connections.min(descriptors_for_connections());
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // Two, so that a connection woken among a flood of others is not served last.
            .worker_threads(2)
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
            renders: Arc::default(),
            waiting: Arc::default(),
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
                    // Out of file descriptors: the connection that waited longest for its
                    // request makes room (in a moment, once closed).
                    Err(e)
                        if out_of_descriptors(&e) && self.waiting.evict_oldest(EVICTED_AT_ONCE) =>
                    {
                        tokio::time::sleep(Duration::from_millis(1)).await
                    }
                    // Back off instead of spinning.
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
        // At the limit, the connection that waited longest for its request makes room.
        let busy = active >= self.limits.max_connections && !self.waiting.evict_oldest(1);
        let limits = self.limits.clone();
        let connections = self.connections.clone();
        let renders = self.renders.clone();
        let waiting = self.waiting.clone();
        self.runtime().spawn(async move {
            if busy {
                refuse_connection(stream).await;
            } else {
                let mut connection = Connection::new(stream, &limits);
                let _ = connection
                    .serve(&handler, &renders, &waiting, &limits)
                    .await;
                let _ = connection.close();
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
    let answer = encode_answer(&busy, false);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
    let _ = stream.shutdown().await;
}

/// Where a shared render's response is published, once made.
type Answer = watch::Receiver<Option<Arc<Response>>>;
type AnswerSender = watch::Sender<Option<Arc<Response>>>;

/// Shared renders, by sharing key. A key has at most one render running and one waiting to
/// start after it; a request whose key has one waiting joins it. So a flood of alike requests
/// keeps one blocking thread busy, and the others stay free for other requests.
#[derive(Default)]
struct Renders {
    keys: Mutex<HashMap<String, KeyRenders>>,
}

/// A key's renders: one is running (the entry exists), perhaps one more is waiting.
#[derive(Default)]
struct KeyRenders {
    next: Option<(Request, AnswerSender)>,
}

impl Renders {
    /// The handler's response to `request`, made on the blocking pool (shared when it can be).
    async fn render(
        self: &Arc<Self>,
        handler: &Arc<dyn Handler>,
        request: Request,
    ) -> io::Result<Arc<Response>> {
        let Some(key) = handler.sharing_key(&request) else {
            let handler = handler.clone();
            return tokio::task::spawn_blocking(move || Arc::new(handler.handle(&request)))
                .await
                .map_err(|_| io::Error::other("the handler panicked"));
        };
        let mut answer = self.join_or_queue(key, handler, request);
        let response = match answer.wait_for(Option::is_some).await {
            Ok(response) => response.clone(),
            Err(_) => None,
        };
        response.ok_or_else(|| io::Error::other("the handler panicked"))
    }

    fn join_or_queue(
        self: &Arc<Self>,
        key: String,
        handler: &Arc<dyn Handler>,
        request: Request,
    ) -> Answer {
        let mut keys = lock(&self.keys);
        let (sender, answer) = watch::channel(None);
        match keys.get_mut(&key) {
            Some(KeyRenders {
                next: Some((_, waiting)),
            }) => return waiting.subscribe(),
            Some(running) => running.next = Some((request, sender)),
            None => {
                keys.insert(key.clone(), KeyRenders::default());
                let renders = self.clone();
                let handler = handler.clone();
                tokio::task::spawn_blocking(move || {
                    renders.render_in_turn(&key, &*handler, request, sender)
                });
            }
        }
        answer
    }

    /// Renders for `key` one after the other, while requests wait for a next one.
    fn render_in_turn(
        &self,
        key: &str,
        handler: &dyn Handler,
        mut request: Request,
        mut sender: AnswerSender,
    ) {
        loop {
            let handled = catch_unwind(AssertUnwindSafe(|| handler.handle(&request)));
            let Ok(response) = handled else {
                // Its requests (and the next render's) fail rather than wait: the senders drop.
                lock(&self.keys).remove(key);
                return;
            };
            sender.send_replace(Some(Arc::new(response)));
            let mut keys = lock(&self.keys);
            let next = keys.get_mut(key).and_then(|renders| renders.next.take());
            match next {
                Some((next_request, next_sender)) => {
                    (request, sender) = (next_request, next_sender)
                }
                None => {
                    keys.remove(key);
                    return;
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A client's connection and the bytes read from it but not used yet (the start of a
/// pipelined request, say).
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Bytes read at once.
    read_size: usize,
    /// The client has closed its side: what it sent is all there is.
    ended: bool,
}

impl Connection {
    fn new(stream: TcpStream, limits: &Limits) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            buffer: Vec::new(),
            read_size: limits.read_buffer_bytes.max(1),
            ended: false,
        }
    }

    /// Serves requests until the client closes, errs or overruns a limit (then `close`).
    async fn serve(
        &mut self,
        handler: &Arc<dyn Handler>,
        renders: &Arc<Renders>,
        waiting: &Waiting,
        limits: &Limits,
    ) -> io::Result<()> {
        for served in 0..limits.max_requests_per_connection {
            let idle = if served == 0 {
                limits.head_timeout
            } else {
                limits.idle_timeout
            };
            let head = match self.read_head_unless_evicted(idle, waiting, limits).await {
                Ok(Some(head)) => head,
                Ok(None) => return Ok(()),
                Err(HeadError::Io(e)) => return Err(e),
                Err(HeadError::Bad(status)) => {
                    let refusal = Response::text(status, &format!("{status}\n"));
                    self.send(&encode_answer(&refusal, false), &[], limits)
                        .await?;
                    return Ok(());
                }
                Err(HeadError::Page(page)) => {
                    self.send(&page, &[], limits).await?;
                    return Ok(());
                }
                Err(HeadError::Silent) => return Ok(()),
            };
            // A client that closed its side gets its answer as a last one.
            let keep_alive =
                head.keep_alive && !self.ended && served + 1 < limits.max_requests_per_connection;
            let response = renders.render(handler, head.request).await?;
            // HTTP/0.9 gets the body alone. HEAD gets the whole answer (the app's 405 and its
            // text), as from the reference's WSGI server.
            if head.simple {
                self.send(&[], &response.body, limits).await?;
            } else {
                self.send_answer(&response, keep_alive, limits).await?;
            }
            if !keep_alive {
                break;
            }
        }
        Ok(())
    }

    /// Sends the answer's head, then its body, which may be shared with other connections.
    async fn send_answer(
        &mut self,
        response: &Response,
        keep_alive: bool,
        limits: &Limits,
    ) -> io::Result<()> {
        // A small answer goes out in one piece.
        if response.body.len() <= SMALL_BODY_BYTES {
            return self
                .send(&encode_answer(response, keep_alive), &[], limits)
                .await;
        }
        let head = encode_head(response, keep_alive);
        self.send(&head, &response.body, limits).await
    }

    /// Writes `head` and `body` within the write timeout: a client that does not read loses
    /// its connection.
    async fn send(&mut self, head: &[u8], body: &[u8], limits: &Limits) -> io::Result<()> {
        let stream = &mut self.stream;
        let written = tokio::time::timeout(limits.write_timeout, async move {
            stream.write_all(head).await?;
            stream.write_all(body).await
        });
        match written.await {
            Ok(written) => written,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Shuts both directions, as Python's servers do, and closes.
    fn close(self) -> io::Result<()> {
        self.stream.into_std()?.shutdown(Shutdown::Both)
    }

    /// Reads once more from the client, within `deadline` (408 when it passes); at the end
    /// of the stream, `ended` is set.
    async fn read_more(&mut self, deadline: Instant) -> Result<(), HeadError> {
        let filled = self.buffer.len();
        self.buffer.resize(filled + self.read_size, 0);
        let read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buffer[filled..]));
        let outcome = read.await;
        let count = match outcome {
            Ok(Ok(count)) => count,
            _ => 0,
        };
        self.buffer.truncate(filled + count);
        match outcome {
            Err(_) => Err(HeadError::Bad("408 Request Timeout")),
            Ok(Ok(0)) => {
                self.ended = true;
                Ok(())
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Reads one request head, or `None` if the connection is evicted meanwhile.
    async fn read_head_unless_evicted(
        &mut self,
        idle: Duration,
        waiting: &Waiting,
        limits: &Limits,
    ) -> Result<Option<Head>, HeadError> {
        let (id, evicted) = waiting.enter();
        let head = tokio::select! {
            head = self.read_head(idle, limits) => head,
            _ = evicted.notified() => Ok(None),
        };
        waiting.leave(id);
        head
    }

    /// Reads one request head; `None` when the client closed or stayed idle. The whole head
    /// must arrive within `head_timeout` of its first byte: a client trickling bytes cannot
    /// hold on.
    async fn read_head(
        &mut self,
        idle: Duration,
        limits: &Limits,
    ) -> Result<Option<Head>, HeadError> {
        if self.buffer.is_empty() {
            // An idle connection holds no buffer until its client writes.
            self.buffer = Vec::new();
            match tokio::time::timeout(idle, self.stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Ok(None),
            }
            self.read_more(Instant::now() + idle).await?;
            if self.buffer.is_empty() {
                return Ok(None);
            }
        }
        let deadline = Instant::now() + limits.head_timeout;
        loop {
            match parse_head(&self.buffer) {
                Parsed::Complete(head, used) if used <= limits.max_head_bytes => {
                    self.buffer.drain(..used);
                    return Ok(Some(head));
                }
                Parsed::Partial if self.buffer.len() < limits.max_head_bytes && !self.ended => {
                    self.read_more(deadline).await?
                }
                // Oversized heads are refused by the line reader, which says which line; a
                // head cut by the client's close is read as Python reads it.
                _ => break,
            }
        }
        self.read_odd_head(deadline, limits).await.map(Some)
    }

    /// Reads a head `httparse` refused line by line, by the rules of Python's `http.server`.
    async fn read_odd_head(
        &mut self,
        deadline: Instant,
        limits: &Limits,
    ) -> Result<Head, HeadError> {
        let mut budget = limits.max_head_bytes;
        let Some(request_line) = self.read_line(deadline, &mut budget).await? else {
            return Err(python_refusal(
                414,
                "Request-URI Too Long",
                "URI is too long",
                "",
            ));
        };
        let (method, target, version) = parse_request_line(&request_line)?;
        let mut request = request_for(method, target);
        // HTTP/0.9 has no headers: Python answers at once.
        if version != "HTTP/0.9" {
            self.read_odd_headers(&mut request, deadline, &mut budget)
                .await?;
        }
        Ok(Head::new(request, version))
    }

    /// The header lines up to the empty one, as Python's `http.client` reads them.
    async fn read_odd_headers(
        &mut self,
        request: &mut Request,
        deadline: Instant,
        budget: &mut usize,
    ) -> Result<(), HeadError> {
        let mut last_name = None;
        let mut headers_ended = false;
        // Python counts the empty line that ends the head too.
        for _ in 0..MAX_HEADER_LINES {
            let Some(line) = self.read_line(deadline, budget).await? else {
                return Err(HeadError::Bad("431 Request Header Fields Too Large"));
            };
            if line.is_empty() {
                return Ok(());
            }
            match header_line(&line) {
                _ if headers_ended => {}
                HeaderLine::Field(name, value) => {
                    request.add_header(name.clone(), value);
                    last_name = Some(name);
                }
                HeaderLine::Folded => {
                    if let Some(name) = &last_name {
                        request.fold_into(name, line.trim_end());
                    }
                }
                HeaderLine::Nameless => {}
                // Python's parser takes the rest of the head for a body: no more headers.
                HeaderLine::NotAHeader => headers_ended = true,
            }
        }
        let explain = format!("got more than {MAX_HEADER_LINES} headers");
        Err(python_refusal(
            431,
            "Too many headers",
            &explain,
            &request.method,
        ))
    }

    /// One CRLF- or LF-terminated line (or the last bytes the client sent before closing),
    /// decoded as latin-1, within `budget` bytes (`None` when it is longer).
    async fn read_line(
        &mut self,
        deadline: Instant,
        budget: &mut usize,
    ) -> Result<Option<String>, HeadError> {
        loop {
            let window = self.buffer.len().min(*budget);
            let end = match self.buffer[..window].iter().position(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None if self.buffer.len() >= *budget => return Ok(None),
                // The client closed: the rest is the last line (empty when nothing is left).
                None if self.ended => self.buffer.len(),
                None => {
                    self.read_more(deadline).await?;
                    continue;
                }
            };
            *budget -= end;
            let line: String = self.buffer.drain(..end).map(|b| b as char).collect();
            return Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()));
        }
    }
}

/// The connections waiting for a request (idle, or still sending its head), oldest first:
/// when connections or file descriptors run out, the oldest is closed to make room, so that
/// clients that hold connections without asking cannot lock out those that ask.
#[derive(Default)]
struct Waiting {
    next_id: AtomicU64,
    connections: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Waiting {
    fn enter(&self) -> (u64, Arc<Notify>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        lock(&self.connections).insert(id, evicted.clone());
        (id, evicted)
    }

    fn leave(&self, id: u64) {
        lock(&self.connections).remove(&id);
    }

    /// Closes the `count` connections that have waited longest; `false` when none waits.
    fn evict_oldest(&self, count: usize) -> bool {
        let mut connections = lock(&self.connections);
        let mut evicted_any = false;
        for _ in 0..count {
            let Some((_, evicted)) = connections.pop_first() else {
                break;
            };
            // A permit is kept if the connection is not listening at this instant.
            evicted.notify_one();
            evicted_any = true;
        }
        evicted_any
    }
}

/// Connections closed at once when the process runs out of descriptors.
const EVICTED_AT_ONCE: usize = 16;
/// Descriptors left to the rest of the process (files, Python's sockets, the server's own).
const RESERVED_DESCRIPTORS: u64 = 128;

#[cfg(unix)]
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(not(unix))]
fn out_of_descriptors(_e: &io::Error) -> bool {
    false
}

/// How many connections the process's descriptor limit leaves room for.
#[cfg(unix)]
fn descriptors_for_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return usize::MAX;
    }
    // `rlim_t` is signed on some systems.
    #[allow(clippy::unnecessary_cast)]
    let room = (limit.rlim_cur as u64).saturating_sub(RESERVED_DESCRIPTORS);
    usize::try_from(room).unwrap_or(usize::MAX).max(1)
}

#[cfg(not(unix))]
fn descriptors_for_connections() -> usize {
    usize::MAX
}

/// Answers of up to this size are sent with their head in one write.
const SMALL_BODY_BYTES: usize = 16 * 1024;
/// Python's `http.client` refuses a head of more lines than this (its empty last line included).
const MAX_HEADER_LINES: usize = 100;

struct Head {
    request: Request,
    keep_alive: bool,
    /// An HTTP/0.9 request: the answer is the body alone.
    simple: bool,
}

impl Head {
    /// Only an HTTP/1.1 request without a body is kept alive: the reference's server closes
    /// after every answer, and an HTTP/1.0 client gets its answers the same way.
    fn new(request: Request, version: &str) -> Head {
        let has_body = request.header("transfer-encoding").is_some()
            || request
                .header("content-length")
                .is_some_and(|n| n.trim() != "0");
        let closing = request
            .header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"));
        Head {
            keep_alive: version == "HTTP/1.1" && !has_body && !closing,
            simple: version == "HTTP/0.9",
            request,
        }
    }
}

enum HeadError {
    Io(io::Error),
    Bad(&'static str),
    /// Bytes sent before closing: Python's answer to a malformed request.
    Page(Vec<u8>),
    /// Close without an answer (an empty request line).
    Silent,
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> HeadError {
        HeadError::Io(e)
    }
}

enum Parsed {
    /// A well-formed head, and the bytes it took.
    Complete(Head, usize),
    Partial,
    /// Not for `httparse`: Python's rules decide.
    Odd,
}

/// Python's `http.client` takes this many headers (one fewer than its line limit).
const MAX_HEADERS: usize = MAX_HEADER_LINES - 1;

fn parse_head(bytes: &[u8]) -> Parsed {
    // httparse passes over empty lines before the request line; Python closes at the first.
    if matches!(bytes.first(), Some(b'\r' | b'\n')) {
        return Parsed::Odd;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let used = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Odd,
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Parsed::Odd;
    };
    let mut request = request_for(method, target);
    for header in parsed.headers.iter() {
        let value: String = header.value.iter().map(|&b| b as char).collect();
        request.add_header(header.name.to_ascii_lowercase(), value.trim().to_string());
    }
    let version = if minor == 1 { "HTTP/1.1" } else { "HTTP/1.0" };
    Parsed::Complete(Head::new(request, version), used)
}

/// What Python's header parser (`email`, in its compat32 policy) makes of a line of the head.
enum HeaderLine {
    /// `name: value`: the name lower-cased, the value trimmed.
    Field(String, String),
    /// A line starting with white space continues the header before it.
    Folded,
    /// `: value`, passed over.
    Nameless,
    NotAHeader,
}

fn header_line(line: &str) -> HeaderLine {
    if line.starts_with([' ', '\t']) {
        return HeaderLine::Folded;
    }
    let Some((name, value)) = line.split_once(':') else {
        return HeaderLine::NotAHeader;
    };
    if name.is_empty() {
        HeaderLine::Nameless
    } else if name.chars().all(|c| ('!'..='~').contains(&c)) {
        HeaderLine::Field(name.to_ascii_lowercase(), value.trim().to_string())
    } else {
        HeaderLine::NotAHeader
    }
}

fn request_for(method: &str, target: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: query.to_string(),
        headers: Vec::new(),
    }
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

/// Python's refusal of a malformed request line: its error page alone, as that comes before
/// the client's HTTP version is known.
fn python_error(code: u16, message: &str) -> HeadError {
    let explain = match code {
        505 => "Cannot fulfill request",
        _ => "Bad request syntax or unsupported method",
    };
    HeadError::Page(python_error_page(code, message, explain).into_bytes())
}

/// Python's refusal with a status line and headers (less `Server` and `Date`); no page
/// for HEAD.
fn python_refusal(code: u16, message: &str, explain: &str, method: &str) -> HeadError {
    let page = python_error_page(code, message, explain);
    let mut answer = format!(
        "HTTP/1.0 {code} {message}\r\nConnection: close\r\n\
         Content-Type: text/html;charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        page.len()
    );
    if method != "HEAD" {
        answer.push_str(&page);
    }
    HeadError::Page(answer.into_bytes())
}

/// The error page of Python's `http.server` (its `DEFAULT_ERROR_MESSAGE` layout).
fn python_error_page(code: u16, message: &str, explain: &str) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let (message, explain) = (escape(message), escape(explain));
    format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        \
         <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        \
         <p>Error code: {code}</p>\n        <p>Message: {message}.</p>\n        \
         <p>Error code explanation: {code} - {explain}.</p>\n    </body>\n</html>\n"
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

/// An answer's status line and headers.
fn encode_head(response: &Response, keep_alive: bool) -> Vec<u8> {
    // An HTTP/1.0 answer closes the connection without saying so, as Python's servers answer.
    let version = if keep_alive { "HTTP/1.1" } else { "HTTP/1.0" };
    let mut head = format!("{version} {}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
    // Header values came from Python strings; non-latin-1 text is sent as UTF-8.
    head.into_bytes()
}

/// A whole answer in one buffer.
fn encode_answer(response: &Response, keep_alive: bool) -> Vec<u8> {
    let mut answer = encode_head(response, keep_alive);
    answer.extend_from_slice(&response.body);
    answer
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
    fn at_the_limit_the_connection_idle_longest_makes_room() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = start(limits);
        let mut oldest = std::net::TcpStream::connect(server.address()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut newer = std::net::TcpStream::connect(server.address()).unwrap();
        newer.write_all(b"GET / HTTP/1.1\r\nX: ").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let out = fetch(server.address(), "GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        let mut rest = String::new();
        oldest.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "closed without an answer");
        // The newer one still waits for the rest of its head.
        newer
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let still_open = newer.read(&mut [0u8; 16]).unwrap_err().kind();
        assert_eq!(still_open, io::ErrorKind::WouldBlock);
        server.shutdown();
    }

    #[test]
    fn connections_beyond_the_limit_get_503_when_none_is_idle() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let (server, _) = start_slow(limits);
        let address = server.address();
        let busy = std::thread::spawn(move || fetch(address, "GET /m HTTP/1.0\r\n\r\n"));
        std::thread::sleep(Duration::from_millis(80));
        let out = fetch(server.address(), "GET / HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 503 "), "{out}");
        assert!(busy.join().unwrap().ends_with("call 1"));
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

    /// Counts its calls, takes 200 ms each; requests of one path are alike; `/panic` panics.
    struct Slow(AtomicUsize);

    impl Handler for Slow {
        fn handle(&self, request: &Request) -> Response {
            assert!(request.path != "/panic", "the handler failed");
            let call = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(200));
            Response::text("200 OK", &format!("call {call}"))
        }

        fn sharing_key(&self, request: &Request) -> Option<String> {
            Some(request.path.clone())
        }
    }

    fn start_slow(limits: Limits) -> (Arc<Server>, Arc<Slow>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(Server::new(listener, limits).unwrap());
        let handler = Arc::new(Slow(AtomicUsize::new(0)));
        let (serving, handling) = (server.clone(), handler.clone());
        std::thread::spawn(move || serving.serve(handling));
        (server, handler)
    }

    #[test]
    fn alike_requests_waiting_together_share_a_render_started_after_them() {
        let (server, handler) = start_slow(Limits::default());
        let address = server.address();
        let first = std::thread::spawn(move || fetch(address, "GET /m HTTP/1.0\r\n\r\n"));
        std::thread::sleep(Duration::from_millis(80));
        let later: Vec<_> = (0..5)
            .map(|_| std::thread::spawn(move || fetch(address, "GET /m HTTP/1.0\r\n\r\n")))
            .collect();
        assert!(first.join().unwrap().ends_with("call 1"));
        for answer in later {
            // Not the render running when they came: the next one, shared.
            assert!(answer.join().unwrap().ends_with("call 2"));
        }
        assert_eq!(handler.0.load(Ordering::SeqCst), 2);
        server.shutdown();
    }

    #[test]
    fn a_panicking_render_fails_its_own_requests_only() {
        let (server, _) = start_slow(Limits::default());
        let out = fetch(server.address(), "GET /panic HTTP/1.0\r\n\r\n");
        assert_eq!(out, "");
        let out = fetch(server.address(), "GET /panic HTTP/1.0\r\n\r\n");
        assert_eq!(out, "");
        let out = fetch(server.address(), "GET /m HTTP/1.0\r\n\r\n");
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        server.shutdown();
    }
}
