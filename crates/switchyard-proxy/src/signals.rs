//! Unix signals for a running proxy: SIGHUP reloads the config file, SIGTERM and SIGINT stop
//! gracefully.

use tokio::signal::unix::{SignalKind, signal};

use crate::ProxyHandle;

/// Serves signals until SIGTERM or SIGINT, then shuts the proxy down gracefully.
/// Returns true when every connection finished within the shutdown timeout.
pub async fn serve_until_signal(handle: ProxyHandle) -> std::io::Result<bool> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config file");
                // Errors are logged by the reload itself; the running config stays.
                let _ = handle
                    .reload_from_source_as(crate::history::ACTOR_SIGHUP)
                    .await;
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping gracefully");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping gracefully");
                break;
            }
        }
    }
    Ok(handle.shutdown().await)
}

/// Reopens the access-log file on every SIGUSR1 (after logrotate moved it), until the proxy
/// stops. Started only when the access log goes to a file.
pub(crate) async fn reopen_access_log_on_usr1(
    shared: std::sync::Arc<crate::shared::Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGUSR1: the access log will not be reopened by it");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = crate::shared::stopped(&mut stop) => return,
            _ = usr1.recv() => {
                if let Some(access) = &shared.access {
                    access.reopen();
                }
            }
        }
    }
}
