//! Files served from a directory for a path prefix (nginx `location /static/ { alias …; }`),
//! without reaching the pools.
//!
//! Path safety comes first and is done twice. The request path is split into segments, each
//! percent-decoded on its own; a segment that decodes to `.` or `..`, or that contains `/`
//! (`%2f`), `\`, NUL or invalid percent-encoding, ends the request with 404 before the disk is
//! touched. Then the joined path is canonicalised and must still lie inside the canonicalised
//! directory, so a symlink that points outside is refused as well.
//!
//! Every refusal is a 404 — never a 403 — so a probe cannot tell "exists but refused" from
//! "does not exist" outside the directory. The one 403 is for a file inside the directory that
//! the proxy may not read (the operator's permissions problem, worth seeing as such). Only `GET`
//! and `HEAD` are served.
//!
//! A `GET` with one byte range gets 206 and that range (`If-Range` honoured); several ranges,
//! or one that starts past the end, get 416 with `Content-Range: bytes */LEN` (`range.rs`). A
//! file with a `NAME.br` or `NAME.gz` sibling (passing the same inside-the-directory check) is
//! answered with the sibling and `Content-Encoding` when the client's `Accept-Encoding` takes
//! it, and every answer for such a file carries `Vary: Accept-Encoding`. Media types come from
//! `mime_guess`'s table, with `charset=utf-8` on text.
//!
//! Why not tower-http's `ServeDir`: it follows a symlink that leads out of the directory (it
//! has no option to refuse one), it would open the `.br`/`.gz` siblings without such a check
//! either, and it would add `tower`, `tower-http` and a boxed body variant to the response
//! path for what is some 150 lines here.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use switchyard_config::{CompressionConfig, StaticConfig};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::body::{BoxError, ProxyBody};
use crate::compress::Encoding;
use range::Ranged;

mod range;

/// Bytes read from the file per body frame.
const CHUNK: usize = 64 * 1024;

/// The static entry serving `path`: the longest `path_prefix` that is `path` itself or a
/// whole-segment prefix of it (`/static` matches `/static` and `/static/x`, not `/staticx`;
/// `/` matches everything).
pub(crate) fn matching<'a>(files: &'a [StaticConfig], path: &str) -> Option<&'a StaticConfig> {
    files
        .iter()
        .filter(|f| prefix_matches(&f.path_prefix, path))
        .max_by_key(|f| f.path_prefix.len())
}

/// Whether `prefix` covers `path` on a segment boundary (the router's rule).
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers a request for a file under `cfg` (the caller has checked [`matching`]).
pub(crate) async fn serve(
    cfg: &StaticConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<ProxyBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let path = uri.path();
    let rest = if cfg.path_prefix == "/" {
        path
    } else {
        path.strip_prefix(cfg.path_prefix.as_str()).unwrap_or("")
    };
    let Some(segments) = safe_segments(rest) else {
        return not_found();
    };
    let (dir, index, dir_url) = (cfg.dir.clone(), cfg.index.clone(), path.ends_with('/'));
    // One trip to the blocking pool for all the lookups, instead of one per call.
    let located =
        tokio::task::spawn_blocking(move || locate(&dir, index.as_deref(), &segments, dir_url))
            .await;
    let file = match located {
        Ok(Located::File(files)) => files,
        Ok(Located::Redirect) => return redirect_to_dir(uri),
        Ok(Located::NotFound) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "static file lookup failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
        }
    };
    send_file(cfg, method, headers, &file).await
}

/// The decoded segments of a request path below the prefix, or `None` when any of them is
/// unsafe. Empty segments (`a//b`, a trailing `/`) are skipped.
fn safe_segments(rest: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            continue;
        }
        let decoded = percent_decode(raw)?;
        let text = String::from_utf8(decoded).ok()?;
        if text == "." || text == ".." || text.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(text);
    }
    Some(out)
}

/// Decodes `%XX` escapes; `None` on a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A file found under the directory, with what the headers need.
struct Found {
    /// The canonical path, inside the canonical directory.
    path: PathBuf,
    /// Its metadata at the time it was found.
    meta: std::fs::Metadata,
}

/// A file and the precompressed forms of it that lie next to it.
struct Variants {
    /// The file itself.
    plain: Found,
    /// `NAME.br`, when it is a regular file inside the directory.
    br: Option<Found>,
    /// `NAME.gz`, likewise.
    gz: Option<Found>,
}

/// Where a request leads.
enum Located {
    /// A regular file inside the directory.
    File(Box<Variants>),
    /// A directory named without its trailing `/`, that has an index file.
    Redirect,
    /// Nothing servable.
    NotFound,
}

/// Finds the file the segments name, refusing anything outside `dir`. A directory is answered
/// with its index file when it is asked for with a trailing `/` (`dir_url`), and with a
/// redirect to that URL otherwise. Blocking: runs on the blocking pool. The file is later
/// opened by its canonical path, so only someone who can write inside `dir` could swap a
/// link in between.
fn locate(dir: &Path, index: Option<&str>, segments: &[String], dir_url: bool) -> Located {
    let root = match std::fs::canonicalize(dir) {
        Ok(root) => root,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "static directory cannot be opened");
            return Located::NotFound;
        }
    };
    let mut joined = root.clone();
    joined.extend(segments);
    let Some(found) = inside(&root, &joined) else {
        return Located::NotFound;
    };
    if found.meta.is_file() {
        // `file.txt/` names a directory that is not there.
        return if dir_url {
            Located::NotFound
        } else {
            Located::File(Box::new(with_siblings(&root, found)))
        };
    }
    if !found.meta.is_dir() {
        // FIFOs, sockets, devices: opening them could block or worse.
        return Located::NotFound;
    }
    let Some(index) = index else {
        return Located::NotFound;
    };
    match inside(&root, &found.path.join(index)) {
        Some(file) if file.meta.is_file() && dir_url => {
            Located::File(Box::new(with_siblings(&root, file)))
        }
        Some(file) if file.meta.is_file() => Located::Redirect,
        _ => Located::NotFound,
    }
}

/// `plain` with its `.br` and `.gz` siblings, each found (or not) by the same rule as any file.
fn with_siblings(root: &Path, plain: Found) -> Variants {
    let sibling = |ext: &str| {
        let mut name = plain.path.clone().into_os_string();
        name.push(ext);
        inside(root, Path::new(&name)).filter(|f| f.meta.is_file())
    };
    Variants {
        br: sibling(".br"),
        gz: sibling(".gz"),
        plain,
    }
}

/// The canonical form of `path` with its metadata, when it exists and lies inside `root`.
fn inside(root: &Path, path: &Path) -> Option<Found> {
    let path = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %path.display(), error = %e, "static path not resolvable");
            }
            return None;
        }
    };
    if !path.starts_with(root) {
        tracing::warn!(path = %path.display(), root = %root.display(), "static request resolved outside its directory; refused");
        return None;
    }
    let meta = std::fs::metadata(&path).ok()?;
    Some(Found { path, meta })
}

/// Answers with the file (or the precompressed form the client takes): 304 when the client's
/// copy is current, else its headers and, for `GET`, its bytes — all of them, or the one range
/// asked for — streamed from disk.
async fn send_file(
    cfg: &StaticConfig,
    method: &Method,
    req: &HeaderMap,
    files: &Variants,
) -> Response<ProxyBody> {
    let (file, coding) = choose(files, req.get(header::ACCEPT_ENCODING));
    let len = file.meta.len();
    let modified = file.meta.modified().ok();
    let etag = etag(len, modified);
    let mut head = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        head.insert(header::ETAG, v);
    }
    if let Some(v) = modified.and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok())
    {
        head.insert(header::LAST_MODIFIED, v);
    }
    if let Some(v) = cfg
        .cache_control
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        head.insert(header::CACHE_CONTROL, v);
    }
    if files.br.is_some() || files.gz.is_some() {
        head.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified(req, &etag, modified) {
        let mut resp = Response::new(ProxyBody::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.headers_mut() = head;
        return resp;
    }
    if let Ok(v) = HeaderValue::from_str(&content_type(&files.plain.path)) {
        head.insert(header::CONTENT_TYPE, v);
    }
    if let Some(coding) = coding {
        head.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    head.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let ranged = if method == Method::GET {
        range::requested(req, len, &etag, modified)
    } else {
        Ranged::Whole
    };
    let (status, start, count) = match ranged {
        Ranged::Whole => (StatusCode::OK, 0, len),
        Ranged::Part { start, end } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                head.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranged::Unsatisfiable => {
            let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable\n");
            let content_type = resp.headers_mut().remove(header::CONTENT_TYPE);
            head.remove(header::CONTENT_ENCODING);
            head.extend(content_type.map(|v| (header::CONTENT_TYPE, v)));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                head.insert(header::CONTENT_RANGE, v);
            }
            *resp.headers_mut() = head;
            return resp;
        }
    };
    head.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    let body = if method == Method::HEAD {
        ProxyBody::empty()
    } else {
        match open_at(&file.path, start).await {
            Ok(f) => ProxyBody::File(Box::new(FileStream::new(f, count))),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                tracing::warn!(path = %file.path.display(), error = %e, "static file not readable by the proxy");
                return plain(StatusCode::FORBIDDEN, "Forbidden\n");
            }
            Err(e) => {
                tracing::error!(path = %file.path.display(), error = %e, "static file cannot be opened");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
            }
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = head;
    resp
}

/// The file opened and positioned at byte `start`.
async fn open_at(path: &Path, start: u64) -> io::Result<tokio::fs::File> {
    let mut f = tokio::fs::File::open(path).await?;
    if start > 0 {
        f.seek(io::SeekFrom::Start(start)).await?;
    }
    Ok(f)
}

/// The form to send and its `Content-Encoding`: brotli or gzip when that sibling exists and
/// `Accept-Encoding` takes it (the higher q-value wins, brotli on a tie), else the file itself.
fn choose<'a>(
    files: &'a Variants,
    accept: Option<&HeaderValue>,
) -> (&'a Found, Option<&'static str>) {
    let offered = CompressionConfig {
        enabled: true,
        brotli: files.br.is_some(),
        gzip: files.gz.is_some(),
        ..CompressionConfig::default()
    };
    match crate::compress::negotiate(&offered, accept) {
        Some(Encoding::Brotli) => files
            .br
            .as_ref()
            .map_or((&files.plain, None), |f| (f, Some("br"))),
        Some(Encoding::Gzip) => files
            .gz
            .as_ref()
            .map_or((&files.plain, None), |f| (f, Some("gzip"))),
        None => (&files.plain, None),
    }
}

/// A strong validator from the size and the modification time (nanoseconds): it changes
/// whenever a deploy rewrites the file.
fn etag(len: u64, modified: Option<SystemTime>) -> String {
    let nanos = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

/// Whether the client's conditional headers say its copy is current. `If-None-Match` decides
/// when present (weak comparison, `*` matches); otherwise `If-Modified-Since` against the
/// modification time in whole seconds.
fn not_modified(req: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    let inm: Vec<&str> = req
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !inm.is_empty() {
        let ours = etag.trim_start_matches("W/");
        return inm
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    let (Some(since), Some(modified)) = (
        req.get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        modified,
    ) else {
        return false;
    };
    // HTTP dates have whole seconds: compare at that precision.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(since)
}

/// `Content-Type` by file extension (`mime_guess`'s table), with `charset=utf-8` on text and
/// JavaScript; `application/octet-stream` when unknown.
pub(crate) fn content_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let essence = match ext.as_str() {
        // The table's older names for these.
        "mjs" => "text/javascript",
        "map" => "application/json",
        _ => mime_guess::from_ext(&ext)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    };
    if essence.starts_with("text/") || essence == "application/javascript" {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

/// A short plain-text answer.
fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn not_found() -> Response<ProxyBody> {
    plain(StatusCode::NOT_FOUND, "Not Found\n")
}

/// 301 to the same path with a trailing `/`, so relative links in the index file resolve
/// inside the directory.
fn redirect_to_dir(uri: &Uri) -> Response<ProxyBody> {
    let mut target = format!("{}/", uri.path());
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut resp = plain(StatusCode::MOVED_PERMANENTLY, "Moved Permanently\n");
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => not_found(),
    }
}

/// A file streamed as body frames of up to 64 KiB: the body of [`ProxyBody::File`]. It stops
/// after the length announced in `Content-Length`; a file that shrank meanwhile fails the body
/// (the client sees a truncated answer rather than a wrong one).
#[derive(Debug)]
pub struct FileStream {
    /// The open file.
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    /// The chunk being filled, kept while a read is pending.
    buf: Option<BytesMut>,
}

impl FileStream {
    fn new(file: tokio::fs::File, len: u64) -> Self {
        FileStream {
            file,
            remaining: len,
            buf: None,
        }
    }
}

/// The file ended before the length the response announced.
#[derive(Debug, thiserror::Error)]
#[error("static file shrank while it was being sent ({0} bytes missing)")]
struct Shrank(u64);

impl Body for FileStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let mut chunk = this.buf.take().unwrap_or_else(|| BytesMut::zeroed(want));
        let mut read = ReadBuf::new(&mut chunk[..]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => {
                this.buf = Some(chunk);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                tracing::error!(error = %e, "static file read failed mid-body");
                this.remaining = 0;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    let missing = this.remaining;
                    tracing::error!(missing, "static file shrank while it was being sent");
                    this.remaining = 0;
                    return Poll::Ready(Some(Err(Box::new(Shrank(missing)))));
                }
                chunk.truncate(n);
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests;
