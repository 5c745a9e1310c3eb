//! Matching a request to a route (host, then the longest path prefix) and rewriting its path.

use std::sync::Arc;

use crate::balance::Pool;
use crate::config::RouteConfig;
use crate::metrics::Counters;

/// A route ready to serve.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) config: RouteConfig,
    pub(crate) pool: Arc<Pool>,
    pub(crate) counters: Arc<Counters>,
}

impl Route {
    /// The key naming this route in metrics.
    pub(crate) fn key(config: &RouteConfig) -> String {
        match &config.host {
            Some(host) => format!("{host}{}", config.path),
            None => config.path.clone(),
        }
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.config.host {
            match host {
                Some(host) if host_without_port(host).eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        if self.config.exact {
            return path == self.config.path;
        }
        is_prefix(&self.config.path, path)
    }

    /// Whether `path` passes `allowed_paths`.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.config.allowed_paths.is_empty() || self.config.allowed_paths.iter().any(|p| p == path)
    }

    /// Whether `origin` passes `allowed_origins`.
    pub(crate) fn allows_origin(&self, origin: Option<&str>) -> bool {
        let allowed = &self.config.allowed_origins;
        if allowed.is_empty() {
            return true;
        }
        let Some(origin) = origin else { return false };
        allowed.iter().any(|pattern| origin_matches(pattern, origin))
    }

    /// The path (and query) to send to the backend.
    pub(crate) fn rewrite(&self, path: &str, query: Option<&str>) -> String {
        let path = if self.config.strip_prefix {
            let rest = path
                .strip_prefix(self.config.path.trim_end_matches('/'))
                .unwrap_or(path);
            if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            }
        } else {
            path.to_owned()
        };
        match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        }
    }
}

/// The route for a request: among those matching the host, the longest path wins; routes
/// with a host beat routes without at equal length.
pub(crate) fn find<'a>(routes: &'a [Route], host: Option<&str>, path: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.matches(host, path))
        .max_by_key(|r| (r.config.path.len(), r.config.host.is_some(), r.config.exact))
}

/// Whole-segment prefix: `/ws` matches `/ws`, `/ws/x`, but not `/wsx`.
fn is_prefix(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[');
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `*` anywhere in `pattern` matches any run of characters (`https://*.example.com`).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern.eq_ignore_ascii_case(origin);
    };
    let origin = origin.to_ascii_lowercase();
    let (head, tail) = (head.to_ascii_lowercase(), tail.to_ascii_lowercase());
    origin.len() >= head.len() + tail.len() && origin.starts_with(&head) && origin.ends_with(&tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, host: Option<&str>, strip: bool) -> Route {
        let text = format!(
            "listen = \"127.0.0.1:1\"\n[[routes]]\npath = \"{path}\"\nupstream = \"u\"\nstrip_prefix = {strip}\n{}\n[[upstreams]]\nname = \"u\"\nurl = \"ws://127.0.0.1:2\"\n",
            host.map(|h| format!("host = \"{h}\"")).unwrap_or_default()
        );
        let config = crate::config::Config::parse(&text, "t").unwrap();
        Route {
            config: config.routes[0].clone(),
            pool: Arc::new(Pool::new("u", Default::default(), vec![])),
            counters: Arc::default(),
        }
    }

    #[test]
    fn longest_prefix_and_host() {
        let routes = [
            route("/", None, false),
            route("/ws", None, true),
            route("/ws", Some("a.test"), false),
        ];
        assert_eq!(find(&routes, None, "/wsx").map(|r| r.config.path.as_str()), Some("/"));
        let r = find(&routes, None, "/ws/chat").unwrap();
        assert!(r.config.host.is_none() && r.config.path == "/ws");
        let r = find(&routes, Some("A.test:8080"), "/ws/chat").unwrap();
        assert_eq!(r.config.host.as_deref(), Some("a.test"));
    }

    #[test]
    fn strip_prefix_keeps_a_path() {
        let r = route("/ws/chat", None, true);
        assert_eq!(r.rewrite("/ws/chat", None), "/");
        assert_eq!(r.rewrite("/ws/chat/room", Some("a=1")), "/room?a=1");
        assert_eq!(route("/ws/", None, true).rewrite("/ws/x", None), "/x");
    }

    #[test]
    fn origins() {
        assert!(origin_matches("https://*.example.com", "https://app.example.com"));
        assert!(!origin_matches("https://*.example.com", "https://example.org"));
        assert!(origin_matches("http://A.test", "http://a.test"));
    }
}
