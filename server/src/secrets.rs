//! Secrets the server must read back (webhook signing secrets: a hash
//! cannot sign) are stored encrypted with ChaCha20-Poly1305 under a key
//! from the environment (`CALLAHEAD_SECRET_KEY`, 32 bytes, base64). A
//! stored value is `enc1:` + base64(nonce ‖ ciphertext); a value without
//! the prefix is an older clear one, encrypted at the next start that has a
//! key. Rotation: start once with the new key in `CALLAHEAD_SECRET_KEY` and
//! the old one in `CALLAHEAD_SECRET_KEY_PREVIOUS`; everything is
//! re-encrypted under the new key (docs/security.md).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

const PREFIX: &str = "enc1:";
/// Binds a ciphertext to its use: a sealed secret cannot be replayed as
/// something else sealed under the same key.
const AAD: &[u8] = b"callahead webhook secret v1";

/// A 32-byte key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored secret is encrypted but no key (or not the right key) was given")]
    CannotOpen,
}

impl SecretKey {
    pub fn from_base64(s: &str) -> Result<SecretKey, SecretError> {
        let bytes = STANDARD.decode(s.trim()).map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey(key))
    }

    pub fn generate() -> SecretKey {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SecretKey(key)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

/// The keys the server seals and opens with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub current: Option<SecretKey>,
    /// Opens what the previous key sealed, during a rotation.
    pub previous: Option<SecretKey>,
}

pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

impl Keys {
    /// The stored form of `plain`: sealed under the current key, or clear
    /// without one.
    pub fn seal(&self, plain: &str) -> String {
        let Some(key) = &self.current else { return plain.to_owned() };
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        // Encrypting into a Vec cannot fail for inputs this small.
        match key.cipher().encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: AAD }) {
            Ok(ct) => {
                let mut out = nonce.to_vec();
                out.extend(ct);
                format!("{PREFIX}{}", STANDARD.encode(out))
            }
            Err(_) => unreachable!("ChaCha20-Poly1305 encrypts any message under 256 GiB"),
        }
    }

    /// The plain secret from its stored form.
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(body) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let raw = STANDARD.decode(body).map_err(|_| SecretError::CannotOpen)?;
        if raw.len() < 12 {
            return Err(SecretError::CannotOpen);
        }
        let (nonce, ct) = raw.split_at(12);
        for key in [&self.current, &self.previous].into_iter().flatten() {
            if let Ok(plain) = key.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD }) {
                return String::from_utf8(plain).map_err(|_| SecretError::CannotOpen);
            }
        }
        Err(SecretError::CannotOpen)
    }

    /// Whether `stored` should be sealed again (clear, or under the previous key).
    pub fn needs_resealing(&self, stored: &str) -> bool {
        let Some(current) = &self.current else { return false };
        if !is_sealed(stored) {
            return true;
        }
        Keys { current: Some(current.clone()), previous: None }.open(stored).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let keys = Keys { current: Some(SecretKey::generate()), previous: None };
        let sealed = keys.seal("whsec_abc");
        assert!(sealed.starts_with("enc1:") && !sealed.contains("whsec_abc"), "{sealed}");
        assert_ne!(keys.seal("whsec_abc"), sealed, "a fresh nonce every time");
        assert_eq!(keys.open(&sealed).as_deref(), Ok("whsec_abc"));
        let other = Keys { current: Some(SecretKey::generate()), previous: None };
        assert_eq!(other.open(&sealed), Err(SecretError::CannotOpen));
        assert_eq!(Keys::default().open(&sealed), Err(SecretError::CannotOpen));
        assert_eq!(Keys::default().open("whsec_clear").as_deref(), Ok("whsec_clear"), "older clear values");
    }

    #[test]
    fn a_rotation_opens_with_the_previous_key_and_reseals_under_the_new() {
        let old = SecretKey::generate();
        let sealed = Keys { current: Some(old.clone()), previous: None }.seal("s3cret");
        let rotating = Keys { current: Some(SecretKey::generate()), previous: Some(old) };
        assert!(rotating.needs_resealing(&sealed));
        assert_eq!(rotating.open(&sealed).as_deref(), Ok("s3cret"));
        let resealed = rotating.seal("s3cret");
        assert!(!rotating.needs_resealing(&resealed));
        assert!(rotating.needs_resealing("clear"));
        assert_eq!(SecretKey::from_base64("c2hvcnQ="), Err(SecretError::BadKey));
        let k = SecretKey::generate();
        assert_eq!(SecretKey::from_base64(&k.to_base64()), Ok(k));
    }
}
