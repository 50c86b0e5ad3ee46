//! The HTTP calls the client makes, over the wire types in [`crate::wire`].

use super::credentials::Session;
use super::error::{Error, Result};
use crate::ids::{CallId, StopId};
use crate::wire::{
    paths, CallView, CreateCall, DirectCall, ErrorBody, ErrorCode, LogDirectCall, PositionReceipt,
    PositionReport, Route, RoutePlan,
};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    pub(crate) session: Arc<Session>,
}

impl Http {
    pub(crate) fn new(server_url: &str, session: Arc<Session>) -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Http { client, base: server_url.trim_end_matches('/').to_owned(), session })
    }

    /// Refreshes when the access token is about to expire (before a request
    /// or a websocket connection).
    pub(crate) async fn fresh_token(&self) -> Result<String> {
        let token = self.session.token();
        if self.session.due(chrono::Utc::now()) {
            self.session.refresh(&self.client, &self.base, &token).await?;
        }
        Ok(self.session.token())
    }

    /// After the server refused `stale` as expired: refresh, if possible.
    pub(crate) async fn refresh_after_expiry(&self, stale: &str) -> Result<bool> {
        if !self.session.can_refresh() {
            return Ok(false);
        }
        self.session.refresh(&self.client, &self.base, stale).await?;
        Ok(true)
    }

    pub(crate) async fn my_route(&self, date: NaiveDate) -> Result<Route> {
        let req = self.client.get(self.url(paths::MY_ROUTE)).query(&[("date", date.to_string())]);
        self.send(req).await
    }

    /// `POST /v1/calls`. A replay of `idempotency_key` returns the same call.
    pub(crate) async fn create_call(&self, stop_id: StopId, idempotency_key: &str) -> Result<CallView> {
        let body = CreateCall { stop_id, idempotency_key: idempotency_key.to_owned(), policy: None };
        self.send(self.client.post(self.url(paths::CALLS)).json(&body)).await
    }

    pub(crate) async fn cancel_call(&self, call_id: CallId) -> Result<CallView> {
        let path = paths::fill(paths::CALL_CANCEL, &[("call_id", &call_id.to_string())]);
        self.send(self.client.post(self.url(&path))).await
    }

    /// `PUT /v1/me/route/plan`.
    pub(crate) async fn plan_route(&self, date: NaiveDate, stop_ids: &[StopId]) -> Result<Route> {
        let body = RoutePlan { date, stop_ids: stop_ids.to_vec() };
        self.send(self.client.put(self.url(paths::MY_ROUTE_PLAN)).json(&body)).await
    }

    /// `PUT /v1/me/position`.
    pub(crate) async fn report_position(&self, body: &PositionReport) -> Result<PositionReceipt> {
        self.send(self.client.put(self.url(paths::MY_POSITION)).json(body)).await
    }

    /// `POST /v1/direct-calls`.
    pub(crate) async fn log_direct_call(&self, body: &LogDirectCall) -> Result<DirectCall> {
        self.send(self.client.post(self.url(paths::DIRECT_CALLS)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let token = self.fresh_token().await?;
        // Kept to send again after a refresh (every request here is JSON).
        let retry = req.try_clone();
        match self.send_once(req, &token).await {
            Err(Error::Status { status: 401, body: Some(b) }) if b.code == ErrorCode::TokenExpired => {
                let refreshed = self.refresh_after_expiry(&token).await?;
                match (refreshed, retry) {
                    (true, Some(again)) => self.send_once(again, &self.session.token()).await,
                    _ => Err(Error::Status { status: 401, body: Some(b) }),
                }
            }
            other => other,
        }
    }

    async fn send_once<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, token: &str) -> Result<T> {
        let resp = req.bearer_auth(token).send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json::<T>().await?);
        }
        let body = resp.bytes().await.ok().and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok());
        Err(Error::Status { status: status.as_u16(), body })
    }
}
