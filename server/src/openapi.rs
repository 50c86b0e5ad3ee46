//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and core's schemas, so it cannot drift from the code.

use crate::api::{
    admin, calls, campaigns, dashboard, direct_calls, health, metrics, pickup_points, reports, reschedule,
    routes, templates, tokens, webhooks,
};
use crate::{dashboard as page, ws};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Callahead API", version = "1", description = "Robot call-ahead for delivery couriers."),
    paths(
        health::healthz,
        health::openapi_json,
        admin::create_depot,
        admin::create_courier,
        admin::create_supervisor,
        admin::create_integrator_key,
        admin::get_send_limits,
        admin::save_send_limits,
        tokens::refresh,
        tokens::list_tokens,
        tokens::revoke_token,
        tokens::sign_in_courier,
        tokens::deactivate_courier,
        tokens::issue_supervisor_token,
        tokens::deactivate_supervisor,
        metrics::metrics,
        routes::import_route,
        routes::my_route,
        routes::courier_route,
        routes::plan_route,
        templates::get_templates,
        templates::save_templates,
        pickup_points::get_pickup_points,
        pickup_points::save_pickup_points,
        campaigns::create_campaign,
        campaigns::list_campaigns,
        campaigns::enroll,
        campaigns::list_runs,
        campaigns::create_rule,
        campaigns::list_rules,
        campaigns::order_event,
        campaigns::operator_queue,
        reports::daily_report,
        calls::create_call,
        calls::list_calls,
        calls::get_call,
        calls::cancel_call,
        direct_calls::log_direct_call,
        reschedule::show,
        reschedule::pick,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_secret,
        webhooks::list_failures,
        webhooks::list_dead_letters,
        webhooks::replay_all,
        webhooks::replay_one,
        ws::websocket,
        dashboard::list_depots,
        dashboard::depot_dashboard,
        dashboard::stop_timeline,
        dashboard::list_events,
        page::page,
        page::script,
        page::style,
    ),
    components(schemas(
        callahead_core::wire::ErrorBody,
        callahead_core::wire::ErrorCode,
        callahead_core::wire::ServerFrame,
        callahead_core::wire::Event,
        callahead_core::wire::EventKind,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "health"), (name = "admin", description = "Depots and accounts (admin token)"),
        (name = "auth", description = "Courier apps refresh their tokens (docs/adr/0007-token-lifecycle.md)"),
        (name = "routes"), (name = "calls"),
        (name = "campaigns", description = "CRM: campaigns, trigger rules, order events, operator queue"),
        (name = "reports", description = "A depot's day in numbers (admin, the depot's supervisors)"),
        (name = "reschedule", description = "The customer's page behind the SMS link (HTML)"),
        (name = "push", description = "Live events over a websocket"),
        (name = "webhooks", description = "Signed event delivery to an integrator's endpoints; see docs/webhooks.md"),
        (name = "dashboard", description = "The supervisor's live dashboard: its page and what it reads"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
