//! `X-Twilio-Signature`, computed exactly as Twilio's own request
//! validators do: the full URL (with its query) followed by every form
//! parameter's name and value, names sorted and each name's values sorted,
//! HMAC-SHA1 with the auth token, base64. A URL is accepted with or without
//! its default port (Twilio may have signed either); a JSON body is covered
//! by the `bodySHA256` query parameter instead of form parameters.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The signature Twilio sends for `url` and these form parameters.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut data = String::from(url);
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for a form request to `url`.
pub fn valid_form(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    url_variants(url).iter().any(|u| {
        crate::providers::callbacks::constant_time_eq(
            compute(auth_token, u, params).as_bytes(),
            signature.as_bytes(),
        )
    })
}

/// Whether `signature` is Twilio's for a JSON request: the URL carries the
/// body's SHA-256 in `bodySHA256`, and the URL alone is signed.
pub fn valid_json(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = query_value(url, "bodySHA256") else { return false };
    let actual = hex::encode(Sha256::digest(body));
    crate::providers::callbacks::constant_time_eq(claimed.as_bytes(), actual.as_bytes())
        && valid_form(auth_token, url, &[], signature)
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The URL as given, without its port, and with the scheme's default port.
fn url_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else { return vec![url.to_owned()] };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    // An IPv6 literal keeps its colons inside the brackets.
    let port_at = hostport.rfind(':').filter(|i| !hostport[*i..].contains(']'));
    let host = port_at.map_or(hostport, |i| &hostport[..i]);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    };
    let mut out = vec![url.to_owned(), format!("{scheme}://{userinfo}{host}{tail}")];
    if let Some(port) = default_port {
        out.push(format!("{scheme}://{userinfo}{host}:{port}{tail}"));
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Twilio's published vectors (issue #11; the same as in Twilio's own
    // helper libraries' tests).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilios_form_vector() {
        assert_eq!(compute(TOKEN, URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(valid_form(TOKEN, URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // Order of the form fields does not matter.
        let mut reversed = params();
        reversed.reverse();
        assert!(valid_form(TOKEN, URL, &reversed, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn twilios_vectors_with_the_default_port() {
        let with_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, with_443, &params()), "kvajT1Ptam85bY51eRf/AJRuM3w=");
        let with_80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, with_80, &params()), "0ZXoZLH/DfblKGATFgpif+LLRf4=");
        // Signed with the port, validated against the URL without it, and
        // the other way round.
        assert!(valid_form(TOKEN, URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        assert!(valid_form(TOKEN, with_443, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(valid_form(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn twilios_multi_valued_vector() {
        let p: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(compute(TOKEN, URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn twilios_json_vector() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(hex::encode(Sha256::digest(body)), hash);
        let url = format!("{URL}&bodySHA256={hash}");
        assert_eq!(compute(TOKEN, &url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
        assert!(valid_json(TOKEN, &url, body, "a9nBmqA0ju/hNViExpshrM61xv4="));
        assert!(!valid_json(
            TOKEN,
            &url,
            br#"{"property": "other", "boolean": true}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
    }

    #[test]
    fn anything_else_fails() {
        let sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!valid_form("54321", URL, &params(), sig), "another token");
        assert!(
            !valid_form(TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=3", &params(), sig),
            "another URL"
        );
        let mut changed = params();
        changed[2].1 = "1235".into();
        assert!(!valid_form(TOKEN, URL, &changed, sig), "a changed field");
        assert!(!valid_form(TOKEN, URL, &params(), ""), "no signature");
    }
}
