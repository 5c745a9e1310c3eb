//! The cluster's channel figures for the HTTP API's channel queries. On one node the hub's own
//! figures are the whole truth; behind a broker each node sees only its own subscribers, so the
//! program reads the cluster's figures from the broker (asynchronously, which the sans-IO
//! handler cannot) and hands them in with [`Pusher::handle_with_figures`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request};

use super::Pusher;
use super::http_query::{decode, get, params};
use super::names::ChannelType;
use crate::channel::ChannelKey;

/// Channel figures of the whole cluster.
#[derive(Clone, Debug, Default)]
pub struct ChannelFigures {
    /// Every occupied channel with its subscription count (at least those of the app asked
    /// about).
    pub channels: Vec<(ChannelKey, u64)>,
    /// The user ids of the presence channels [`FiguresWanted::members_of`] names.
    pub members: HashMap<ChannelKey, Vec<Arc<str>>>,
}

impl ChannelFigures {
    pub(crate) fn subscriptions(&self, key: &ChannelKey) -> u64 {
        self.channels.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    }

    pub(crate) fn users(&self, key: &ChannelKey) -> &[Arc<str>] {
        self.members.get(key).map_or(&[], Vec::as_slice)
    }
}

/// What a request needs of [`ChannelFigures`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiguresWanted {
    /// The hub app (namespace) whose channels the request is about.
    pub app: Arc<str>,
    /// Presence channels whose members are needed.
    pub members_of: MembersOf,
}

/// Which presence channels' members a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembersOf {
    /// None.
    None,
    /// This one.
    Channel(ChannelKey),
    /// Every occupied presence channel of the app whose name starts with this.
    Prefix(String),
}

impl Pusher {
    /// What the cluster's figures must hold to answer `request`, a signed `GET` of
    /// `/apps/<id>/channels`, `/channels/<name>` or `/channels/<name>/users` of an enabled app;
    /// `None` for every other request (unsigned ones included, so that they cost the program
    /// no reads), which [`handle`](Self::handle) answers alone.
    pub fn figures_wanted(&self, request: &Request<Bytes>) -> Option<FiguresWanted> {
        if request.method() != Method::GET {
            return None;
        }
        let path = request.uri().path();
        let rest = path.strip_prefix("/apps/")?;
        let (app_id, route) = rest.split_once('/')?;
        let app = self.shared.app_by_id(app_id)?;
        let query = params(request.uri().query().unwrap_or_default());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.shared
            .check_signature(&app, request.method(), path, &query, request.body(), now)
            .ok()?;
        if !app.enabled {
            return None;
        }
        let wants_users = get(&query, "info").is_some_and(|info| info.split(',').any(|a| a == "user_count"));
        let segments: Vec<&str> = route.split('/').collect();
        let members_of = match segments.as_slice() {
            ["channels"] if wants_users => {
                MembersOf::Prefix(get(&query, "filter_by_prefix").unwrap_or_default().to_owned())
            }
            ["channels"] => MembersOf::None,
            ["channels", name] | ["channels", name, "users"] => {
                let name = decode(name);
                let users = segments.len() == 3 || wants_users;
                if users && ChannelType::of(&name).presence {
                    MembersOf::Channel(ChannelKey::new(Arc::clone(&app.namespace), name.as_str()))
                } else {
                    MembersOf::None
                }
            }
            _ => return None,
        };
        Some(FiguresWanted {
            app: Arc::clone(&app.namespace),
            members_of,
        })
    }
}
