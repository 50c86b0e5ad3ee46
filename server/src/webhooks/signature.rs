//! Webhook signatures, Stripe-like: `Callahead-Signature: t=<unix>,v1=<hex>`
//! where `<hex>` is HMAC-SHA256 of `"<t>.<body>"` under the endpoint's
//! secret. During a secret rotation one `v1=` per valid secret is sent, so a
//! receiver that knows either secret accepts the delivery. The timestamp is
//! wall-clock time, for the receiver to reject replays of old deliveries.
//! docs/webhooks.md shows the receiver's side in Python and openssl.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const HEADER: &str = "Callahead-Signature";
/// The event's seq, for receivers that deduplicate before parsing.
pub const SEQ_HEADER: &str = "Callahead-Event-Seq";
pub const ENDPOINT_HEADER: &str = "Callahead-Webhook-Id";
/// The delivered event's link in the audit chain, 64 hex digits.
pub const AUDIT_HEADER: &str = "Callahead-Audit-Hash";
/// What receivers should accept between the signing time and their clock.
pub const TOLERANCE_SECS: i64 = 300;
/// Caller-supplied secrets: long enough to resist guessing, short enough to type.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 24..=200;

type HmacSha256 = Hmac<Sha256>;

/// A signing secret. Its `Debug` never shows it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A fresh random secret: `whsec_` + 32 random bytes, base64url.
pub fn new_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret(format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// Why a caller-supplied secret is refused.
pub fn check_secret(s: &str) -> Result<(), String> {
    if !SECRET_LEN.contains(&s.len()) {
        return Err(format!("must be {} to {} characters", SECRET_LEN.start(), SECRET_LEN.end()));
    }
    if !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

fn mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Hex HMAC-SHA256 of `"<t>.<body>"`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// The header value: `t=<t>,v1=<sig>` with one `v1` per secret.
pub fn header(secrets: &[&Secret], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(&s.0, t, body));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches the secret")]
    NoMatch,
}

/// What a receiver does: checks that one `v1` of `header` signs `body` under
/// `secret` and that `t` is within `tolerance_secs` of `now_unix`.
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut t: Option<i64> = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", v)) => sigs.push(v),
            // Unknown schemes are skipped: a later `v2` must not break v1 receivers.
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let age = now_unix - t;
    if age.abs() > tolerance_secs {
        return Err(VerifyError::OutsideTolerance(age));
    }
    let expected = mac(secret, t, body);
    let matched = sigs
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        // Constant-time comparison.
        .any(|bytes| expected.clone().verify_slice(&bytes).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"seq":42,"kind":{"type":"call_requested"}}"#;

    #[test]
    fn matches_the_documented_example() {
        // The same numbers as docs/webhooks.md, computed there with openssl:
        // printf '%s' '1700000000.{"seq":42,"kind":{"type":"call_requested"}}' \
        //   | openssl dgst -sha256 -hmac 'whsec_test_secret_0123456789'
        assert_eq!(
            sign("whsec_test_secret_0123456789", 1_700_000_000, BODY),
            "28718234a03fb0ae23292b7be414ccf50548e2dd7659d8bd51ac150f1a7422e5"
        );
    }

    #[test]
    fn a_signed_body_verifies_and_a_changed_one_does_not() {
        let s = Secret("whsec_test_secret_0123456789".into());
        let h = header(&[&s], 1_700_000_000, BODY);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify(&h, &s.0, BODY, 1_700_000_100, TOLERANCE_SECS), Ok(()));
        let tampered = br#"{"seq":43,"kind":{"type":"call_requested"}}"#;
        assert_eq!(verify(&h, &s.0, tampered, 1_700_000_100, TOLERANCE_SECS), Err(VerifyError::NoMatch));
        assert_eq!(
            verify(&h, "another-secret-0123456789", BODY, 1_700_000_100, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn old_or_future_timestamps_are_refused() {
        let s = Secret("whsec_test_secret_0123456789".into());
        let h = header(&[&s], 1_700_000_000, BODY);
        assert_eq!(
            verify(&h, &s.0, BODY, 1_700_000_301, TOLERANCE_SECS),
            Err(VerifyError::OutsideTolerance(301))
        );
        assert_eq!(
            verify(&h, &s.0, BODY, 1_699_999_000, TOLERANCE_SECS),
            Err(VerifyError::OutsideTolerance(-1000))
        );
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let (old, new) = (new_secret(), new_secret());
        assert_ne!(old, new);
        let h = header(&[&new, &old], 1_700_000_000, BODY);
        assert_eq!(h.matches(",v1=").count(), 2);
        assert_eq!(verify(&h, &old.0, BODY, 1_700_000_000, 300), Ok(()));
        assert_eq!(verify(&h, &new.0, BODY, 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused_and_unknown_schemes_skipped() {
        for h in ["", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"] {
            assert_eq!(verify(h, "k", BODY, 1_700_000_000, 300), Err(VerifyError::Malformed), "{h}");
        }
        let s = Secret("whsec_test_secret_0123456789".into());
        let h = format!("{},v0=zz", header(&[&s], 1_700_000_000, BODY));
        assert_eq!(verify(&h, &s.0, BODY, 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert!(check_secret("short").is_err());
        assert!(check_secret("has a space in it 0123456789").is_err());
        assert!(check_secret("x".repeat(201).as_str()).is_err());
        assert!(check_secret("whsec_test_secret_0123456789").is_ok());
        let s = new_secret();
        assert!(check_secret(&s.0).is_ok());
        assert!(!format!("{s:?}").contains(&s.0));
    }
}
