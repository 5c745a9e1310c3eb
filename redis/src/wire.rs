//! The messages nodes exchange over pub/sub: a kind byte, then netstring-like fields
//! (`<decimal length>:<bytes>`), so the Lua scripts can build them too.

use std::sync::Arc;

use wsengine_hub::{ChannelKey, Data, Publication};

use crate::mirror::NodeChange;

/// A publication made on another node.
pub(crate) const PUBLICATION: u8 = b'P';
/// A whisper made on another node (same fields as a publication; delivered, not kept).
pub(crate) const WHISPER: u8 = b'W';
/// A node gained or lost a user in a presence channel (built by the Lua scripts).
pub(crate) const NODE_PRESENCE: u8 = b'N';
/// Close a user's connections on every node (control channel).
pub(crate) const CLOSE_USER: u8 = b'K';

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(field.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(field);
}

/// Reads fields one by one; `None` on anything malformed (a peer's bytes never panic us).
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn next_bytes(&mut self) -> Option<&'a [u8]> {
        let colon = self.rest.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(self.rest.get(..colon)?).ok()?.parse().ok()?;
        let start = colon.checked_add(1)?;
        let end = start.checked_add(len)?;
        let field = self.rest.get(start..end)?;
        self.rest = self.rest.get(end..)?;
        Some(field)
    }

    pub(crate) fn next_str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.next_bytes()?).ok()
    }
}

/// A decoded message: its kind, the node that sent it, and the rest of its fields.
pub(crate) fn split(payload: &[u8]) -> Option<(u8, &str, Fields<'_>)> {
    let (&kind, rest) = payload.split_first()?;
    let mut fields = Fields { rest };
    let node = fields.next_str()?;
    Some((kind, node, fields))
}

/// `P` (or `W`) node app name flags event data from; flags: `e` event present, `f` from present,
/// `j` data is JSON (else text).
pub(crate) fn encode_publication(kind: u8, node: &str, publication: &Publication) -> Vec<u8> {
    let data_text = publication.data.to_text();
    let mut out = Vec::with_capacity(64 + data_text.len());
    out.push(kind);
    put(&mut out, node.as_bytes());
    put(&mut out, publication.channel.app().as_bytes());
    put(&mut out, publication.channel.name().as_bytes());
    let mut flags = Vec::with_capacity(3);
    if publication.event.is_some() {
        flags.push(b'e');
    }
    if publication.from.is_some() {
        flags.push(b'f');
    }
    if publication.data.as_text().is_none() {
        flags.push(b'j');
    }
    put(&mut out, &flags);
    put(&mut out, publication.event.as_deref().unwrap_or("").as_bytes());
    put(&mut out, data_text.as_bytes());
    put(&mut out, publication.from.as_deref().unwrap_or("").as_bytes());
    out
}

pub(crate) fn decode_publication(mut fields: Fields<'_>) -> Option<Publication> {
    let app = fields.next_str()?;
    let name = fields.next_str()?;
    let flags = fields.next_bytes()?;
    let event = fields.next_str()?;
    let data = fields.next_str()?;
    let from = fields.next_str()?;
    let data = if flags.contains(&b'j') {
        Data::from_json_str(data).ok()?
    } else {
        Data::text(data)
    };
    let mut publication = Publication {
        channel: ChannelKey::new(app, name),
        event: None,
        data,
        from: None,
    };
    if flags.contains(&b'e') {
        publication.event = Some(event.to_owned());
    }
    if flags.contains(&b'f') {
        publication.from = Some(Arc::from(from));
    }
    Some(publication)
}

/// `N` node app name user present(1/0) info(JSON text, empty when none) version.
pub(crate) fn decode_node_presence(node: &str, mut fields: Fields<'_>) -> Option<(ChannelKey, NodeChange)> {
    let app = fields.next_str()?;
    let name = fields.next_str()?;
    let user = fields.next_str()?;
    let present = fields.next_str()? == "1";
    let info = fields.next_str()?;
    let version = fields.next_str()?.parse().ok()?;
    let info = if info.is_empty() {
        None
    } else {
        Data::from_json_str(info).ok()
    };
    Some((
        ChannelKey::new(app, name),
        NodeChange {
            version,
            node: Arc::from(node),
            user: Arc::from(user),
            present,
            info,
        },
    ))
}

/// `K` node user code reason.
pub(crate) fn encode_close_user(node: &str, user: &str, code: u16, reason: &str) -> Vec<u8> {
    let mut out = vec![CLOSE_USER];
    put(&mut out, node.as_bytes());
    put(&mut out, user.as_bytes());
    put(&mut out, code.to_string().as_bytes());
    put(&mut out, reason.as_bytes());
    out
}

pub(crate) fn decode_close_user(mut fields: Fields<'_>) -> Option<(String, u16, String)> {
    let user = fields.next_str()?.to_owned();
    let code = fields.next_str()?.parse().ok()?;
    let reason = fields.next_str()?.to_owned();
    Some((user, code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_round_trip() {
        let publication = Publication {
            channel: ChannelKey::new("app:1", "news:7"),
            event: Some("up:date".to_owned()),
            data: Data::from_json_str("{\"a\":[1,2]}").unwrap_or_else(|_| Data::text("")),
            from: Some(Arc::from("alice")),
        };
        let bytes = encode_publication(PUBLICATION, "n1", &publication);
        let (kind, node, fields) = split(&bytes).unwrap_or((0, "", Fields { rest: &[] }));
        assert_eq!((kind, node), (PUBLICATION, "n1"));
        assert_eq!(decode_publication(fields), Some(publication));
    }

    #[test]
    fn malformed_input_is_none() {
        for bad in [&b""[..], b"P", b"P9:ab", b"P1:a99999999999999999999:x", b"P1:a1:b"] {
            let decoded = split(bad).and_then(|(_, _, f)| decode_publication(f));
            assert!(decoded.is_none());
        }
    }
}
