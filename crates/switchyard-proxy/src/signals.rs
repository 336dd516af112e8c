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
