//! An [`Authorizer`](super::Authorizer) over JSON Web Tokens (placeholder until wired).
