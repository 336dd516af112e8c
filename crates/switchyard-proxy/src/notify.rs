//! systemd's notification protocol (`sd_notify`): when `NOTIFY_SOCKET` names a socket, the
//! proxy reports `READY=1`, `RELOADING=1`, `STOPPING=1` and, after a binary upgrade,
//! `MAINPID=`. Without the variable every call does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends one notification (`KEY=VALUE` lines) to `NOTIFY_SOCKET`, if set. Failures are logged
/// at debug: systemd may be gone, and that is no reason to stop serving.
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = sent {
        tracing::debug!(error = %e, state, "sd_notify failed");
    }
}
