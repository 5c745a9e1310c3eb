//! An [`Authorizer`] over JSON Web Tokens (HS256/RS256, see [`JwtVerifier`]).
//!
//! The user id is the token's `sub`; an optional `user_info` claim is the presence member info.
//! Public channels are open to every verified user; a private or presence channel needs a
//! `channels` claim listing it (an entry ending in `*` matches a prefix).

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::jwt::JwtVerifier;
use super::{Authorizer, ChannelGrant, ChannelRequest, Identity, Rejection, UpgradeRequest};
use crate::codec::Data;

/// Bearer tokens (header, query parameter or cookie, as the verifier is configured).
#[derive(Debug)]
pub struct JwtAuthorizer {
    verifier: JwtVerifier,
}

impl JwtAuthorizer {
    /// Verifies with `verifier`.
    pub fn new(verifier: JwtVerifier) -> Self {
        Self { verifier }
    }
}

impl Authorizer for JwtAuthorizer {
    fn identify(&self, request: &UpgradeRequest<'_>) -> Result<Identity, Rejection> {
        let claims = self
            .verifier
            .authenticate(request.query(), request.request().headers(), SystemTime::now())
            .map_err(|error| Rejection::new(error.status(), error.to_string()))?;
        let mut identity = Identity::new(claims.user_id);
        if let Some(info) = claims.extra.get("user_info") {
            identity.info = Data::json(info).ok();
        }
        identity.claims = Some(Arc::new(claims.extra));
        Ok(identity)
    }

    fn authorize(&self, request: &ChannelRequest<'_>) -> Option<ChannelGrant> {
        if !request.channel.kind().is_protected() {
            return Some(ChannelGrant::default());
        }
        let name = request.channel.name();
        let listed = request
            .identity
            .claims
            .as_ref()
            .and_then(|claims| claims.get("channels"))
            .and_then(Value::as_array)
            .is_some_and(|channels| {
                channels
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|pattern| match pattern.strip_suffix('*') {
                        Some(prefix) => name.starts_with(prefix),
                        None => name == pattern,
                    })
            });
        listed.then(ChannelGrant::default)
    }
}
