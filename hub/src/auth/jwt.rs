//! JSON Web Token verification at upgrade: HS256 with a shared secret, RS256 with a PEM public key.
//!
//! Parsing, the JWS checks and `iss`/`aud` validation are the `jsonwebtoken` crate's; signatures
//! go through a `ring` provider defined here, because `ring` is the crypto stack the engine's TLS
//! already uses and `jsonwebtoken` otherwise needs a second one (RustCrypto or aws-lc). The
//! provider is installed process-wide the first time a [`JwtVerifier`] is built; if the program
//! installed another provider first, that one is used, which is equally correct.
//!
//! `exp` and `nbf` are checked here against a caller-supplied time, so tests need no clock, and
//! both must be numbers when present (RFC 7519 section 4.1.4: a NumericDate), never skipped
//! because they are of the wrong type.
//!
//! The token comes from, in this order: an `Authorization: Bearer` header, the `token` query
//! parameter (browsers cannot set headers on a WebSocket), and a cookie when one is named. Cookies
//! are off by default: the browser attaches them to cross-site handshakes too, so use them only
//! together with an origin allow-list ([`super::origin`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use jsonwebtoken::crypto::{self as jwt_crypto, CryptoProvider, JwkUtils};
use jsonwebtoken::errors::ErrorKind as LibErrorKind;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey, Validation};
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any parsing: real ones are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A verified token: `sub` as the user id and every other claim as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The `sub` claim.
    pub user_id: String,
    /// All claims except `sub` (`exp`, `iss`, custom ones…).
    pub extra: Map<String, Value>,
}

/// Why a token was refused; [`JwtError::status`] gives the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// No token in any configured place.
    #[error("missing token")]
    MissingToken,
    /// Not a well-formed JWT, an algorithm that is not allowed, or a claim of the wrong type.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The signature does not match the key.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// `aud` does not name the configured audience, or names one when none is configured.
    #[error("token audience not accepted")]
    WrongAudience,
    /// A required claim is absent.
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// The token is valid but the configured policy does not allow this user.
    #[error("token not allowed")]
    Forbidden,
}

impl JwtError {
    /// 403 Forbidden for [`JwtError::Forbidden`] (who you are is known, and not welcome); 401
    /// Unauthorized for everything else (RFC 6750 section 3.1: `invalid_token`).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub struct InvalidKey(pub String);

/// The [`JwtVerifier::allow_if`] predicate.
type AllowPolicy = dyn Fn(&Claims) -> bool + Send + Sync;

/// Verifies tokens against one key. Build it once; `verify*` take `&self` and can run from many
/// connections at once.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
    require_exp: bool,
    query_param: Option<String>,
    cookie: Option<String>,
    allow: Option<Arc<AllowPolicy>>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("query_param", &self.query_param)
            .field("cookie", &self.cookie)
            .field("allow", &self.allow.as_ref().map(|_| "<policy>"))
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// HS256 tokens signed with `secret`. RFC 7518 section 3.2 requires at least 32 bytes; a
    /// shorter secret is accepted (test setups use them) with a warning in the log.
    pub fn hs256(secret: &[u8]) -> Self {
        if secret.len() < 32 {
            tracing::warn!(
                len = secret.len(),
                "HS256 secret shorter than 32 bytes (RFC 7518 section 3.2)"
            );
        }
        Self::with_key(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// RS256 tokens, checked with an RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Self, InvalidKey> {
        let key = DecodingKey::from_rsa_pem(public_key_pem).map_err(|e| InvalidKey(e.to_string()))?;
        // Parse the key now so a bad one fails here, not on every token.
        if let DecodingKeyKind::SecretOrDer(der) = key.kind() {
            if !looks_like_rsa_public_key(der) {
                return Err(InvalidKey("not an RSA public key".into()));
            }
        }
        Ok(Self::with_key(key, Algorithm::RS256))
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm) -> Self {
        install_provider();
        let mut validation = Validation::new(algorithm);
        // Time claims are checked by `check_times` against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        Self {
            key,
            validation,
            leeway: Duration::from_secs(60),
            require_exp: true,
            query_param: Some("token".into()),
            cookie: None,
            allow: None,
        }
    }

    /// Accepts only tokens whose `iss` is `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self
    }

    /// Accepts only tokens whose `aud` names `audience`. Without one, tokens that carry an `aud`
    /// are refused (RFC 7519 section 4.1.3).
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts tokens without `exp`, which then never expire. Off by default.
    #[must_use]
    pub fn dangerous_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// The query parameter the token may come in (default `token`); `None` turns it off.
    #[must_use]
    pub fn query_param(mut self, name: Option<&str>) -> Self {
        self.query_param = name.map(str::to_owned);
        self
    }

    /// The cookie the token may come in (default none; see the module docs before turning it on).
    #[must_use]
    pub fn cookie(mut self, name: Option<&str>) -> Self {
        self.cookie = name.map(str::to_owned);
        self
    }

    /// Refuses valid tokens for which `allow` says no, with [`JwtError::Forbidden`] (403).
    #[must_use]
    pub fn allow_if(mut self, allow: impl Fn(&Claims) -> bool + Send + Sync + 'static) -> Self {
        self.allow = Some(Arc::new(allow));
        self
    }

    /// Finds the token in a handshake: bearer header, then query parameter, then cookie.
    pub fn token_from<'a>(&self, query: Option<&'a str>, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
        if let Some(token) = super::bearer(headers) {
            return Some(Cow::Borrowed(token));
        }
        if let (Some(name), Some(query)) = (&self.query_param, query) {
            if let Some(token) = query_value(query, name) {
                return Some(token);
            }
        }
        let name = self.cookie.as_deref()?;
        super::cookie(headers, name).map(Cow::Borrowed)
    }

    /// Finds and verifies the token of a handshake at time `now`.
    pub fn authenticate(&self, query: Option<&str>, headers: &HeaderMap, now: SystemTime) -> Result<Claims, JwtError> {
        let token = self.token_from(query, headers).ok_or(JwtError::MissingToken)?;
        self.verify_at(&token, now)
    }

    /// Verifies `token` against the system clock.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_at(token, SystemTime::now())
    }

    /// Verifies `token` as of `now`: signature, algorithm, `iss`/`aud` when configured, `exp`
    /// and `nbf`, a string `sub`, then the [`allow_if`](Self::allow_if) policy.
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<Claims, JwtError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(JwtError::MissingToken);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Invalid("token too long".into()));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation).map_err(map_error)?;
        let mut extra = data.claims;
        self.check_times(&extra, now)?;
        let user_id = match extra.remove("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub,
            Some(_) => return Err(JwtError::Invalid("sub is not a non-empty string".into())),
            None => return Err(JwtError::MissingClaim("sub")),
        };
        let claims = Claims { user_id, extra };
        match &self.allow {
            Some(allow) if !allow(&claims) => Err(JwtError::Forbidden),
            _ => Ok(claims),
        }
    }

    fn check_times(&self, claims: &Map<String, Value>, now: SystemTime) -> Result<(), JwtError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
        let leeway = self.leeway.as_secs_f64();
        match numeric_date(claims, "exp")? {
            Some(exp) if now > exp + leeway => return Err(JwtError::Expired),
            Some(_) => {}
            None if self.require_exp => return Err(JwtError::MissingClaim("exp")),
            None => {}
        }
        match numeric_date(claims, "nbf")? {
            Some(nbf) if nbf - leeway > now => Err(JwtError::NotYetValid),
            _ => Ok(()),
        }
    }
}

/// A NumericDate claim: absent, or a JSON number; anything else makes the token invalid.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or_else(|| JwtError::Invalid(format!("{name} is not a number"))),
    }
}

fn map_error(error: jsonwebtoken::errors::Error) -> JwtError {
    match error.kind() {
        LibErrorKind::InvalidSignature => JwtError::BadSignature,
        LibErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        LibErrorKind::InvalidAudience => JwtError::WrongAudience,
        LibErrorKind::ExpiredSignature => JwtError::Expired,
        LibErrorKind::ImmatureSignature => JwtError::NotYetValid,
        LibErrorKind::MissingRequiredClaim(claim) if claim == "iss" => JwtError::MissingClaim("iss"),
        LibErrorKind::MissingRequiredClaim(claim) if claim == "aud" => JwtError::MissingClaim("aud"),
        LibErrorKind::InvalidAlgorithm => JwtError::Invalid("algorithm not allowed".into()),
        _ => JwtError::Invalid(error.to_string()),
    }
}

/// The first `name=value` of a query string, percent-decoded (a malformed escape is kept as
/// is); an empty value, or one that is not UTF-8 once decoded, is no token.
fn query_value<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    super::query_param(query, name).filter(|value| !value.is_empty() && !value.contains('\u{FFFD}'))
}

/// An RSAPublicKey (PKCS#1) is a DER SEQUENCE whose first INTEGER is the modulus; an
/// RSAPrivateKey, which `jsonwebtoken` also accepts here, starts with the version `0`. `ring`
/// checks the rest when it verifies.
fn looks_like_rsa_public_key(der: &[u8]) -> bool {
    let header = match der {
        [0x30, len, ..] if *len < 0x80 => 2,
        [0x30, len, ..] => 2 + usize::from(len & 0x7f),
        _ => return false,
    };
    der.len() > 64 && der.get(header..header + 3) != Some(&[0x02, 0x01, 0x00][..])
}

fn install_provider() {
    // Fails when a provider is already installed (ours or the program's): either is fine.
    let _ = CryptoProvider::install_default(&RING_PROVIDER);
}

/// HMAC and RSA (PKCS#1 v1.5 and PSS) over `ring`. ECDSA and EdDSA are not offered: the hub
/// needs none, and their factories answer with an error rather than a panic.
static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: ring_signer,
    verifier_factory: ring_verifier,
    jwk_utils: JwkUtils {
        extract_rsa_public_key_components: rsa_public_components,
        extract_ec_public_key_coordinates: |_, _| Err(LibErrorKind::InvalidEcdsaKey.into()),
        compute_digest: digest,
    },
};

type LibResult<T> = jsonwebtoken::errors::Result<T>;

fn ring_verifier(algorithm: &Algorithm, key: &DecodingKey) -> LibResult<Box<dyn jwt_crypto::JwtVerifier>> {
    let key = match (ring_algorithm(*algorithm), key.family()) {
        (RingAlgorithm::Hmac(hmac), AlgorithmFamily::Hmac) => {
            RingKey::Hmac(ring::hmac::Key::new(hmac, key.try_get_hmac_secret()?))
        }
        (RingAlgorithm::Rsa(params, _), AlgorithmFamily::Rsa) => RingKey::RsaPublic(params, key.clone()),
        (RingAlgorithm::Unsupported, _) => return Err(LibErrorKind::InvalidAlgorithm.into()),
        _ => return Err(LibErrorKind::InvalidKeyFormat.into()),
    };
    Ok(Box::new(Ring {
        algorithm: *algorithm,
        key,
    }))
}

fn ring_signer(algorithm: &Algorithm, key: &EncodingKey) -> LibResult<Box<dyn jwt_crypto::JwtSigner>> {
    let key = match (ring_algorithm(*algorithm), key.family()) {
        (RingAlgorithm::Hmac(hmac), AlgorithmFamily::Hmac) => {
            RingKey::Hmac(ring::hmac::Key::new(hmac, key.try_get_hmac_secret()?))
        }
        (RingAlgorithm::Rsa(_, encoding), AlgorithmFamily::Rsa) => {
            let pair = ring::signature::RsaKeyPair::from_der(key.inner())
                .map_err(|e| LibErrorKind::InvalidRsaKey(e.to_string()))?;
            RingKey::RsaPrivate(encoding, pair)
        }
        (RingAlgorithm::Unsupported, _) => return Err(LibErrorKind::InvalidAlgorithm.into()),
        _ => return Err(LibErrorKind::InvalidKeyFormat.into()),
    };
    Ok(Box::new(Ring {
        algorithm: *algorithm,
        key,
    }))
}

enum RingAlgorithm {
    Hmac(ring::hmac::Algorithm),
    Rsa(
        &'static ring::signature::RsaParameters,
        &'static dyn ring::signature::RsaEncoding,
    ),
    Unsupported,
}

fn ring_algorithm(algorithm: Algorithm) -> RingAlgorithm {
    use RingAlgorithm::{Hmac, Rsa};
    use ring::signature as sig;
    match algorithm {
        Algorithm::HS256 => Hmac(ring::hmac::HMAC_SHA256),
        Algorithm::HS384 => Hmac(ring::hmac::HMAC_SHA384),
        Algorithm::HS512 => Hmac(ring::hmac::HMAC_SHA512),
        Algorithm::RS256 => Rsa(&sig::RSA_PKCS1_2048_8192_SHA256, &sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Rsa(&sig::RSA_PKCS1_2048_8192_SHA384, &sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Rsa(&sig::RSA_PKCS1_2048_8192_SHA512, &sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Rsa(&sig::RSA_PSS_2048_8192_SHA256, &sig::RSA_PSS_SHA256),
        Algorithm::PS384 => Rsa(&sig::RSA_PSS_2048_8192_SHA384, &sig::RSA_PSS_SHA384),
        Algorithm::PS512 => Rsa(&sig::RSA_PSS_2048_8192_SHA512, &sig::RSA_PSS_SHA512),
        _ => RingAlgorithm::Unsupported,
    }
}

/// One key bound to one algorithm.
struct Ring {
    algorithm: Algorithm,
    key: RingKey,
}

enum RingKey {
    Hmac(ring::hmac::Key),
    RsaPublic(&'static ring::signature::RsaParameters, DecodingKey),
    RsaPrivate(&'static dyn ring::signature::RsaEncoding, ring::signature::RsaKeyPair),
}

impl Verifier<Vec<u8>> for Ring {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), SignatureError> {
        let verified = match &self.key {
            // Constant-time comparison inside `ring`.
            RingKey::Hmac(key) => ring::hmac::verify(key, msg, signature),
            RingKey::RsaPublic(params, key) => match key.kind() {
                DecodingKeyKind::SecretOrDer(der) => {
                    ring::signature::UnparsedPublicKey::new(*params, der).verify(msg, signature)
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    ring::signature::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
                }
            },
            RingKey::RsaPrivate(..) => return Err(SignatureError::new()),
        };
        verified.map_err(|_| SignatureError::new())
    }
}

impl Signer<Vec<u8>> for Ring {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignatureError> {
        match &self.key {
            RingKey::Hmac(key) => Ok(ring::hmac::sign(key, msg).as_ref().to_vec()),
            RingKey::RsaPrivate(encoding, pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                let rng = ring::rand::SystemRandom::new();
                pair.sign(*encoding, &rng, msg, &mut signature)
                    .map_err(|_| SignatureError::new())?;
                Ok(signature)
            }
            RingKey::RsaPublic(..) => Err(SignatureError::new()),
        }
    }
}

impl jwt_crypto::JwtVerifier for Ring {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl jwt_crypto::JwtSigner for Ring {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn rsa_public_components(private_der: &[u8]) -> LibResult<(Vec<u8>, Vec<u8>)> {
    let pair =
        ring::signature::RsaKeyPair::from_der(private_der).map_err(|e| LibErrorKind::InvalidRsaKey(e.to_string()))?;
    let components = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Vec<u8> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
    };
    ring::digest::digest(algorithm, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    /// Test-only RSA key (generated for these tests, never used elsewhere), base64 on one line.
    const TEST_RSA_PRIVATE_PEM: &str = concat!(
        "-----BEGIN PRIVATE KEY-----\n",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCVA6760mQ4Fn5XV9DrLU65av2cfarcto7G6YWYwMduKTD0ovl7D8eKT3oiRb7opi9yVWqdfsgfcQb/GW3bQUsjGdxiqCzc78gBTzgfQq8fG5ID4x/1JeSjFYILKrFArXlUmeSLrmn7CkadNqXa2w+zm/Agt3ZwoLcLGmkMg9NQFR4X7Fk7XOG1OqcaLdvH2dEdJn2f1H94cihrMaiOKq9WBmMn2YzNym1tPa7EhQnGZRK2xpklw2lK4ZMOo0MJVupGtxH0kluED3xzOMPn1bxSA+fTK+ao8oj96/gW234N1ExDs8ZgN7NydY2ERiUb5ezZJL7/xzgNRpploDG4v1jdAgMBAAECggEAQF3FdQFxGcsZirfbfeJluXDOGI0tw0W1+ZTASOGoo1x2kY1eLzp7KjK3Ylt3Ib47C2t68InlfrNPXtyIl+clwgU3LYRQUKTgYzRpXRNsWocJtNUkJjvWfV1afWFVDEeCe7k3v+A4ViAzrVAAJz9tklsex7sHlZHOTyT60FWW7uVvfWWTZYpAUp1wAL0YAj4jssAmmLToi/QlBRH8jXo0J5WHl6ApxW2u5Nf3nXVubEeDcfu8i0GyLLvT5Zc5xt7iBndl2QSsAtDKweZ7qbREtUW8shFzPdjL8Cl5GCekfwMl1Kc/0VZ2VvxPBS0g4b6drvXrce6ULFMnEOVDSDEArwKBgQDIpQJ9XSnVhFQRW8VPiLp1VD0DaVeacvsE/c7/uxpBv85hTpjBSjzrlNrzvH99d90qzQ73Bzk8bZlAB+eS/9mQbKnWMOL5P0xVDT3wvEd+ykEYsrNTQWYkTXa0SRXPJN8Q5SciiPVjRZxQpqwqWwsSZH+mQwT7gl5o8FGgWQSqrwKBgQC+ICwGg8ZgYU1dVclYH3hKQ7q3XnDWdDdJ+gHlWd+oI5gju3CYBoWIXqR/bsLjFWaiRWn3ICksfDZq5YjNefVv1SoegqVlNlg9YXS8aBrpt6ZcAib8LTJaF0xh9jdCnIvDIxJGxZKOfOuhsXJVYGiyaDR8ndSpPjQ4dQ4kcbooMwKBgAOaew33U14DT2M0a7m+8eJTjfj2tl0OvZVcXZBYMuOFZ1Z2C+ZEyA1PEhOYig2dznoLTr5/AbclHMB6o90O/UBLw00Wea0SRvOsFjWxm/MZ/MtNwky3evch8QTR3zNmLR9njilfnlCXGnSUWbk1A2DkLyq0P22o7LsjvcOMdbn/AoGAS3KK5f7u/xo90DcV0nGSk63y74d7sa6mriWXEQOsPJX7btqYIMwdu3MLRkKW9fRtKSHwng/WJwAXvC3gLuIh4sItl7PynIqHU7xTzdxmKa8mRkbYX6Qz4gpy1kEVxspGsCY/v3Px57ds7lpza6v5gCrYAUfEt3Cm2myhMxcqb38CgYEAko8N8dyKCDdHCcwzc8CzaK9/4ESwkbEUHduoNC+FQnmlmp3fG+MzcU/s8Fc0/d0aZcup+dYsntys/QaXWuPpopeCT7DB4Ma1GRHRbQRkRbNv1d6hImbx1lRWb280iOw27KWwRTh7Rq8eids/6N30nUoW2yNDAx+OI0rdcQOg4po=",
        "\n-----END PRIVATE KEY-----\n"
    );
    const TEST_RSA_PUBLIC_PEM: &str = concat!(
        "-----BEGIN PUBLIC KEY-----\n",
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlQOu+tJkOBZ+V1fQ6y1OuWr9nH2q3LaOxumFmMDHbikw9KL5ew/Hik96IkW+6KYvclVqnX7IH3EG/xlt20FLIxncYqgs3O/IAU84H0KvHxuSA+Mf9SXkoxWCCyqxQK15VJnki65p+wpGnTal2tsPs5vwILd2cKC3CxppDIPTUBUeF+xZO1zhtTqnGi3bx9nRHSZ9n9R/eHIoazGojiqvVgZjJ9mMzcptbT2uxIUJxmUStsaZJcNpSuGTDqNDCVbqRrcR9JJbhA98czjD59W8UgPn0yvmqPKI/ev4Ftt+DdRMQ7PGYDezcnWNhEYlG+Xs2SS+/8c4DUaaZaAxuL9Y3QIDAQAB",
        "\n-----END PUBLIC KEY-----\n"
    );
    const TEST_RSA_PUBLIC_PKCS1_PEM: &str = concat!(
        "-----BEGIN RSA PUBLIC KEY-----\n",
        "MIIBCgKCAQEAlQOu+tJkOBZ+V1fQ6y1OuWr9nH2q3LaOxumFmMDHbikw9KL5ew/Hik96IkW+6KYvclVqnX7IH3EG/xlt20FLIxncYqgs3O/IAU84H0KvHxuSA+Mf9SXkoxWCCyqxQK15VJnki65p+wpGnTal2tsPs5vwILd2cKC3CxppDIPTUBUeF+xZO1zhtTqnGi3bx9nRHSZ9n9R/eHIoazGojiqvVgZjJ9mMzcptbT2uxIUJxmUStsaZJcNpSuGTDqNDCVbqRrcR9JJbhA98czjD59W8UgPn0yvmqPKI/ev4Ftt+DdRMQ7PGYDezcnWNhEYlG+Xs2SS+/8c4DUaaZaAxuL9Y3QIDAQAB",
        "\n-----END RSA PUBLIC KEY-----\n"
    );
    const SECRET: &[u8] = b"a test secret that is long enough";
    /// 2026-01-01T00:00:00Z: tests run on this fixed clock.
    const NOW: u64 = 1_767_225_600;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn hs(claims: &Value) -> String {
        install_provider();
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn rs(alg: Algorithm, claims: &Value) -> String {
        install_provider();
        let key = EncodingKey::from_rsa_pem(TEST_RSA_PRIVATE_PEM.as_bytes()).unwrap();
        encode(&Header::new(alg), claims, &key).unwrap()
    }

    fn valid() -> Value {
        json!({"sub": "alice", "exp": NOW + 600, "role": "admin", "rooms": ["a", "b"]})
    }

    #[test]
    fn hs256_round_trip_keeps_other_claims() {
        let verifier = JwtVerifier::hs256(SECRET);
        let claims = verifier.verify_at(&hs(&valid()), at(NOW)).unwrap();
        assert_eq!(claims.user_id, "alice");
        assert_eq!(claims.extra.get("role"), Some(&json!("admin")));
        assert_eq!(claims.extra.get("rooms"), Some(&json!(["a", "b"])));
        assert_eq!(claims.extra.get("exp"), Some(&json!(NOW + 600)));
        assert!(!claims.extra.contains_key("sub"));
    }

    #[test]
    fn rs256_with_both_pem_forms() {
        let token = rs(Algorithm::RS256, &valid());
        for pem in [TEST_RSA_PUBLIC_PEM, TEST_RSA_PUBLIC_PKCS1_PEM] {
            let verifier = JwtVerifier::rs256_pem(pem.as_bytes()).unwrap();
            assert_eq!(verifier.verify_at(&token, at(NOW)).unwrap().user_id, "alice");
        }
    }

    #[test]
    fn table_of_refusals() {
        let hs_v = JwtVerifier::hs256(SECRET).leeway(Duration::from_secs(30));
        let rs_v = JwtVerifier::rs256_pem(TEST_RSA_PUBLIC_PEM.as_bytes()).unwrap();
        let good = hs(&valid());
        let (head, rest) = good.split_once('.').unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        let flipped = format!(
            "{head}.{body}.{}{}",
            if sig.starts_with('A') { "B" } else { "A" },
            &sig[1..]
        );
        let other = encode(&Header::default(), &valid(), &EncodingKey::from_secret(b"other")).unwrap();
        // The classic confusion attack: HS256 signed with the RSA public key as the secret.
        let pem_secret = EncodingKey::from_secret(TEST_RSA_PUBLIC_PEM.as_bytes());
        let confused = encode(&Header::default(), &valid(), &pem_secret).unwrap();
        // {"alg":"none","typ":"JWT"}
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.");
        let exp = NOW + 9;
        let refuse = |name: &str, verifier: &JwtVerifier, token: &str, now: u64, expected: JwtError| {
            let got = verifier.verify_at(token, at(now)).expect_err(name);
            match (&got, &expected) {
                // Messages from the library are not part of the contract, the variant is.
                (JwtError::Invalid(_), JwtError::Invalid(e)) if e.is_empty() => {}
                _ => assert_eq!(got, expected, "{name}"),
            }
            assert_eq!(got.status(), StatusCode::UNAUTHORIZED, "{name}");
        };
        let invalid = |why: &str| JwtError::Invalid(why.into());
        refuse("tampered signature", &hs_v, &flipped, NOW, JwtError::BadSignature);
        refuse("other secret", &hs_v, &other, NOW, JwtError::BadSignature);
        refuse("expired", &hs_v, &good, NOW + 631, JwtError::Expired);
        let early = hs(&json!({"sub": "a", "exp": NOW + 99, "nbf": NOW + 31}));
        refuse("not yet valid", &hs_v, &early, NOW, JwtError::NotYetValid);
        let exp_string = hs(&json!({"sub": "a", "exp": "never"}));
        refuse(
            "exp as a string",
            &hs_v,
            &exp_string,
            NOW,
            invalid("exp is not a number"),
        );
        let nbf_string = hs(&json!({"sub": "a", "exp": exp, "nbf": "99999999999"}));
        refuse(
            "nbf as a string",
            &hs_v,
            &nbf_string,
            NOW,
            invalid("nbf is not a number"),
        );
        refuse(
            "no exp",
            &hs_v,
            &hs(&json!({"sub": "a"})),
            NOW,
            JwtError::MissingClaim("exp"),
        );
        refuse(
            "no sub",
            &hs_v,
            &hs(&json!({"exp": exp})),
            NOW,
            JwtError::MissingClaim("sub"),
        );
        let numeric_sub = hs(&json!({"sub": 7, "exp": exp}));
        refuse(
            "numeric sub",
            &hs_v,
            &numeric_sub,
            NOW,
            invalid("sub is not a non-empty string"),
        );
        let not_allowed = invalid("algorithm not allowed");
        refuse("HS256 to an RS256 verifier", &rs_v, &confused, NOW, not_allowed.clone());
        refuse(
            "RS256 to an HS256 verifier",
            &hs_v,
            &rs(Algorithm::RS256, &valid()),
            NOW,
            not_allowed.clone(),
        );
        refuse(
            "RS512 to an RS256 verifier",
            &rs_v,
            &rs(Algorithm::RS512, &valid()),
            NOW,
            not_allowed,
        );
        refuse("alg none", &hs_v, &unsigned, NOW, invalid(""));
        let with_aud = hs(&json!({"sub": "a", "exp": exp, "aud": "x"}));
        refuse(
            "aud without a configured audience",
            &hs_v,
            &with_aud,
            NOW,
            JwtError::WrongAudience,
        );
        refuse("empty", &hs_v, "  ", NOW, JwtError::MissingToken);
        refuse("garbage", &hs_v, "not.a.jwt", NOW, invalid(""));
        refuse("two parts", &hs_v, "abc.def", NOW, invalid(""));
        refuse(
            "too long",
            &hs_v,
            &"a".repeat(MAX_TOKEN_LEN + 1),
            NOW,
            invalid("token too long"),
        );
    }

    #[test]
    fn leeway_applies_both_ways() {
        let verifier = JwtVerifier::hs256(SECRET).leeway(Duration::from_secs(30));
        let token = hs(&json!({"sub": "a", "exp": NOW, "nbf": NOW + 20}));
        assert!(verifier.verify_at(&token, at(NOW)).is_ok());
        assert!(verifier.verify_at(&token, at(NOW + 30)).is_ok());
        assert_eq!(verifier.verify_at(&token, at(NOW + 31)), Err(JwtError::Expired));
        assert_eq!(
            verifier.clone().leeway(Duration::ZERO).verify_at(&token, at(NOW)),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn issuer_audience_and_missing_exp() {
        let verifier = JwtVerifier::hs256(SECRET)
            .issuer("https://auth.example")
            .audience("hub");
        let ok = hs(&json!({"sub": "a", "exp": NOW + 9, "iss": "https://auth.example", "aud": ["other", "hub"]}));
        assert!(verifier.verify_at(&ok, at(NOW)).is_ok());
        let wrong_iss = hs(&json!({"sub": "a", "exp": NOW + 9, "iss": "https://evil", "aud": "hub"}));
        assert_eq!(verifier.verify_at(&wrong_iss, at(NOW)), Err(JwtError::WrongIssuer));
        let wrong_aud = hs(&json!({"sub": "a", "exp": NOW + 9, "iss": "https://auth.example", "aud": "web"}));
        assert_eq!(verifier.verify_at(&wrong_aud, at(NOW)), Err(JwtError::WrongAudience));
        let no_exp = hs(&json!({"sub": "a"}));
        let lax = JwtVerifier::hs256(SECRET).dangerous_allow_missing_exp();
        assert!(lax.verify_at(&no_exp, at(NOW)).is_ok());
    }

    #[test]
    fn policy_refusal_is_403() {
        let verifier = JwtVerifier::hs256(SECRET).allow_if(|claims| claims.extra.get("role") == Some(&json!("admin")));
        assert!(verifier.verify_at(&hs(&valid()), at(NOW)).is_ok());
        let guest = hs(&json!({"sub": "bob", "exp": NOW + 9, "role": "guest"}));
        let err = verifier.verify_at(&guest, at(NOW)).unwrap_err();
        assert_eq!(err, JwtError::Forbidden);
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn token_sources() {
        let token = hs(&valid());
        let verifier = JwtVerifier::hs256(SECRET).cookie(Some("jwt"));
        let mut headers = HeaderMap::new();
        assert_eq!(
            verifier.authenticate(None, &headers, at(NOW)),
            Err(JwtError::MissingToken)
        );
        assert_eq!(
            verifier.authenticate(Some("a=1&token="), &headers, at(NOW)),
            Err(JwtError::MissingToken)
        );
        // Query parameter, plain and percent-encoded.
        let query = format!("user=1&token={token}");
        assert_eq!(
            verifier.authenticate(Some(&query), &headers, at(NOW)).unwrap().user_id,
            "alice"
        );
        let encoded = format!("token={}", token.replace('.', "%2E"));
        assert_eq!(
            verifier.token_from(Some(&encoded), &headers).as_deref(),
            Some(token.as_str())
        );
        // Cookie, also quoted.
        headers.insert(http::header::COOKIE, format!("a=b; jwt=\"{token}\"").parse().unwrap());
        assert_eq!(verifier.token_from(None, &headers).as_deref(), Some(token.as_str()));
        // The bearer header wins over the others.
        headers.insert(http::header::AUTHORIZATION, "bearer  from-header ".parse().unwrap());
        assert_eq!(
            verifier.token_from(Some(&query), &headers).as_deref(),
            Some("from-header")
        );
        headers.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(verifier.token_from(None, &headers).as_deref(), Some(token.as_str()));
        // Sources can be turned off; cookies are off unless named.
        let plain = JwtVerifier::hs256(SECRET).query_param(None);
        assert_eq!(plain.token_from(Some(&query), &headers), None);
    }

    #[test]
    fn query_decoding_edge_cases() {
        assert_eq!(query_value("token=a%2", "token").as_deref(), Some("a%2"));
        assert_eq!(query_value("token=%zz%41+b", "token").as_deref(), Some("%zzA b"));
        assert_eq!(query_value("token=%ff", "token"), None);
        assert_eq!(query_value("tokenx=1&token", "token"), None);
        assert_eq!(query_value("x=1&token=2&token=3", "token").as_deref(), Some("2"));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(JwtVerifier::rs256_pem(b"not a pem").is_err());
        assert!(JwtVerifier::rs256_pem(TEST_RSA_PRIVATE_PEM.as_bytes()).is_err());
    }

    #[test]
    fn provider_digest_and_components() {
        let digest = digest(b"abc", ThumbprintHash::SHA256);
        assert_eq!(digest.len(), 32);
        assert!(rsa_public_components(b"junk").is_err());
    }
}
