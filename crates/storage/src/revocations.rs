//! Hears API-key revocations from every process (the CLI included) through
//! PostgreSQL's LISTEN/NOTIFY, so a server may remember verified keys and
//! still refuse a revoked one at once.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use maveraa_domain::ApiKeyId;

/// The channel `ApiKeyRepository::revoke` notifies, with the key id as payload.
pub const CHANNEL: &str = "maveraa_api_key_revoked";

/// What the listener reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationEvent {
    /// Listening: from now on every revocation is heard.
    Listening,
    /// The key was revoked.
    Revoked(ApiKeyId),
    /// The connection was lost: revocations may be missed until the next
    /// `Listening`.
    Lost,
}

/// The listening thread; dropping it stops the thread and waits for it,
/// so that no connection attempt outlives its owner (a process exiting
/// while a thread is inside libpq can crash in libpq's teardown).
#[derive(Debug)]
pub struct RevocationListener {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for RevocationListener {
    fn drop(&mut self) {
        // Disconnecting the channel is the stop signal.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a thread that listens on `url` and calls `on_event`. It
/// reconnects by itself until the returned [`RevocationListener`] is
/// dropped.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_revocation_listener(
    url: String,
    on_event: impl Fn(RevocationEvent) + Send + 'static,
) -> std::io::Result<RevocationListener> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("maveraa-revocations".into())
        .spawn(move || {
            loop {
                match listen(&url, &on_event, &stopped) {
                    // Asked to stop.
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "revocation listener lost its connection"),
                }
                on_event(RevocationEvent::Lost);
                if stop_requested(&stopped, Duration::from_secs(1)) {
                    return;
                }
            }
        })?;
    Ok(RevocationListener {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Waits up to `wait`; whether the owner asked the thread to stop.
fn stop_requested(stopped: &mpsc::Receiver<()>, wait: Duration) -> bool {
    matches!(
        stopped.recv_timeout(wait),
        Err(mpsc::RecvTimeoutError::Disconnected) | Ok(())
    )
}

/// Listens until asked to stop (`Ok`) or the connection fails.
fn listen(
    url: &str,
    on_event: &impl Fn(RevocationEvent),
    stopped: &mpsc::Receiver<()>,
) -> Result<(), crate::StorageError> {
    let mut conn = crate::pool::establish(url)?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    on_event(RevocationEvent::Listening);
    let mut idle_polls = 0u32;
    loop {
        // Reads what the socket has (no query); errors when the connection died.
        for note in conn.notifications_iter() {
            let note = note?;
            if let Ok(id) = note.payload.parse::<ApiKeyId>() {
                on_event(RevocationEvent::Revoked(id));
            }
        }
        if stop_requested(stopped, Duration::from_millis(2)) {
            return Ok(());
        }
        idle_polls += 1;
        // A dead peer is only noticed on a write: probe now and then.
        if idle_polls >= 500 {
            idle_polls = 0;
            conn.batch_execute("SELECT 1")?;
        }
    }
}
