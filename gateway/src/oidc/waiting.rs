//! An authorization request waiting for the browser to sign in: kept in a cookie while the
//! sign-in pages run, and where they send the browser once signed in.

use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const COOKIE: &str = "tenure_continue";

/// The cookie that keeps `target` (an `/oauth2/authorize?…` path) while the user signs in.
pub fn cookie(target: &str, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, URL_SAFE_NO_PAD.encode(target)))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .build()
}

/// Where to go once signed in: the authorization request waiting, or the dashboard; and the jar
/// without the waiting request. Only an authorization request of this site is taken.
pub fn after_sign_in(jar: CookieJar) -> (CookieJar, String) {
    let waiting = jar
        .get(COOKIE)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.value()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|target| target.starts_with("/oauth2/authorize?"));
    match waiting {
        Some(target) => (jar.remove(Cookie::build(COOKIE).path("/").build()), target),
        None => (jar, "/dashboard".to_string()),
    }
}
