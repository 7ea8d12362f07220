//! `p2p-node up --web`: the workspace's browser page (`wasm-demo/dist/`) served on
//! 127.0.0.1, beside the network `up` runs.
//!
//! A static file server and nothing else: GET and HEAD of the files under the folder,
//! read at request time (so a page rebuilt meanwhile is served as it now is), never a
//! file outside it.

use std::fs::File;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use tiny_http::{Header, Method, Request, Response, ResponseBox, Server};

/// The port `--web` alone serves on.
pub(crate) const DEFAULT_PORT: &str = "8080";

/// The lowest port `--web` takes: below it are the system's ports, and `up --web 3` is
/// far more likely a node count put after `--web` than a port.
const LOWEST_PORT: u16 = 1024;

/// How many threads answer requests: a browser loads the page's five files at once.
const WORKERS: usize = 4;

/// The page's folder under the workspace root, built by [`BUILD_SCRIPT`].
const DIST: &str = "wasm-demo/dist";
/// The script that builds the page.
const BUILD_SCRIPT: &str = "wasm-demo/build.sh";

/// Why the page cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    /// Something else listens on the port.
    #[error(
        "port {port} is in use on 127.0.0.1, so the page cannot be served there: \
         stop what uses it or pick another port, e.g. `--web {other}`"
    )]
    PortInUse {
        /// The port asked for.
        port: u16,
        /// A port to suggest instead.
        other: u16,
    },
    /// The port could not be bound for another reason.
    #[error("cannot serve the page on 127.0.0.1:{port}: {source}; pick another port, e.g. `--web {other}`")]
    Bind {
        /// The port asked for.
        port: u16,
        /// A port to suggest instead.
        other: u16,
        /// What the system said.
        source: io::Error,
    },
    /// The HTTP server could not be set up on the bound socket.
    #[error("cannot serve the page on 127.0.0.1:{port}: {message}")]
    Server {
        /// The port asked for.
        port: u16,
        /// What tiny_http said.
        message: String,
    },
    /// The page is not built and there is nothing to build it with.
    #[error("the page is not built ({index} is missing) and there is no {script} to build it")]
    NoBuildScript {
        /// The page's `index.html`.
        index: PathBuf,
        /// Where the build script should be.
        script: PathBuf,
    },
    /// The build script could not be run.
    #[error("cannot run {script}: {source}")]
    BuildDidNotRun {
        /// The build script.
        script: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The build script failed.
    #[error("{script} failed ({status}): the page is not built (its output is above)")]
    BuildFailed {
        /// The build script.
        script: PathBuf,
        /// How it exited.
        status: ExitStatus,
    },
    /// The build script succeeded but left no page.
    #[error("{script} succeeded but {index} is still missing")]
    NotBuilt {
        /// The build script.
        script: PathBuf,
        /// The page's `index.html`.
        index: PathBuf,
    },
}

/// The `--web` port from the command line: 1024 to 65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    let port: u16 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a port (1024 to 65535)"))?;
    if port < LOWEST_PORT {
        return Err(format!(
            "port {port} is refused: pick one from {LOWEST_PORT} to 65535 \
             (for N nodes, put N before the option: `up N --web`)"
        ));
    }
    Ok(port)
}

/// The page being served; stops answering when dropped.
pub(crate) struct Web {
    server: Arc<Server>,
    port: u16,
}

impl Web {
    /// Binds 127.0.0.1:`port`, builds the page under `root` if it is not built yet (with
    /// its output on the terminal), then serves it from threads of its own.
    pub(crate) fn start(root: &Path, port: u16) -> Result<Web, WebError> {
        let other = if port == 9000 { 9001 } else { 9000 };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                WebError::PortInUse { port, other }
            } else {
                WebError::Bind {
                    port,
                    other,
                    source,
                }
            }
        })?;
        // Port 0 (only in tests: the command line refuses it) means the one the system picked.
        let port = listener.local_addr().map_or(port, |address| address.port());
        // Bound before the build, so that a busy port is said at once; connections wait
        // in the listener's queue meanwhile.
        let server = Server::from_listener(listener, None).map_err(|e| WebError::Server {
            port,
            message: e.to_string(),
        })?;
        let server = Arc::new(server);
        let dist = root.join(DIST);
        build_if_missing(root, &dist)?;
        for n in 0..WORKERS {
            let server = Arc::clone(&server);
            let dist = dist.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("web-{n}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(request, &dist);
                    }
                });
            if let Err(e) = spawned {
                // Fewer threads only answer more slowly; none at all is a failure.
                if n == 0 {
                    return Err(WebError::Server {
                        port,
                        message: format!("cannot start a thread: {e}"),
                    });
                }
                log::warn!("the page is served by {n} threads only: {e}");
                break;
            }
        }
        Ok(Web { server, port })
    }

    /// The page's address.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The page's address, showing the live network through the node at `node`.
    pub(crate) fn live_url(&self, node: &p2p_core::Address) -> String {
        format!("{}?live={node}", self.url())
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        // Wakes every worker waiting for a request; the listener closes with the last
        // reference to the server.
        for _ in 0..WORKERS {
            self.server.unblock();
        }
    }
}

/// Runs the build script if `dist/index.html` is missing, saying so first.
fn build_if_missing(root: &Path, dist: &Path) -> Result<(), WebError> {
    let index = dist.join("index.html");
    if index.is_file() {
        return Ok(());
    }
    let script = root.join(BUILD_SCRIPT);
    if !script.is_file() {
        return Err(WebError::NoBuildScript { index, script });
    }
    println!(
        "the page is not built yet: building it with {BUILD_SCRIPT} (a minute or two the first time)"
    );
    let _ = io::stdout().flush();
    let status = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .map_err(|source| WebError::BuildDidNotRun {
            script: script.clone(),
            source,
        })?;
    if !status.success() {
        return Err(WebError::BuildFailed { script, status });
    }
    if !index.is_file() {
        return Err(WebError::NotBuilt { script, index });
    }
    Ok(())
}

/// Why a request gets no file.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// No such file in the folder.
    NotFound,
    /// The path names something outside the folder.
    Forbidden,
}

fn answer(request: Request, dist: &Path) {
    let response = match request.method() {
        Method::Get | Method::Head => match open(dist, request.url()) {
            Ok((file, kind)) => with_headers(Response::from_file(file).boxed(), kind),
            Err(Refusal::NotFound) => plain(404, "not found\n"),
            Err(Refusal::Forbidden) => plain(403, "forbidden\n"),
        },
        _ => {
            let mut response = plain(405, "method not allowed: only GET and HEAD\n");
            add(&mut response, "Allow", "GET, HEAD");
            response
        }
    };
    let line = format!("{} {}", request.method(), request.url());
    let code = response.status_code().0;
    match request.respond(response) {
        Ok(()) => log::debug!("web: {line}: {code}"),
        Err(e) => log::debug!("web: {line}: {code}, not sent: {e}"),
    }
}

fn plain(code: u16, text: &str) -> ResponseBox {
    with_headers(
        Response::from_string(text).with_status_code(code).boxed(),
        "text/plain; charset=utf-8",
    )
}

fn with_headers(mut response: ResponseBox, kind: &str) -> ResponseBox {
    add(&mut response, "Content-Type", kind);
    add(&mut response, "Cache-Control", "no-cache");
    add(&mut response, "X-Content-Type-Options", "nosniff");
    response
}

/// Adds (or replaces) a header; ours are all ASCII, which is all tiny_http refuses.
fn add(response: &mut ResponseBox, name: &str, value: &str) {
    if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        response.add_header(header);
    }
}

/// The file a request's target names under `dist`, and its content type.
fn open(dist: &Path, target: &str) -> Result<(File, &'static str), Refusal> {
    let relative = relative_path(target)?;
    let root = dist.canonicalize().map_err(|_| Refusal::NotFound)?;
    let path = root
        .join(&relative)
        .canonicalize()
        .map_err(|_| Refusal::NotFound)?;
    // A symbolic link inside the folder may point anywhere: only what resolves inside
    // it is served.
    if !path.starts_with(&root) {
        return Err(Refusal::Forbidden);
    }
    if !path.is_file() {
        return Err(Refusal::NotFound);
    }
    let file = File::open(&path).map_err(|_| Refusal::NotFound)?;
    Ok((file, content_type(&relative)))
}

/// The path under the folder that a request's target names: the query and fragment
/// dropped, each segment percent-decoded, `/` (or a trailing `/`) meaning `index.html`.
/// A segment that is `.` or `..`, or holds a `/`, a `\` or a NUL once decoded, is refused.
fn relative_path(target: &str) -> Result<PathBuf, Refusal> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let Some(path) = path.strip_prefix('/') else {
        return Err(Refusal::NotFound);
    };
    let mut relative = PathBuf::new();
    for raw in path.split('/') {
        let segment = percent_decode(raw).ok_or(Refusal::NotFound)?;
        if segment.is_empty() {
            continue;
        }
        if segment == "." || segment == ".." || segment.contains(['/', '\\', '\0']) {
            return Err(Refusal::Forbidden);
        }
        relative.push(segment);
    }
    if relative.as_os_str().is_empty() || path.ends_with('/') {
        relative.push("index.html");
    }
    Ok(relative)
}

/// `text` with its `%XX` escapes decoded; `None` if an escape is broken or the result
/// is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type of a file by its extension (`application/wasm` lets a browser
/// compile WebAssembly while it downloads).
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, PathBuf) {
        let scratch = tempfile::tempdir().expect("a temp dir");
        let dist = scratch.path().join("dist");
        std::fs::create_dir_all(dist.join("sub")).expect("dist");
        std::fs::write(dist.join("index.html"), "<p>index</p>").expect("index.html");
        std::fs::write(dist.join("app.js"), "//app").expect("app.js");
        std::fs::write(dist.join("sub/a b.css"), "p{}").expect("a b.css");
        std::fs::write(scratch.path().join("secret.txt"), "secret").expect("secret");
        (scratch, dist)
    }

    fn read(dist: &Path, target: &str) -> Result<(String, &'static str), Refusal> {
        let (mut file, kind) = open(dist, target)?;
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).expect("readable");
        Ok((text, kind))
    }

    #[test]
    fn the_root_and_a_query_mean_index_html() {
        let (_scratch, dist) = folder();
        for target in ["/", "/?live=ws://localhost:4001", "/index.html#top", "//"] {
            assert_eq!(
                read(&dist, target),
                Ok(("<p>index</p>".to_owned(), "text/html; charset=utf-8")),
                "{target}"
            );
        }
    }

    #[test]
    fn files_are_found_with_escapes_decoded() {
        let (_scratch, dist) = folder();
        assert_eq!(
            read(&dist, "/app.js?v=2"),
            Ok(("//app".to_owned(), "text/javascript; charset=utf-8"))
        );
        assert_eq!(
            read(&dist, "/sub/a%20b.css"),
            Ok(("p{}".to_owned(), "text/css; charset=utf-8"))
        );
    }

    #[test]
    fn nothing_outside_the_folder_is_served() {
        let (_scratch, dist) = folder();
        for target in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/sub/../../secret.txt",
            "/..%2fsecret.txt",
            "/.%2e/secret.txt",
            "/./index.html",
        ] {
            assert_eq!(read(&dist, target), Err(Refusal::Forbidden), "{target}");
        }
        // An absolute path is a path under the folder.
        assert_eq!(read(&dist, "//etc/passwd"), Err(Refusal::NotFound));
        assert_eq!(
            read(&dist, "http://example.com/index.html"),
            Err(Refusal::NotFound)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_out_of_the_folder_is_refused_and_one_inside_followed() {
        let (scratch, dist) = folder();
        std::os::unix::fs::symlink(scratch.path().join("secret.txt"), dist.join("out.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(dist.join("app.js"), dist.join("in.js")).expect("symlink");
        assert_eq!(read(&dist, "/out.txt"), Err(Refusal::Forbidden));
        assert_eq!(
            read(&dist, "/in.js").map(|(text, _)| text),
            Ok("//app".into())
        );
    }

    #[test]
    fn missing_files_folders_and_broken_escapes_are_not_found() {
        let (_scratch, dist) = folder();
        for target in ["/nothing.js", "/sub", "/sub/", "/%zz", "/%e9", "/app.js%"] {
            assert_eq!(read(&dist, target), Err(Refusal::NotFound), "{target}");
        }
        let gone = dist.join("gone");
        assert_eq!(read(&gone, "/"), Err(Refusal::NotFound));
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, kind) in [
            ("wasm_demo_bg.wasm", "application/wasm"),
            ("a.PNG", "image/png"),
            ("a.svg", "image/svg+xml"),
            ("a.json", "application/json"),
            ("README", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), kind, "{name}");
        }
    }

    #[test]
    fn ports_below_1024_and_non_numbers_are_refused() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert_eq!(parse_port("65535"), Ok(65535));
        for text in ["0", "3", "1023", "65536", "x", "-1"] {
            assert!(parse_port(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_busy_port_is_named_before_anything_is_built() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a port");
        let port = busy.local_addr().expect("its address").port();
        // No wasm-demo here: had it got past the port, it would say so.
        let root = tempfile::tempdir().expect("a temp dir");
        let error = match Web::start(root.path(), port) {
            Ok(_) => panic!("served on a busy port"),
            Err(e) => e,
        };
        assert!(
            matches!(error, WebError::PortInUse { port: p, .. } if p == port),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!("port {port} ")),
            "{error}"
        );
    }

    #[test]
    fn no_build_script_is_a_clear_error() {
        let root = tempfile::tempdir().expect("a temp dir");
        let error = match Web::start(root.path(), 0) {
            Ok(_) => panic!("served a page that is not there"),
            Err(e) => e,
        };
        assert!(matches!(error, WebError::NoBuildScript { .. }), "{error}");
    }
}
