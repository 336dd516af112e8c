//! `[fleet]`: the etcd endpoints, key prefix and node name of fleet mode, checked.

use toml::Spanned;

use crate::raw::RawFleet;
use crate::types::{FleetConfig, FleetTlsConfig};
use crate::validate::Checker;

/// Checks one etcd endpoint: `http://` or `https://`, a host and a port, nothing after.
pub(crate) fn endpoint(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("`{text}` must start with http:// or https://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` needs a port (etcd's client port is usually 2379)"))?;
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(format!("`{text}` is not host:port"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{text}` has no valid port")),
    }
}

/// Checks a key prefix: starts with `/`, no trailing `/`, printable ASCII without spaces.
pub(crate) fn prefix(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.len() < 2 {
        return Err("must start with `/` and name something, e.g. \"/switchyard/prod\"".into());
    }
    if text.ends_with('/') {
        return Err("must not end with `/`".into());
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only printable ASCII without spaces".into());
    }
    Ok(())
}

/// Checks a fleet node name: 1 to 63 letters, digits, `.`, `_` or `-`.
pub fn node(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` must be 1 to 63 letters, digits, `.`, `_` or `-`"
        ))
    }
}

impl Checker<'_, '_> {
    /// `[fleet]`, or `None` when it has a problem (already recorded).
    pub(crate) fn fleet(&mut self, raw: &RawFleet) -> Option<FleetConfig> {
        let mut ok = true;
        let etcd = match &raw.etcd {
            None => {
                if !self.removed("fleet.etcd") {
                    self.error(
                        &(0..0),
                        "fleet.etcd",
                        "fleet mode needs the etcd endpoints, e.g. etcd = [\"http://127.0.0.1:2379\"]",
                    );
                }
                ok = false;
                Vec::new()
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(&list.span(), "fleet.etcd", "name at least one endpoint");
                ok = false;
                Vec::new()
            }
            Some(list) => {
                let mut out = Vec::new();
                for (i, item) in list.get_ref().iter().enumerate() {
                    let path = self.item("fleet.etcd", i);
                    match self.check(&item.span(), &path, endpoint(item.get_ref())) {
                        Some(()) => out.push(item.get_ref().trim_end_matches('/').to_string()),
                        None => ok = false,
                    }
                }
                out
            }
        };
        let prefix_text = match &raw.prefix {
            Some(p) => {
                ok &= self
                    .check(&p.span(), "fleet.prefix", prefix(p.get_ref()))
                    .is_some();
                p.get_ref().clone()
            }
            None => "/switchyard".to_string(),
        };
        let node_name = raw.node.as_ref().and_then(|n| {
            let checked = self.check(&n.span(), "fleet.node", node(n.get_ref()));
            ok &= checked.is_some();
            checked.map(|()| n.get_ref().clone())
        });
        let var = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
        let (username_env, password_env) = (var(&raw.username_env), var(&raw.password_env));
        if username_env.is_some() != password_env.is_some() {
            self.error(
                &(0..0),
                "fleet",
                "username_env and password_env go together: set both or neither",
            );
            ok = false;
        }
        let mut tls = FleetTlsConfig::default();
        if let Some(raw_tls) = &raw.tls {
            let path = |v: &Option<Spanned<String>>| v.as_ref().map(|p| self.resolve(p.get_ref()));
            tls = FleetTlsConfig {
                ca: path(&raw_tls.ca),
                cert: path(&raw_tls.cert),
                key: path(&raw_tls.key),
            };
            if tls.cert.is_some() != tls.key.is_some() {
                self.error(&(0..0), "fleet.tls", "cert and key go together");
                ok = false;
            }
        }
        ok.then_some(FleetConfig {
            etcd,
            prefix: prefix_text,
            node: node_name,
            username_env,
            password_env,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_prefixes_and_nodes() {
        assert!(endpoint("http://127.0.0.1:2379").is_ok());
        assert!(endpoint("https://etcd.internal:2379/").is_ok());
        assert!(endpoint("127.0.0.1:2379").is_err());
        assert!(endpoint("http://127.0.0.1").is_err());
        assert!(endpoint("http://:2379").is_err());
        assert!(endpoint("http://h:0").is_err());
        assert!(prefix("/switchyard/prod").is_ok());
        assert!(prefix("switchyard").is_err());
        assert!(prefix("/a/").is_err());
        assert!(prefix("/").is_err());
        assert!(prefix("/a b").is_err());
        assert!(node("edge-1").is_ok());
        assert!(node("").is_err());
        assert!(node("a/b").is_err());
    }
}
