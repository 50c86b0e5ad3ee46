//! Voximplant's service-account authorization: a short-lived JWT signed
//! RS256 with the account's private key, `kid` = the key id, `iss` = the
//! account id, sent as `Authorization: Bearer …`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// How long one token is valid (Voximplant allows up to an hour; a short
/// one limits what a leaked request log could do).
pub const LIFETIME_SECS: i64 = 60;

/// The service-account key file Voximplant's control panel downloads.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    #[serde(deserialize_with = "string_or_number")]
    pub account_id: String,
    pub key_id: String,
    pub private_key: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("account_id", &self.account_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"<secret>")
            .finish()
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => {
            Err(serde::de::Error::custom(format!("account_id must be a number or a string, got {other}")))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Signs tokens with one key.
pub struct Signer {
    key: EncodingKey,
    kid: String,
    iss: String,
}

impl Signer {
    pub fn new(account: &ServiceAccountKey) -> Result<Signer, String> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| format!("the Voximplant private key is not an RSA PEM key: {e}"))?;
        Ok(Signer { key, kid: account.key_id.clone(), iss: account.account_id.clone() })
    }

    /// A token valid from `now` (seconds since the epoch).
    pub fn token(&self, now: i64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let claims = Claims { iat: now, exp: now + LIFETIME_SECS, iss: self.iss.clone() };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the Voximplant JWT: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const KEY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/voximplant/test-service-account.json"
    ));
    const PUBLIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/voximplant/test-public-key.pem"
    ));

    #[test]
    fn a_token_is_rs256_with_kid_iss_and_a_short_life() {
        let account: ServiceAccountKey = serde_json::from_str(KEY).expect("key file");
        assert_eq!(account.account_id, "1000001", "a numeric account id is read as text");
        assert!(!format!("{account:?}").contains("PRIVATE"), "the key never prints");
        let now = chrono::Utc::now().timestamp();
        let token = Signer::new(&account).expect("signer").token(now).expect("token");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::RS256, Some(account.key_id.as_str())));
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&["1000001"]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).expect("public key");
        let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation).expect("verifies").claims;
        assert_eq!((claims.iat, claims.exp - claims.iat), (now, LIFETIME_SECS));
        assert!(Signer::new(&ServiceAccountKey { private_key: "nope".into(), ..account }).is_err());
    }
}
