//! Query strings of the HTTP API: percent-decoded parameters, and the string a request
//! signature covers (`METHOD\nPATH\nkey=value&…` sorted by key, without `auth_signature`).

/// Percent-decodes `s` (`+` is a space); invalid escapes stay as they are.
pub(crate) fn decode(s: &str) -> String {
    crate::auth::percent_decode(s).into_owned()
}

/// The parameters of `query`, decoded, keys lowercased, in order. At most 64 are read.
pub(crate) fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(64)
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key).to_ascii_lowercase(), decode(value))
        })
        .collect()
}

/// The first value of `name`.
pub(crate) fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// What the request signature signs.
pub(crate) fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "auth_signature").collect();
    sorted.sort();
    let query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_string_sorts_and_drops_the_signature() {
        let p = params(
            "auth_timestamp=1353088179&Auth_Key=278d425bdf160c739803&auth_version=1.0&auth_signature=x&info=user_count%2Csubscription_count",
        );
        assert_eq!(get(&p, "auth_key"), Some("278d425bdf160c739803"));
        assert_eq!(
            string_to_sign("GET", "/apps/3/channels", &p),
            "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&info=user_count,subscription_count"
        );
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%23x+y"), "#x y");
    }
}
