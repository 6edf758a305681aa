//! `[dashboard]`: sign-ins to the dashboard.

use std::time::Duration;

use serde::Deserialize;

/// `[dashboard]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSection {
    /// The session cookie's `Secure` flag: `auto` (when the request came
    /// over HTTPS, as the connection or a proxy's `X-Forwarded-Proto`
    /// says), `always` or `never`.
    pub secure_cookies: String,
    /// Minutes a sign-in may go unused before it ends.
    pub idle_minutes: u64,
    /// Days a sign-in lasts, used or not.
    pub absolute_days: u64,
    /// Failed sign-ins of one account before it is locked.
    pub account_failures: u32,
    /// Failed sign-ins from one address before it is refused.
    pub address_failures: u32,
    /// Minutes failures count, and a lock holds.
    pub lockout_minutes: u64,
}

impl DashboardSection {
    /// The session policy these settings describe.
    pub fn policy(&self) -> maveraa_domain::SessionPolicy {
        maveraa_domain::SessionPolicy {
            idle: Duration::from_secs(self.idle_minutes.max(1) * 60),
            absolute: Duration::from_secs(self.absolute_days.max(1) * 86_400),
            account_failures: self.account_failures.max(1),
            address_failures: self.address_failures.max(1),
            lockout: Duration::from_secs(self.lockout_minutes.max(1) * 60),
            setup_link: Duration::from_secs(3600),
        }
    }

    /// The cookie setting, checked.
    ///
    /// # Errors
    /// A message naming the allowed values.
    pub fn secure_cookies(&self) -> Result<maveraa_http_api::dashboard::SecureCookies, String> {
        use maveraa_http_api::dashboard::SecureCookies;
        match self.secure_cookies.trim() {
            "auto" => Ok(SecureCookies::Auto),
            "always" => Ok(SecureCookies::Always),
            "never" => Ok(SecureCookies::Never),
            other => Err(format!(
                "dashboard.secure_cookies is {other:?}: it must be auto, always or never"
            )),
        }
    }
}
