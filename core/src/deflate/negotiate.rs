//! Negotiating permessage-deflate (RFC 7692 §5, §7.1).

use super::{DeflateConfig, DeflateParams};
use crate::handshake::{ExtensionOffer, HandshakeError};

const NAME: &str = "permessage-deflate";

/// Server: the agreed parameters and the response header value for the first acceptable offer.
/// Offers for other extensions, and invalid or unsatisfiable permessage-deflate offers, are
/// declined (§5: "decline an offer ... that contains an unknown parameter or invalid value").
pub(crate) fn accept_offers(offers: &[ExtensionOffer], config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let config = config.sanitized();
    offers.iter().find_map(|offer| accept_offer(offer, &config))
}

/// Client: the offer to send.
pub(crate) fn offer(config: &DeflateConfig) -> String {
    let config = config.sanitized();
    let mut value = String::from(NAME);
    if config.server_no_context_takeover {
        value.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        value.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < 15 {
        value.push_str(&format!("; server_max_window_bits={}", config.server_max_window_bits));
    }
    if config.offer_client_max_window_bits {
        value.push_str("; client_max_window_bits");
        if config.client_max_window_bits < 15 {
            value.push_str(&format!("={}", config.client_max_window_bits));
        }
    }
    value
}

/// Client: checks the server's `Sec-WebSocket-Extensions` answer to [`offer`] (§5, §7.1).
/// `None` when the server declined compression.
pub(crate) fn check_response(
    accepted: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let config = config.sanitized();
    let invalid = |why: String| HandshakeError::InvalidExtensionResponse(why);
    let response = match accepted {
        [] => return Ok(None),
        [one] if one.name.eq_ignore_ascii_case(NAME) => one,
        [one] => return Err(HandshakeError::UnofferedExtension(one.name.clone())),
        [_, second, ..] => return Err(HandshakeError::UnofferedExtension(second.name.clone())),
    };
    let params = Params::parse(response).map_err(|e| invalid(e.into()))?;
    if config.server_no_context_takeover && !params.server_no_context_takeover {
        return Err(invalid(
            "server_no_context_takeover was requested but not agreed".into(),
        ));
    }
    let server_bits = match params.server_max_window_bits {
        None => 15,
        Some(None) => return Err(invalid("server_max_window_bits without a value".into())),
        Some(Some(bits)) if config.server_max_window_bits < 15 && bits > config.server_max_window_bits => {
            return Err(invalid(format!(
                "server_max_window_bits={bits} exceeds the {} offered",
                config.server_max_window_bits
            )));
        }
        Some(Some(bits)) => bits,
    };
    let client_bits = match params.client_max_window_bits {
        None => config.client_max_window_bits,
        Some(_) if !config.offer_client_max_window_bits => {
            return Err(invalid("client_max_window_bits was not offered".into()));
        }
        Some(None) => return Err(invalid("client_max_window_bits without a value".into())),
        // zlib silently turns an 8-bit raw window into 9, which a peer with a 256-byte window
        // cannot read: refuse rather than send what the server can't inflate.
        Some(Some(8)) => return Err(invalid("client_max_window_bits=8 cannot be honoured".into())),
        Some(Some(bits)) => bits.min(config.client_max_window_bits),
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: params.server_no_context_takeover,
        client_no_context_takeover: params.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

fn accept_offer(offer: &ExtensionOffer, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    if !offer.name.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let params = Params::parse(offer).ok()?;
    // Our compressor's window: what the client allows, capped by our config.
    let server_bits = match params.server_max_window_bits {
        None => config.server_max_window_bits,
        Some(None) => return None, // a value is required in an offer (§7.1.2.1)
        Some(Some(bits)) => bits.min(config.server_max_window_bits),
    };
    if server_bits < 9 {
        return None; // zlib cannot compress with a 256-byte window
    }
    // The client's window: only restrictable if it said it supports the parameter.
    let client_bits = match params.client_max_window_bits {
        None => 15,
        Some(hint) => hint.unwrap_or(15).min(config.client_max_window_bits),
    };
    let agreed = DeflateParams {
        server_no_context_takeover: params.server_no_context_takeover || config.server_no_context_takeover,
        client_no_context_takeover: params.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    };
    // Accepting an offer that names server_max_window_bits means answering with it (§7.1.2.1).
    let header = agreed.header_value(params.server_max_window_bits.is_some());
    Some((agreed, header))
}

/// The four parameters of one offer or response, each at most once.
#[derive(Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// Present, and its value if it had one.
    server_max_window_bits: Option<Option<u8>>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    fn parse(extension: &ExtensionOffer) -> Result<Self, &'static str> {
        let mut params = Self::default();
        for (name, value) in &extension.params {
            match name.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" => {
                    let flag = if name.starts_with("server") {
                        &mut params.server_no_context_takeover
                    } else {
                        &mut params.client_no_context_takeover
                    };
                    if *flag {
                        return Err("repeated parameter");
                    }
                    if value.is_some() {
                        return Err("no_context_takeover takes no value");
                    }
                    *flag = true;
                }
                "server_max_window_bits" | "client_max_window_bits" => {
                    let slot = if name.starts_with("server") {
                        &mut params.server_max_window_bits
                    } else {
                        &mut params.client_max_window_bits
                    };
                    if slot.is_some() {
                        return Err("repeated parameter");
                    }
                    *slot = Some(value.as_deref().map(window_bits).transpose()?);
                }
                _ => return Err("unknown parameter"),
            }
        }
        Ok(params)
    }
}

/// A window size: a decimal 8 to 15 with no leading zero (§7.1.2.1).
fn window_bits(value: &str) -> Result<u8, &'static str> {
    match value.as_bytes() {
        [b'8'] => Ok(8),
        [b'9'] => Ok(9),
        [b'1', d @ b'0'..=b'5'] => Ok(10 + (d - b'0')),
        _ => Err("window bits must be 8 to 15"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn server(offers: &str, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
        accept_offers(&parse_extensions(offers).unwrap(), config)
    }

    fn takeover() -> DeflateConfig {
        DeflateConfig::default().with_context_takeover()
    }

    #[test]
    fn server_accepts_the_first_acceptable_offer() {
        let (params, header) = server(
            "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
            &takeover(),
        )
        .unwrap();
        assert_eq!(header, "permessage-deflate");
        assert_eq!(params.client_max_window_bits, 15);
        // Invalid offers are declined and the next one is taken.
        let offers = "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=16, \
                      permessage-deflate; server_max_window_bits, permessage-deflate; server_max_window_bits=08, \
                      permessage-deflate; client_no_context_takeover; client_no_context_takeover, \
                      permessage-deflate; server_max_window_bits=\"10\"";
        let (params, header) = server(offers, &takeover()).unwrap();
        assert_eq!(header, "permessage-deflate; server_max_window_bits=10");
        assert_eq!(params.server_max_window_bits, 10);
        assert!(server("permessage-deflate; server_max_window_bits=8", &takeover()).is_none());
        assert!(server("permessage-deflate; client_no_context_takeover=1", &takeover()).is_none());
    }

    #[test]
    fn server_answers_with_its_own_restrictions() {
        let mut config = takeover();
        config.server_max_window_bits = 12;
        config.client_max_window_bits = 10;
        config.client_no_context_takeover = true;
        let (params, header) = server("permessage-deflate; client_max_window_bits", &config).unwrap();
        assert_eq!(
            header,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10"
        );
        assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (12, 10));
        // Without client_max_window_bits in the offer the client's window can't be limited.
        let (params, _) = server("permessage-deflate; server_no_context_takeover", &config).unwrap();
        assert_eq!(params.client_max_window_bits, 15);
        assert!(params.server_no_context_takeover);
        // The default config imposes no context takeover both ways.
        let (_, header) = server("permessage-deflate", &DeflateConfig::default()).unwrap();
        assert_eq!(
            header,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn client_offer_and_response_checks() {
        let mut config = takeover();
        assert_eq!(offer(&config), "permessage-deflate; client_max_window_bits");
        config.offer_client_max_window_bits = false;
        config.server_max_window_bits = 10;
        assert_eq!(offer(&config), "permessage-deflate; server_max_window_bits=10");
        let check =
            |response: &str, config: &DeflateConfig| check_response(&parse_extensions(response).unwrap(), config);
        assert_eq!(check("", &config).unwrap(), None);
        assert_eq!(
            check("permessage-deflate; server_max_window_bits=9", &config)
                .unwrap()
                .unwrap()
                .server_max_window_bits,
            9
        );
        for bad in [
            "permessage-deflate; server_max_window_bits=11", // more than offered
            "permessage-deflate; client_max_window_bits=10", // not offered
            "permessage-deflate; server_max_window_bits",    // no value
            "permessage-deflate; mystery",                   // unknown
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "x-other",                                // not offered
            "permessage-deflate, permessage-deflate", // twice
        ] {
            assert!(check(bad, &config).is_err(), "{bad}");
        }
        let offered = takeover();
        let params = check(
            "permessage-deflate; client_max_window_bits=12; client_no_context_takeover",
            &offered,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (params.client_max_window_bits, params.client_no_context_takeover),
            (12, true)
        );
        assert!(check("permessage-deflate; client_max_window_bits=8", &offered).is_err());
    }
}
