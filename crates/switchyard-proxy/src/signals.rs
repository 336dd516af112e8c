//! Unix signals for a running proxy: SIGHUP reloads the config file, SIGUSR2 upgrades to the
//! binary on disk (when the program offers it), SIGTERM and SIGINT stop gracefully; and
//! systemd hears about each (`notify`).

use tokio::signal::unix::{SignalKind, signal};

use crate::ProxyHandle;

/// Serves signals until SIGTERM or SIGINT, then shuts the proxy down gracefully.
/// Returns true when every connection finished within the shutdown timeout.
pub async fn serve_until_signal(handle: ProxyHandle) -> std::io::Result<bool> {
    serve_until_signal_or_upgrade(handle, || async {
        tracing::warn!("binary upgrades are not available to this program");
        Err("binary upgrades are not available to this program".to_string())
    })
    .await
}

/// [`serve_until_signal`], and on SIGUSR2 or `POST /upgrade` runs `upgrade`: when it returns
/// the new process's pid (it took the listeners over and is ready), the proxy stops gracefully
/// as on SIGTERM; an error (the reason) leaves it serving and answers `POST /upgrade` with it.
pub async fn serve_until_signal_or_upgrade<F, Fut>(
    handle: ProxyHandle,
    mut upgrade: F,
) -> std::io::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u32, String>>,
{
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut asked = handle.take_upgrade_requests();
    loop {
        tokio::select! {
            Some(answer) = async {
                match asked.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::info!("POST /upgrade: upgrading to the binary on disk");
                match upgrade().await {
                    Ok(pid) => {
                        let _ = answer.send(Ok(pid));
                        tracing::info!("the new process is serving; stopping this one gracefully");
                        break;
                    }
                    Err(why) => {
                        let _ = answer.send(Err(why));
                    }
                }
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config file");
                crate::notify::send("RELOADING=1");
                // Errors are logged by the reload itself; the running config stays.
                let _ = handle
                    .reload_from_source_as(crate::history::ACTOR_SIGHUP)
                    .await;
                crate::notify::send("READY=1");
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2: upgrading to the binary on disk");
                if upgrade().await.is_ok() {
                    tracing::info!("the new process is serving; stopping this one gracefully");
                    break;
                }
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
    crate::notify::send("STOPPING=1");
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
