//! Files only their owner may read (the local server's password, the
//! secrets key), created once.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` holding `contents` and a newline, mode 0600, owned by
/// `owner` (uid, gid) when given, unless it exists. Written beside it and
/// hard-linked into place, which never replaces a file: it appears whole,
/// and when several processes start at once the first one's stays. Returns
/// whether this call created it (`false`: read the one that is there).
pub(crate) fn create_private(
    path: &Path,
    contents: &str,
    owner: Option<(u32, u32)>,
) -> std::io::Result<bool> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
        }
        Ok(())
    };
    let linked = write().and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}
