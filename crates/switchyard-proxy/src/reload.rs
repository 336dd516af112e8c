//! Re-reading the config file (SIGHUP or `POST /reload`) without losing the running config,
//! and reloading the TLS certificates with it.
//!
//! Certificates are read and checked first: a missing file or a key that does not match its
//! certificate rejects the whole reload, and the running config and certificates stay. Once
//! the new config is committed, the new certificates serve every new handshake; connections
//! already open keep theirs.

use switchyard_config::{Config, ConfigErrors};

use crate::control::{ControlError, Controller};
use crate::tls::{self, CertReloader, CertSet};

/// Reads and checks the certificates of `config` before anything of it is applied. `None`
/// when there is nothing to swap: no certificates named, or TLS off in this process (then they
/// are still checked, so a bad file is reported now rather than at the next restart).
pub(crate) async fn load_certs(
    tls: Option<&CertReloader>,
    config: &Config,
) -> Result<Option<CertSet>, ControlError> {
    let certs = config.tls.certs.clone();
    if certs.is_empty() {
        if tls.is_some() {
            tracing::warn!(
                "the new config names no certificate; the https listeners stay open with the certificates they have until restart"
            );
        }
        return Ok(None);
    }
    let loaded = tokio::task::spawn_blocking(move || tls::load_certs(&certs))
        .await
        .map_err(|e| ControlError::Tls(format!("certificate loading failed: {e}")))?;
    match loaded {
        Ok(set) if tls.is_some() => Ok(Some(set)),
        Ok(_) => {
            tracing::warn!(
                "certificates are valid but this process has no https listener; they take effect on restart"
            );
            Ok(None)
        }
        Err(e) => {
            tracing::error!(error = %e, "reload rejected: TLS certificates could not be loaded; the running config and certificates stay");
            Err(ControlError::Tls(e.to_string()))
        }
    }
}

/// Puts certificates loaded by [`load_certs`] in force, once their config is committed.
pub(crate) fn apply_certs(tls: Option<&CertReloader>, certs: Option<CertSet>) {
    if let (Some(tls), Some(set)) = (tls, certs) {
        tls.replace(set);
    }
}

/// Re-reads the running config's file, validates it and applies it. On any error the running
/// config stays in force and every problem is logged and returned.
pub(crate) async fn reload_from_source(ctl: &Controller) -> Result<u64, ControlError> {
    let Some(path) = ctl.config_source().await else {
        return Err(ControlError::NoConfigFile);
    };
    let read_path = path.clone();
    let parsed = tokio::task::spawn_blocking(move || switchyard_config::load_file(&read_path))
        .await
        .map_err(|e| ControlError::BadRequest(format!("reload task failed: {e}")))?;
    let result = match parsed {
        Ok(config) => ctl.reload(config).await,
        Err(errors) => Err(ControlError::InvalidConfig(errors)),
    };
    match &result {
        Ok(generation) => {
            tracing::info!(file = %path.display(), generation, "reloaded config file");
        }
        Err(ControlError::InvalidConfig(ConfigErrors(errors))) => {
            tracing::error!(file = %path.display(), problems = errors.len(), "config reload rejected; the running config stays in force");
            for e in errors {
                tracing::error!("{e}");
            }
        }
        Err(e) => tracing::error!(file = %path.display(), error = %e, "config reload failed"),
    }
    result
}
