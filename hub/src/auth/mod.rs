//! Identity at upgrade and permission per channel.
//!
//! An [`Authorizer`] turns the upgrade request (path, query, headers, cookies, client address)
//! into an [`Identity`] or a [`Rejection`] with an HTTP status, and says yes or no to each
//! private or presence channel a connection asks for. Ready ones: [`AllowAll`] (development),
//! [`QueryUserId`] (tank's `user_id` query parameter), [`FnAuthorizer`] (two closures, go-ws's
//! `GetUserID` and `AuthHandler`) and [`JwtAuthorizer`] (HS256/RS256 bearer tokens).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::channel::{ChannelKey, ChannelKind, DEFAULT_APP};
use crate::codec::Data;
use crate::conn::ConnectionId;

pub mod jwt;
mod jwt_authorizer;
pub mod origin;

pub use jwt_authorizer::JwtAuthorizer;

/// Who a connection is.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The user id (several connections may share one).
    pub user_id: Arc<str>,
    /// The app whose channels the connection uses.
    pub app: Arc<str>,
    /// Member info shown on presence channels unless the channel grant gives its own.
    pub info: Option<Data>,
    /// Verified claims (a token's), for channel decisions.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl Identity {
    /// A user of the default app.
    pub fn new(user_id: impl Into<Arc<str>>) -> Self {
        Self {
            user_id: user_id.into(),
            app: DEFAULT_APP.into(),
            info: None,
            claims: None,
        }
    }

    /// A user with a generated id.
    pub fn anonymous() -> Self {
        Self::new(generate_user_id())
    }

    /// Sets the app.
    pub fn with_app(mut self, app: impl Into<Arc<str>>) -> Self {
        self.app = app.into();
        self
    }

    /// Sets the presence member info.
    pub fn with_info(mut self, info: Data) -> Self {
        self.info = Some(info);
        self
    }
}

/// A refused upgrade: the HTTP status to answer with, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status (401, 403, 429, 503…).
    pub status: StatusCode,
    /// Body text.
    pub message: String,
    /// `Retry-After`, for 429 and 503.
    pub retry_after: Option<Duration>,
}

impl Rejection {
    /// A rejection with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The engine's handshake rejection (status, `Retry-After` in whole seconds, body).
    pub fn to_reject(&self) -> wsengine::Reject {
        let mut reject = wsengine::Reject::new(self.status).body(self.message.clone().into_bytes());
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(value) = http::HeaderValue::from_str(&secs.max(1).to_string()) {
                reject = reject.header(http::header::RETRY_AFTER, value);
            }
        }
        reject
    }
}

/// The upgrade request as an authorizer sees it.
#[derive(Clone, Copy, Debug)]
pub struct UpgradeRequest<'a> {
    request: &'a wsengine::Request,
    client: Option<SocketAddr>,
}

impl<'a> UpgradeRequest<'a> {
    /// `request`, from the client at `client` (after trusted-proxy resolution).
    pub fn new(request: &'a wsengine::Request, client: Option<SocketAddr>) -> Self {
        Self { request, client }
    }

    /// The engine's request.
    pub fn request(&self) -> &'a wsengine::Request {
        self.request
    }

    /// The path.
    pub fn path(&self) -> &'a str {
        self.request.path()
    }

    /// The raw query string.
    pub fn query(&self) -> Option<&'a str> {
        self.request.query()
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        query_param(self.query()?, name)
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.request.headers().get(name)?.to_str().ok()
    }

    /// A cookie's value (quotes around it removed).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        cookie(self.request.headers(), name)
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer_token(&self) -> Option<&'a str> {
        bearer(self.request.headers())
    }

    /// The `Origin` header.
    pub fn origin(&self) -> Option<&'a str> {
        self.request.origin()
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client
    }
}

/// A connection asking for a channel.
#[derive(Clone, Copy, Debug)]
pub struct ChannelRequest<'a> {
    /// Who asks.
    pub identity: &'a Identity,
    /// Which connection.
    pub connection: ConnectionId,
    /// The channel.
    pub channel: &'a ChannelKey,
    /// The protocol's proof for the channel, if it carries one (a signature or token).
    pub auth: Option<&'a str>,
}

/// A yes to a channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelGrant {
    /// Member info for a presence channel (otherwise the identity's).
    pub info: Option<Data>,
}

/// Identity at upgrade, permission per channel.
pub trait Authorizer: Send + Sync + 'static {
    /// Who the request is, or the HTTP status to refuse it with.
    fn identify(&self, request: &UpgradeRequest<'_>) -> Result<Identity, Rejection>;

    /// Whether the connection may subscribe. Asked for every channel; the default allows
    /// public channels and refuses private and presence ones.
    fn authorize(&self, request: &ChannelRequest<'_>) -> Option<ChannelGrant> {
        (!request.channel.kind().is_protected()).then(ChannelGrant::default)
    }
}

/// Everyone, every channel, with generated user ids (or the `user_id` query parameter).
/// For development and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn identify(&self, request: &UpgradeRequest<'_>) -> Result<Identity, Rejection> {
        QueryUserId::default().identify(request)
    }

    fn authorize(&self, _request: &ChannelRequest<'_>) -> Option<ChannelGrant> {
        Some(ChannelGrant::default())
    }
}

/// Tank's rule: the user id is the `user_id` query parameter, generated when absent. Public
/// channels only, unless `allow_protected` is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryUserId {
    /// Also allow private and presence channels.
    pub allow_protected: bool,
}

impl Authorizer for QueryUserId {
    fn identify(&self, request: &UpgradeRequest<'_>) -> Result<Identity, Rejection> {
        Ok(match request.query_param("user_id") {
            Some(id) if !id.is_empty() => Identity::new(id.into_owned()),
            _ => Identity::anonymous(),
        })
    }

    fn authorize(&self, request: &ChannelRequest<'_>) -> Option<ChannelGrant> {
        (self.allow_protected || !request.channel.kind().is_protected()).then(ChannelGrant::default)
    }
}

type IdentifyFn = dyn Fn(&UpgradeRequest<'_>) -> Result<Identity, Rejection> + Send + Sync;
type AuthorizeFn = dyn Fn(&Identity, &ChannelKey) -> bool + Send + Sync;

/// An authorizer from two closures: identify the request; allow a user on a protected channel
/// (public channels are always allowed).
#[derive(Clone)]
pub struct FnAuthorizer {
    identify: Arc<IdentifyFn>,
    authorize: Arc<AuthorizeFn>,
}

impl FnAuthorizer {
    /// From the two closures.
    pub fn new(
        identify: impl Fn(&UpgradeRequest<'_>) -> Result<Identity, Rejection> + Send + Sync + 'static,
        authorize: impl Fn(&Identity, &ChannelKey) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            identify: Arc::new(identify),
            authorize: Arc::new(authorize),
        }
    }
}

impl std::fmt::Debug for FnAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnAuthorizer").finish_non_exhaustive()
    }
}

impl Authorizer for FnAuthorizer {
    fn identify(&self, request: &UpgradeRequest<'_>) -> Result<Identity, Rejection> {
        (self.identify)(request)
    }

    fn authorize(&self, request: &ChannelRequest<'_>) -> Option<ChannelGrant> {
        let allowed =
            request.channel.kind() == ChannelKind::Public || (self.authorize)(request.identity, request.channel);
        allowed.then(ChannelGrant::default)
    }
}

/// A fresh user id, unique within the process.
pub fn generate_user_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("u-{:x}-{n}", seed & 0xffff_ffff)
}

/// The token of an `Authorization: Bearer …` header (none when empty).
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A cookie's value (RFC 6265 section 4.2.1: `name=value; name2=value2`, the value maybe
/// quoted); none when empty.
pub(crate) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| {
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .filter(|value| !value.is_empty())
}

/// The first query parameter `name` of `query`, percent-decoded (`+` is a space).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
        .next()
}

/// Percent-decodes a query component (`+` is a space); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&user_id=al%20ice+b", "user_id").as_deref(),
            Some("al ice b")
        );
        assert_eq!(query_param("user_id", "user_id").as_deref(), Some(""));
        assert_eq!(query_param("x=%zz%4", "x").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("x=1", "y"), None);
    }

    #[test]
    fn rejection_has_retry_after() {
        let reject =
            Rejection::new(StatusCode::TOO_MANY_REQUESTS, "slow down").retry_after(Duration::from_millis(1500));
        assert_eq!(reject.retry_after, Some(Duration::from_millis(1500)));
        let _ = reject.to_reject();
    }
}
