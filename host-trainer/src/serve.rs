//! `vsc serve [--model FILE.vscq] [--port N]`: the phone web app on 127.0.0.1.
//!
//! DeviceMotion is only given to pages in a secure context, and `http://localhost` is
//! one, so the page is served on the loopback address only; a phone reaches it through
//! `adb reverse` (Android) or an HTTPS tunnel (see the README). The server is a small
//! HTTP/1.1 file server over `std::net`, one thread per connection, `Connection: close`:
//! it serves the files `cargo xtask web` built (`target/web/` by default) and the model at
//! `/model.vscq`. The model is read and validated once at start, so a bad blob stops
//! `vsc serve` with the reason instead of reaching the page.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use edge_runtime::blob::{BlobError, ModelBlob};

/// Arguments of `vsc serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Model blob the page loads by default (`models/edge.vscq` of this checkout if not
    /// given); the page can also open another .vscq file itself.
    #[arg(long, value_name = "FILE.vscq")]
    pub model: Option<PathBuf>,
    /// TCP port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Folder with the built page (`index.html`, `app.js`, `pkg/`); default:
    /// `target/web` of this checkout, where `cargo xtask web` writes it.
    #[arg(long, value_name = "DIR")]
    pub web: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{dir}: the web app is not built (no index.html or pkg/); run `cargo xtask web` first")]
    WebNotBuilt { dir: PathBuf },
    #[error("{path}: cannot read the model: {source}")]
    ReadModel { path: PathBuf, source: io::Error },
    #[error("{path}: not a usable model: {source}")]
    BadModel { path: PathBuf, source: BlobError },
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source} (is another `vsc serve` running? try --port)"
    )]
    Bind { port: u16, source: io::Error },
}

/// The folder of this checkout (the workspace root).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `cargo xtask web` puts the page: `$CARGO_TARGET_DIR/web`, else `target/web` of
/// this checkout.
pub fn default_web_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("web")
}

/// The committed model the page loads unless told otherwise.
pub fn default_model() -> PathBuf {
    workspace_root().join("models").join("edge.vscq")
}

/// What the server serves: the built page and, optionally, one model.
#[derive(Clone, Debug)]
pub struct Site {
    web_dir: PathBuf,
    model: Option<Arc<Vec<u8>>>,
}

impl Site {
    /// Checks that `web_dir` holds a built page and that `model` (if any) is a valid blob.
    pub fn new(web_dir: &Path, model: Option<&Path>) -> Result<Site, ServeError> {
        if !web_dir.join("index.html").is_file() || !web_dir.join("pkg").is_dir() {
            return Err(ServeError::WebNotBuilt {
                dir: web_dir.to_path_buf(),
            });
        }
        let model = match model {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| ServeError::ReadModel {
                    path: path.to_path_buf(),
                    source,
                })?;
                ModelBlob::parse(&bytes).map_err(|source| ServeError::BadModel {
                    path: path.to_path_buf(),
                    source,
                })?;
                Some(Arc::new(bytes))
            }
        };
        Ok(Site {
            web_dir: web_dir.to_path_buf(),
            model,
        })
    }

    pub fn model_len(&self) -> Option<usize> {
        self.model.as_ref().map(|m| m.len())
    }
}

/// A running server; dropping it (or [`Server::stop`]) stops it.
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on 127.0.0.1:`port` (0: any free port) and serves `site` on a thread.
    pub fn start(site: Site, port: u16) -> Result<Server, ServeError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(|source| ServeError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stopping);
        let site = Arc::new(site);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let site = Arc::clone(&site);
                std::thread::spawn(move || {
                    // A client that hangs up mid-request is its own problem, not ours.
                    let _ = handle(&site, stream);
                });
            }
        });
        Ok(Server {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// MIME type by file extension; `.wasm` must be `application/wasm` for streaming
/// compilation.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A request path → a file below the web folder, or `None` for anything that could
/// leave it (`..`, hidden names, odd characters).
fn file_below(web_dir: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.strip_prefix('/')?;
    let safe_part = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    relative
        .split('/')
        .all(safe_part)
        .then(|| web_dir.join(relative))
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: &'static str, message: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
        }
    }
}

fn respond(site: &Site, method: &str, url_path: &str) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::text("405 Method Not Allowed", "only GET and HEAD");
    }
    if url_path == "/model.vscq" {
        return match &site.model {
            Some(model) => Response {
                status: "200 OK",
                content_type: "application/octet-stream",
                body: model.as_ref().clone(),
            },
            None => Response::text("404 Not Found", "vsc serve was started without a model"),
        };
    }
    let name = if url_path == "/" {
        "/index.html"
    } else {
        url_path
    };
    let Some(path) = file_below(&site.web_dir, name) else {
        return Response::text("404 Not Found", "no such file");
    };
    match std::fs::read(&path) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: content_type(name),
            body,
        },
        Err(_) => Response::text("404 Not Found", "no such file"),
    }
}

/// Longest request head we read (request line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;

fn handle(site: &Site, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Headers are read and dropped: nothing here depends on them.
    let mut head_bytes = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        head_bytes += n;
        if n == 0 || line == "\r\n" || line == "\n" || head_bytes > MAX_HEAD_BYTES {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if head_bytes > MAX_HEAD_BYTES || !target.starts_with('/') {
        Response::text("400 Bad Request", "bad request")
    } else {
        let path = target.split(['?', '#']).next().unwrap_or("/");
        respond(site, method, path)
    };
    let mut out = io::BufWriter::new(stream);
    write!(
        out,
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n\
         Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )?;
    // Cross-origin isolation (the two headers above) lets performance.now() tick in
    // 5 µs instead of 100 µs steps, which the page's encode timing relies on.
    if method != "HEAD" {
        out.write_all(&response.body)?;
    }
    out.flush()
}

/// `vsc serve`: serves until interrupted.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let web_dir = args.web.clone().unwrap_or_else(default_web_dir);
    let model = match &args.model {
        Some(path) => Some(path.clone()),
        None => {
            let path = default_model();
            if path.is_file() {
                Some(path)
            } else {
                eprintln!(
                    "note: {} not found; serving without a model (the page can open a .vscq file)",
                    path.display()
                );
                None
            }
        }
    };
    let site = Site::new(&web_dir, model.as_deref())?;
    let server = Server::start(site.clone(), args.port)?;
    let port = server.addr().port();
    let model_text = match (&model, site.model_len()) {
        (Some(path), Some(len)) => format!("{} ({len} bytes)", path.display()),
        _ => "none".to_owned(),
    };
    println!(
        "vsc serve: the phone web app on {url} (page {web}, model {model_text})\n\
         \n  on this computer:  open http://localhost:{port}/\
         \n  Android over USB:  adb reverse tcp:{port} tcp:{port}, then open http://localhost:{port}/ in Chrome\
         \n  iPhone:            motion sensors need a secure context: reach this port through an HTTPS\
         \n                     tunnel (plain http://<LAN address> gets no motion events); see the README\
         \n\nCtrl-C stops it.",
        url = server.url(),
        web = web_dir.display(),
    );
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn web_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html><p>hi").unwrap();
        std::fs::write(dir.path().join("app.js"), "export {}").unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/m_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
        dir
    }

    /// Status line, headers (lower-cased names) and body of one raw request.
    fn request(addr: SocketAddr, raw: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        (status, headers, bytes[split + 4..].to_vec())
    }

    fn get(addr: SocketAddr, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
        request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn serves_the_page_the_wasm_and_the_model() {
        let dir = web_dir();
        let model = default_model();
        let site = Site::new(dir.path(), Some(&model)).unwrap();
        let server = Server::start(site, 0).unwrap();
        let addr = server.addr();

        let (status, headers, body) = get(addr, "/");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(body, b"<!doctype html><p>hi");
        assert_eq!(
            header(&headers, "cross-origin-embedder-policy"),
            "require-corp"
        );

        let (status, headers, body) = get(addr, "/pkg/m_bg.wasm?v=2");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-type"), "application/wasm");
        assert_eq!(&body[..4], b"\0asm");

        let (_, headers, _) = get(addr, "/app.js");
        assert_eq!(
            header(&headers, "content-type"),
            "text/javascript; charset=utf-8"
        );

        let (status, _, body) = get(addr, "/model.vscq");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, std::fs::read(&model).unwrap());
        ModelBlob::parse(&body).unwrap();

        let (status, headers, body) = request(addr, "HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-length"), "9");
        assert!(body.is_empty());
        server.stop();
    }

    #[test]
    fn refuses_paths_outside_the_folder_and_other_methods() {
        let dir = web_dir();
        let server = Server::start(Site::new(dir.path(), None).unwrap(), 0).unwrap();
        let addr = server.addr();
        for path in [
            "/../Cargo.toml",
            "/pkg/../../x",
            "/.hidden",
            "/a//b",
            "/nope.js",
        ] {
            let (status, _, _) = get(addr, path);
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        }
        let (status, _, body) = get(addr, "/model.vscq");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(String::from_utf8(body).unwrap().contains("without a model"));
        let (status, _, _) = request(addr, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        let (status, _, _) = request(addr, "GET http://evil/ HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
    }

    #[test]
    fn a_missing_build_or_a_bad_model_says_what_to_do() {
        let empty = tempfile::tempdir().unwrap();
        let err = Site::new(empty.path(), None).unwrap_err().to_string();
        assert!(err.contains("cargo xtask web"), "{err}");

        let dir = web_dir();
        let bad = dir.path().join("bad.vscq");
        let mut bytes = std::fs::read(default_model()).unwrap();
        bytes.truncate(100);
        std::fs::write(&bad, &bytes).unwrap();
        let err = Site::new(dir.path(), Some(&bad)).unwrap_err().to_string();
        assert!(
            err.contains("bad.vscq") && err.contains("total-length"),
            "{err}"
        );

        let err = Site::new(dir.path(), Some(&dir.path().join("none.vscq")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none.vscq") && err.contains("cannot read"),
            "{err}"
        );
    }
}
