//! What a load run aims at: an `http://` or `https://` URL resolved once to a socket address.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use http::Uri;

/// A parsed `http(s)://host:port/path?query` URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://`: connections run TLS first.
    pub tls: bool,
    /// The host as written (without brackets), the name TLS asks for and checks.
    pub host: String,
    /// The address connections go to (resolved once, before the run).
    pub addr: SocketAddr,
    /// `host:port` as written, sent as `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    pub authority: String,
    /// The origin-form request target (`/path?query`).
    pub path: String,
    /// The URL as given, for reports.
    pub url: String,
}

impl Target {
    /// Parses `url` and resolves its host: `http://` or `https://`.
    pub async fn resolve(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("`{url}` is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                bail!("`{url}`: only http:// and https:// are supported, not {other}://")
            }
            None => bail!("`{url}`: write the scheme, e.g. http://127.0.0.1:8080/"),
        };
        let authority = uri
            .authority()
            .with_context(|| format!("`{url}` has no host"))?;
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(Target {
            tls,
            host: host.to_string(),
            addr,
            authority: authority.as_str().to_string(),
            path,
            url: url.to_string(),
        })
    }

    /// The `http://` target for a local address and path.
    pub fn local(addr: SocketAddr, path: &str) -> Target {
        Target {
            tls: false,
            host: addr.ip().to_string(),
            addr,
            authority: addr.to_string(),
            path: path.to_string(),
            url: format!("http://{addr}{path}"),
        }
    }
}
