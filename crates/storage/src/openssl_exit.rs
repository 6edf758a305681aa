//! libpq reaches OpenSSL (SCRAM's HMAC at every connect, TLS), and OpenSSL
//! frees its tables in an exit handler: a connection being made on
//! another thread while the process exits then crashes in it (seen:
//! SIGSEGV in `HMAC_Init_ex` under `PQconnectdb`, from r2d2 growing a pool,
//! after a test's last assertion). Asked before its first use, OpenSSL
//! registers no exit handler, and the operating system takes its memory
//! back at exit as for any other library.

use std::sync::Once;

/// `OPENSSL_INIT_NO_ATEXIT` in OpenSSL's `crypto.h` (1.1.1b and later).
const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;

#[allow(unsafe_code)]
mod ffi {
    // libcrypto is libpq's own dependency (Debian's libpq-dev depends on
    // libssl-dev, which gives `-lcrypto`).
    #[link(name = "crypto")]
    unsafe extern "C" {
        pub(super) fn OPENSSL_init_crypto(
            opts: u64,
            settings: *const std::ffi::c_void,
        ) -> std::ffi::c_int;
    }

    pub(super) fn init_crypto(opts: u64) -> bool {
        // SAFETY: OpenSSL documents OPENSSL_init_crypto as callable from
        // any thread at any time; a null settings pointer means defaults.
        unsafe { OPENSSL_init_crypto(opts, std::ptr::null()) == 1 }
    }
}

/// Tells OpenSSL, once and before libpq first uses it, to register no
/// exit handler.
pub(crate) fn keep_openssl_through_exit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !ffi::init_crypto(OPENSSL_INIT_NO_ATEXIT) {
            tracing::warn!("OpenSSL refused to skip its exit handler");
        }
    });
}
