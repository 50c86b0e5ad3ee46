//! A typed HTTP client over the wire protocol, for driving the server the
//! way an admin, an integrator, a courier or a supervisor would.

use callahead_core::wire::{self, paths, ErrorBody};
use callahead_core::{CallId, CourierId, DepotId};
use chrono::NaiveDate;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

/// An error response: status and the parsed body.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub body: ErrorBody,
}

pub type Reply<T> = Result<T, Failure>;

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { base: base.into(), http: reqwest::Client::new() }
    }

    /// Sends a request; a non-2xx must carry an `ErrorBody` (the test fails
    /// otherwise: every error has a machine-readable code).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Reply<T> {
        let (status, text) = self
            .raw(
                method,
                token,
                path,
                body.map(|b| serde_json::to_string(b).expect("serializable")),
                "application/json",
            )
            .await;
        if status.is_success() {
            Ok(serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}: bad success body {text:?}: {e}")))
        } else {
            let body: ErrorBody = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}: {status} without an error body {text:?}: {e}"));
            Err(Failure { status, body })
        }
    }

    /// Raw text request, for malformed bodies and odd content types.
    pub async fn raw(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: request failed: {e}"));
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    pub async fn create_depot(
        &self,
        admin: &str,
        name: &str,
        policy: Option<callahead_core::policy::AttemptPolicy>,
    ) -> wire::Depot {
        let body = wire::CreateDepot { name: name.into(), time_zone: "Europe/Moscow".into(), policy };
        self.send(Method::POST, Some(admin), paths::DEPOTS, Some(&body)).await.expect("create depot")
    }

    pub async fn create_courier(&self, admin: &str, depot: DepotId, name: &str) -> wire::CreatedCourier {
        let path = paths::fill(paths::DEPOT_COURIERS, &[("depot_id", &depot.to_string())]);
        let body = wire::CreateCourier { name: name.into(), phone: "+79990000001".into() };
        self.send(Method::POST, Some(admin), &path, Some(&body)).await.expect("create courier")
    }

    pub async fn create_supervisor(
        &self,
        admin: &str,
        depot: DepotId,
        name: &str,
    ) -> wire::CreatedSupervisor {
        let path = paths::fill(paths::DEPOT_SUPERVISORS, &[("depot_id", &depot.to_string())]);
        let body = wire::CreateSupervisor { name: name.into() };
        self.send(Method::POST, Some(admin), &path, Some(&body)).await.expect("create supervisor")
    }

    pub async fn create_integrator(
        &self,
        admin: &str,
        depot: DepotId,
        name: &str,
    ) -> wire::CreatedIntegratorKey {
        let path = paths::fill(paths::DEPOT_INTEGRATOR_KEYS, &[("depot_id", &depot.to_string())]);
        let body = wire::CreateIntegratorKey { name: name.into() };
        self.send(Method::POST, Some(admin), &path, Some(&body)).await.expect("create integrator key")
    }

    pub async fn import_route(
        &self,
        integrator: &str,
        courier: CourierId,
        date: NaiveDate,
        stops: Vec<wire::StopInput>,
    ) -> Reply<wire::Route> {
        let path = paths::fill(
            paths::COURIER_ROUTE,
            &[("courier_id", &courier.to_string()), ("date", &date.to_string())],
        );
        self.send(Method::PUT, Some(integrator), &path, Some(&wire::RouteImport { stops })).await
    }

    pub async fn my_route(&self, courier: &str, date: NaiveDate) -> Reply<wire::Route> {
        self.send(Method::GET, Some(courier), &format!("{}?date={date}", paths::MY_ROUTE), None::<&()>).await
    }

    pub async fn call(&self, token: &str, id: CallId) -> Reply<wire::CallDetail> {
        self.send(
            Method::GET,
            Some(token),
            &paths::fill(paths::CALL, &[("call_id", &id.to_string())]),
            None::<&()>,
        )
        .await
    }

    pub async fn calls(
        &self,
        token: &str,
        courier: Option<CourierId>,
        date: Option<NaiveDate>,
    ) -> Reply<wire::CallList> {
        let mut q = Vec::new();
        if let Some(c) = courier {
            q.push(format!("courier_id={c}"));
        }
        if let Some(d) = date {
            q.push(format!("date={d}"));
        }
        let path =
            if q.is_empty() { paths::CALLS.to_string() } else { format!("{}?{}", paths::CALLS, q.join("&")) };
        self.send(Method::GET, Some(token), &path, None::<&()>).await
    }

    pub async fn request_call(&self, courier: &str, body: &wire::CreateCall) -> Reply<wire::CallView> {
        self.send(Method::POST, Some(courier), paths::CALLS, Some(body)).await
    }

    /// The whole log in this token's scope, read page by page from `/v1/events`.
    pub async fn all_events(&self, token: &str) -> Vec<wire::Event> {
        let mut out: Vec<wire::Event> = Vec::new();
        loop {
            let after = out.last().map_or(0, |e| e.seq);
            let page: wire::EventPage = self
                .send(
                    Method::GET,
                    Some(token),
                    &format!("{}?after={after}&limit=1000", paths::EVENTS),
                    None::<&()>,
                )
                .await
                .expect("events page");
            if page.events.is_empty() {
                return out;
            }
            out.extend(page.events);
        }
    }

    pub async fn daily_report(&self, token: &str, depot: DepotId, date: NaiveDate) -> wire::DailyReport {
        let path = paths::fill(paths::DEPOT_DAILY_REPORT, &[("depot_id", &depot.to_string())]);
        self.send(Method::GET, Some(token), &format!("{path}?date={date}"), None::<&()>)
            .await
            .expect("daily report")
    }
}
