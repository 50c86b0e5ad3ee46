//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and core's schemas, so it cannot drift from the code.

use crate::api::{
    admin, audit, call_ahead, calls, campaigns, dashboard, direct_calls, health, metrics, pickup_points,
    privacy, reports, reschedule, routes, templates, tokens, webhooks,
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
        privacy::get_retention,
        privacy::save_retention,
        privacy::erase,
        call_ahead::get_settings,
        call_ahead::save_settings,
        audit::digest,
        audit::stop_audit,
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
        routes::report_position,
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
        direct_calls::dial_direct,
        direct_calls::set_recording,
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
        callahead_core::wire::AuditDigest,
        callahead_core::wire::AuditRecord,
        callahead_core::wire::AuditExport,
        callahead_core::wire::ErrorCode,
        callahead_core::wire::ServerFrame,
        callahead_core::wire::Event,
        callahead_core::wire::EventKind,
    )),
    modifiers(&BearerAuth, &ErrorResponses),
    tags(
        (name = "health"), (name = "admin", description = "Depots and accounts (admin token)"),
        (name = "auth", description = "Courier apps refresh their tokens (docs/adr/0007-token-lifecycle.md)"),
        (name = "routes"), (name = "calls"),
        (name = "campaigns", description = "CRM: campaigns, trigger rules, order events, operator queue"),
        (name = "reports", description = "A depot's day in numbers (admin, the depot's supervisors)"),
        (name = "audit", description = "The tamper-evident audit chain: digests to keep, one order's history with its links (admin, the depot's supervisors and integrators)"),
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

/// Every operation's error answers, stated per status, each in the one error
/// shape (`ErrorBody`) with the codes it can carry. Derived from what the
/// operation takes, as the server's extractors refuse it: a body can be
/// malformed (400), too large (413) or not JSON (415); a token can be missing
/// or wrong (401) or not allowed (403); a path names something that may not
/// exist (404). Handlers declare the rest themselves (409, 429). The generic
/// `4XX` a handler may still carry is replaced by these.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses.remove("4XX");
                let has_body = op.request_body.is_some();
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let has_query = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query));
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                // The customer page answers in HTML, limits included.
                if op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "reschedule")) {
                    for (status, description) in [
                        ("429", "too many requests from this address (an HTML page; `Retry-After`)"),
                        ("403", "a form posted from another site (an HTML page)"),
                        ("500", "a server fault, logged (an HTML page)"),
                        ("503", "the server is stopping (an HTML page)"),
                    ] {
                        responses.entry(status.to_owned()).or_insert_with(|| html_response(description));
                    }
                }
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| error_response(description));
                };
                if has_body || has_query || in_path {
                    add(
                        "400",
                        "`malformed_json` (not JSON, or a field of the wrong type, missing or unknown: `field` \
                         names it), `validation_failed`, `invalid_phone`, `invalid_time_zone`, `invalid_date`",
                    );
                }
                if secured {
                    add("401", "`missing_token`, `invalid_token`, `token_expired`");
                    add("403", "`forbidden`: this token's role may not do this");
                    add(
                        "429",
                        "`rate_limited` (too many failed authentications from this address, or writes from this \
                         token; wait `Retry-After` seconds), `too_many_active_calls`, `too_many_sockets`, \
                         `quota_exceeded` (docs/security.md)",
                    );
                }
                if has_body {
                    add("408", "`request_timeout`: the body did not arrive in time");
                }
                if in_path {
                    add("404", "the named resource does not exist or is not yours (`*_not_found`)");
                }
                if has_body {
                    add("413", "`payload_too_large`: the body is over the server's limit (1 MiB by default)");
                    add("415", "`unsupported_media_type`: send `Content-Type: application/json`");
                }
                add("500", "`internal`: a server fault, logged; retry later");
                add("503", "`unavailable`: the server is stopping or overloaded; retry later");
            }
        }
    }
}

fn html_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder, Type};
    let text = ObjectBuilder::new().schema_type(Type::String).build();
    ResponseBuilder::new()
        .description(description)
        .content("text/html", ContentBuilder::new().schema(Some(text)).build())
        .build()
        .into()
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        )
        .build()
        .into()
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
