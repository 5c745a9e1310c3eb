//! Channel names: `(app, name)` pairs, and the kind a name's prefix gives a channel.

use std::fmt;
use std::sync::Arc;

/// The app every protocol without apps of its own (native JSON, tank) uses.
pub const DEFAULT_APP: &str = "default";

/// A channel: an app and a name. Cheap to clone (two reference counts).
///
/// Protocols without apps use [`DEFAULT_APP`], so a publish to `("default", "news")` reaches
/// native and tank subscribers of `news` alike.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    app: Arc<str>,
    name: Arc<str>,
}

impl ChannelKey {
    /// A channel of `app`.
    pub fn new(app: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            app: app.into(),
            name: name.into(),
        }
    }

    /// A channel of the default app.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        Self::new(DEFAULT_APP, name)
    }

    /// The app.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The name within the app.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Public, private or presence, from the name's prefix.
    pub fn kind(&self) -> ChannelKind {
        ChannelKind::of(&self.name)
    }
}

impl fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

impl fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&str> for ChannelKey {
    fn from(name: &str) -> Self {
        Self::named(name)
    }
}

/// What a channel's name prefix makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-…`: subscribing needs the [`Authorizer`](crate::auth::Authorizer)'s yes.
    Private,
    /// `presence-…`: private, and the hub tracks which users are in it.
    Presence,
}

impl ChannelKind {
    /// The kind of a channel called `name`.
    pub fn of(name: &str) -> Self {
        if name.starts_with("presence-") {
            Self::Presence
        } else if name.starts_with("private-") {
            Self::Private
        } else {
            Self::Public
        }
    }

    /// Whether subscribing needs authorization (private and presence channels).
    pub fn is_protected(self) -> bool {
        !matches!(self, Self::Public)
    }
}
