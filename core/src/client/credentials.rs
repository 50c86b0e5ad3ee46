//! The courier's sign-in on the phone (docs/adr/0007): the access token the
//! requests carry and the refresh token that replaces both. The client
//! refreshes by itself shortly before the access token expires, and at once
//! when the server answers `token_expired`. Every new pair is stored in the
//! local database before it is used, because the server accepts a refresh
//! token only once: an app restarted with the sign-in it was configured with
//! continues from the newest pair, never replays a spent one.

use super::db::Db;
use super::error::{Error, Result};
use crate::wire::{paths, ErrorBody, ErrorCode, RefreshRequest, TokenPair};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};

/// Refresh this long before the access token expires.
const EARLY: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credentials {
    /// Which configured sign-in these descend from (a hash of it): a new
    /// sign-in in the config replaces what is stored.
    pub seed: String,
    pub token: String,
    /// On this phone's clock.
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
}

/// The hash naming a configured sign-in.
pub(crate) fn seed(token: &str, refresh_token: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0]);
    h.update(refresh_token.unwrap_or_default().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The current credentials, shared by every request and the websocket.
pub(crate) struct Session {
    current: RwLock<Credentials>,
    /// One refresh at a time: the others wait and use its result.
    refreshing: tokio::sync::Mutex<()>,
    db: Arc<Db>,
}

impl Session {
    /// The stored pair if it descends from the configured sign-in, else the
    /// configured one (stored at once).
    pub(crate) fn open(
        db: Arc<Db>,
        token: &str,
        refresh_token: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Session> {
        let seed = seed(token, refresh_token);
        let current = match db.credentials()? {
            Some(stored) if stored.seed == seed => stored,
            _ => {
                let fresh = Credentials {
                    seed,
                    token: token.to_owned(),
                    expires_at,
                    refresh_token: refresh_token.map(str::to_owned),
                };
                db.store_credentials(&fresh)?;
                fresh
            }
        };
        Ok(Session { current: RwLock::new(current), refreshing: tokio::sync::Mutex::new(()), db })
    }

    pub(crate) fn token(&self) -> String {
        self.current.read().unwrap_or_else(|e| e.into_inner()).token.clone()
    }

    fn snapshot(&self) -> Credentials {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the access token is about to expire and can be refreshed.
    pub(crate) fn due(&self, now: DateTime<Utc>) -> bool {
        let c = self.snapshot();
        c.refresh_token.is_some() && c.expires_at.is_some_and(|at| at - EARLY <= now)
    }

    pub(crate) fn can_refresh(&self) -> bool {
        self.snapshot().refresh_token.is_some()
    }

    /// Exchanges the refresh token for a new pair, unless `stale` (the token
    /// a request was refused with) was already replaced by another task.
    pub(crate) async fn refresh(&self, client: &reqwest::Client, base: &str, stale: &str) -> Result<()> {
        let _one = self.refreshing.lock().await;
        let c = self.snapshot();
        if c.token != stale {
            return Ok(());
        }
        let Some(refresh_token) = c.refresh_token.clone() else {
            return Err(Error::Status {
                status: 401,
                body: Some(ErrorBody {
                    code: ErrorCode::TokenExpired,
                    message: "the access token expired and there is no refresh token; sign in again".into(),
                    field: None,
                }),
            });
        };
        let resp = client
            .post(format!("{base}{}", paths::AUTH_REFRESH))
            .json(&RefreshRequest { refresh_token })
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.ok().and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok());
            return Err(Error::Status { status: status.as_u16(), body });
        }
        let pair: TokenPair = resp.json().await?;
        // Counted on this phone's clock, whatever it says the time is.
        let lifetime = pair.expires_in.and_then(|s| i64::try_from(s).ok()).map(chrono::Duration::seconds);
        let next = Credentials {
            seed: c.seed,
            token: pair.token,
            expires_at: lifetime.map(|l| Utc::now() + l),
            refresh_token: Some(pair.refresh_token),
        };
        // Stored before use: the spent refresh token must never come back.
        self.db.store_credentials(&next)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        tracing::debug!("courier token refreshed");
        Ok(())
    }
}
