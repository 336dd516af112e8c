//! Re-reading the config file (SIGHUP or `POST /reload`) without losing the running config.

use switchyard_config::ConfigErrors;

use crate::control::{ControlError, Controller};

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
