//! Pusher's signatures: HMAC-SHA256 in lowercase hex over a string each feature defines (channel
//! auth, user sign-in, REST requests, webhooks), and the MD5 of REST bodies. Checks are constant
//! time (ring's verify over the decoded tag).

use md5::{Digest, Md5};
use ring::hmac;

/// HMAC-SHA256 of `message` with `secret`, as lowercase hex.
pub fn hmac_hex(secret: &str, message: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex(hmac::sign(&key, message.as_bytes()).as_ref())
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `message` with `secret`, in constant time.
pub fn verify_hex(secret: &str, message: &str, signature: &str) -> bool {
    let Some(tag) = unhex(signature) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, message.as_bytes(), &tag).is_ok()
}

/// MD5 of `body`, as lowercase hex (the REST API's `body_md5`).
pub fn md5_hex(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

/// The string a private or presence channel's auth signs: `socket_id:channel[:channel_data]`.
pub fn channel_string(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string a user sign-in signs: `socket_id::user::user_data`.
pub fn user_string(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The `auth` value a client sends for a channel: `key:signature`.
pub fn channel_auth(key: &str, secret: &str, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    format!(
        "{key}:{}",
        hmac_hex(secret, &channel_string(socket_id, channel, channel_data))
    )
}

/// Checks a `key:signature` auth value against `key`, `secret` and the signed string.
pub fn check_auth(auth: &str, key: &str, secret: &str, signed: &str) -> bool {
    let Some((given_key, signature)) = auth.split_once(':') else {
        return false;
    };
    // The key is public; only the signature needs a constant-time check.
    given_key == key && verify_hex(secret, signed, signature)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The key, secret and socket id of Pusher's published authentication examples.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_example() {
        assert_eq!(
            channel_auth(KEY, SECRET, "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn presence_channel_example() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#;
        let auth = channel_auth(KEY, SECRET, "1234.1234", "presence-foobar", Some(data));
        assert_eq!(
            auth,
            "278d425bdf160c739803:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
        );
        let signed = channel_string("1234.1234", "presence-foobar", Some(data));
        assert!(check_auth(&auth, KEY, SECRET, &signed));
        // Any change to the signed string, the key or the signature fails.
        assert!(!check_auth(
            &auth,
            KEY,
            SECRET,
            &channel_string("1234.1235", "presence-foobar", Some(data))
        ));
        assert!(!check_auth(&auth.replacen("278d", "278e", 1), KEY, SECRET, &signed));
        assert!(!check_auth(&auth.replace("304c", "304d"), KEY, SECRET, &signed));
        assert!(!check_auth(&auth.replace("304c", "304"), KEY, SECRET, &signed));
        assert!(!check_auth("nonsense", KEY, SECRET, &signed));
        assert!(!check_auth("278d425bdf160c739803:zz", KEY, SECRET, &signed));
    }

    #[test]
    fn user_signin_string() {
        let signed = user_string("1234.1234", r#"{"id":"12345"}"#);
        assert_eq!(signed, r#"1234.1234::user::{"id":"12345"}"#);
        // Cross-checked with Node's crypto.createHmac over the same string.
        assert_eq!(
            hmac_hex(SECRET, &signed),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
    }

    #[test]
    fn rest_worked_example() {
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(md5_hex(body.as_bytes()), "ec365a775a4cd0599faeb73354201b6f");
        let signed = "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";
        assert_eq!(
            hmac_hex(SECRET, signed),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }
}
