//! Pusher channel names: which characters and lengths are allowed, and what a name's prefix
//! makes a channel (private, presence, encrypted, cache).

/// The longest channel name.
pub const MAX_CHANNEL_NAME: usize = 200;

/// The prefix of the channel a signed-in user receives server events on.
pub const USER_CHANNEL_PREFIX: &str = "#server-to-user-";

/// What a channel name makes a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelType {
    /// Subscribing needs a signature (`private-`, `presence-`).
    pub private: bool,
    /// Members are tracked (`presence-`).
    pub presence: bool,
    /// End-to-end encrypted (`private-encrypted-`): relayed opaquely, no client events.
    pub encrypted: bool,
    /// The last event is kept and replayed on subscribe (`cache-`, `private-cache-`,
    /// `presence-cache-`, `private-encrypted-cache-`).
    pub cache: bool,
}

impl ChannelType {
    /// The type of `name`.
    pub fn of(name: &str) -> Self {
        let presence = name.starts_with("presence-");
        let encrypted = name.starts_with("private-encrypted-");
        let private = presence || name.starts_with("private-");
        let cache = name.starts_with("cache-")
            || name.starts_with("private-cache-")
            || name.starts_with("presence-cache-")
            || name.starts_with("private-encrypted-cache-");
        Self {
            private,
            presence,
            encrypted,
            cache,
        }
    }
}

/// Whether `name` is a channel clients may name: 1 to 200 of `A-Za-z0-9_-=@,.;`. Names starting
/// with `#` are reserved for the server (see [`user_channel`]).
pub fn is_valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';'))
}

/// The user id of a `#server-to-user-<id>` channel.
pub fn user_channel(name: &str) -> Option<&str> {
    name.strip_prefix(USER_CHANNEL_PREFIX).filter(|id| !id.is_empty())
}

/// Whether `name` is an event name the HTTP API accepts (1 to 200 bytes).
pub fn is_valid_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_CHANNEL_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_channel("my-channel_1=@,.;"));
        assert!(is_valid_channel(&"a".repeat(200)));
        assert!(!is_valid_channel(&"a".repeat(201)));
        assert!(!is_valid_channel(""));
        assert!(!is_valid_channel("a b"));
        assert!(!is_valid_channel("a:b"));
        assert!(!is_valid_channel("é"));
        assert!(!is_valid_channel("#server-to-user-1"));
        assert_eq!(user_channel("#server-to-user-42"), Some("42"));
        assert_eq!(user_channel("#server-to-user-"), None);
        assert_eq!(user_channel("server-to-user-1"), None);
    }

    #[test]
    fn types() {
        let t = ChannelType::of;
        assert_eq!(
            t("news"),
            ChannelType {
                private: false,
                presence: false,
                encrypted: false,
                cache: false
            }
        );
        assert!(t("private-x").private && !t("private-x").presence);
        assert!(t("presence-x").private && t("presence-x").presence);
        assert!(t("private-encrypted-x").encrypted && t("private-encrypted-x").private);
        assert!(t("cache-x").cache && !t("cache-x").private);
        assert!(t("private-cache-x").cache && t("private-cache-x").private);
        assert!(t("presence-cache-x").cache && t("presence-cache-x").presence);
        assert!(t("private-encrypted-cache-x").cache && t("private-encrypted-cache-x").encrypted);
        assert!(!t("presencex").private);
    }
}
