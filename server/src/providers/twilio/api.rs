//! Twilio's REST API (2010-04-01) as the adapter uses it: Create, Fetch,
//! Update and List Call; Create, Fetch and List Message. Every request is
//! form-encoded and authenticated with an API key (or the account's auth
//! token); answers are classified so that an outage is told from an
//! uncertain create and a definite refusal.

use super::TwilioConfig;
use crate::providers::TelephonyError;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Twilio's error body (`code`: its error catalogue, e.g. 21211 "invalid
/// To", 21215 "geo permission", 20429 "too many requests").
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

/// A call as Twilio describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct CallResource {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub answered_by: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
}

impl CallResource {
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.date_created
            .as_deref()
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&Utc))
    }
}

#[derive(Debug, Deserialize)]
struct CallPage {
    #[serde(default)]
    calls: Vec<CallResource>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageResource {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<MessageResource>,
}

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Not processed: connection refused, 503, 429 (`rate_limited`).
    NotTaken { rate_limited: bool, why: String },
    /// May have been processed: timeout, reset mid-answer, other 5xx.
    Uncertain(String),
    /// Refused for good (4xx other than 429).
    Refused { status: u16, why: String },
}

impl From<ApiError> for TelephonyError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotTaken { rate_limited: true, why } => TelephonyError::RateLimited(why),
            ApiError::NotTaken { rate_limited: false, why } => TelephonyError::Unavailable(why),
            ApiError::Uncertain(why) => TelephonyError::Uncertain(why),
            ApiError::Refused { why, .. } => TelephonyError::Rejected(why),
        }
    }
}

pub struct Api {
    http: reqwest::Client,
    config: TwilioConfig,
}

impl Api {
    pub fn new(config: TwilioConfig) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| format!("twilio http client: {e}"))?;
        Ok(Api { http, config })
    }

    fn url(&self, rest: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/{rest}",
            self.config.api_base.trim_end_matches('/'),
            self.config.account_sid
        )
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some((sid, secret)) => req.basic_auth(sid, Some(secret)),
            None => req.basic_auth(&self.config.account_sid, Some(&self.config.auth_token)),
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let resp = match self.auth(req).send().await {
            Ok(r) => r,
            // Nothing reached Twilio: safe to send again.
            Err(e) if e.is_connect() => {
                return Err(ApiError::NotTaken { rate_limited: false, why: format!("cannot connect: {e}") })
            }
            Err(e) if e.is_timeout() => return Err(ApiError::Uncertain(format!("no answer in time: {e}"))),
            Err(e) => return Err(ApiError::Uncertain(format!("request failed: {e}"))),
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(ApiError::Uncertain(format!("answer cut off ({status}): {e}"))),
        };
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ApiError::Uncertain(format!("unreadable answer ({status}): {e}")));
        }
        let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let why = match &err {
            Some(ErrorBody { code: Some(code), message }) => {
                format!("{status}, Twilio error {code}: {}", message.as_deref().unwrap_or(""))
            }
            _ => format!("{status}"),
        };
        let code = err.as_ref().and_then(|e| e.code);
        Err(match status.as_u16() {
            429 => ApiError::NotTaken { rate_limited: true, why },
            _ if code == Some(20429) => ApiError::NotTaken { rate_limited: true, why },
            503 => ApiError::NotTaken { rate_limited: false, why },
            500..=599 => ApiError::Uncertain(why),
            status => ApiError::Refused { status, why },
        })
    }

    pub async fn create_call(&self, form: &[(&str, String)]) -> Result<CallResource, ApiError> {
        self.send(self.http.post(self.url("Calls.json")).form(form)).await
    }

    pub async fn fetch_call(&self, sid: &str) -> Result<CallResource, ApiError> {
        self.send(self.http.get(self.url(&format!("Calls/{sid}.json")))).await
    }

    pub async fn update_call(&self, sid: &str, form: &[(&str, String)]) -> Result<CallResource, ApiError> {
        self.send(self.http.post(self.url(&format!("Calls/{sid}.json"))).form(form)).await
    }

    /// Calls to `to` from our number started on or after `since`'s date.
    pub async fn list_calls(&self, to: &str, since: DateTime<Utc>) -> Result<Vec<CallResource>, ApiError> {
        let query = [
            ("To", to.to_owned()),
            ("From", self.config.from_number.clone()),
            ("StartTime>", since.format("%Y-%m-%d").to_string()),
            ("PageSize", "50".to_owned()),
        ];
        let page: CallPage = self.send(self.http.get(self.url("Calls.json")).query(&query)).await?;
        Ok(page.calls)
    }

    pub async fn create_message(&self, form: &[(&str, String)]) -> Result<MessageResource, ApiError> {
        self.send(self.http.post(self.url("Messages.json")).form(form)).await
    }

    pub async fn fetch_message(&self, sid: &str) -> Result<MessageResource, ApiError> {
        self.send(self.http.get(self.url(&format!("Messages/{sid}.json")))).await
    }

    /// Messages to `to` from our number sent on or after `since`'s date.
    pub async fn list_messages(
        &self,
        to: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageResource>, ApiError> {
        let query = [
            ("To", to.to_owned()),
            ("From", self.config.from_number.clone()),
            ("DateSent>", since.format("%Y-%m-%d").to_string()),
            ("PageSize", "50".to_owned()),
        ];
        let page: MessagePage = self.send(self.http.get(self.url("Messages.json")).query(&query)).await?;
        Ok(page.messages)
    }
}
