//! The OpenAPI 3.1 description, served at `/openapi.json`, with Swagger UI at `/docs`.
//! The UI's files ship inside `utoipa-swagger-ui` (feature `vendored`), so nothing is
//! fetched at build or run time.
//!
//! Both are served without a token: a browser cannot attach a bearer token to a page
//! load, and the description holds nothing secret. "Try it out" in the UI needs the
//! token, entered with its Authorize button.
//!
//! The document must say exactly what the server does: clients are generated from it,
//! and `tests/openapi_conformance.rs` runs Schemathesis against a live server with it.
//! It is made in two steps:
//!
//! 1. utoipa generates paths, parameters, status codes and descriptions from the
//!    handlers' `#[utoipa::path]` annotations, and schemas from the wire types.
//! 2. [`exact`] then states what utoipa cannot: the formats of string inputs (the very
//!    patterns the server checks, from [`crate::formats`]), `filter` as JSON in a query
//!    parameter, bodies whose rules span fields (LOOKUP keys, PATCH), responses that
//!    `mask`/`countonly` reshape, the shapes of engine types (legs, events, status), and
//!    that every field of a response object is always present and no other is.

mod exact;

use crate::conferences::{self, lookup, participants, topology, wire};
use crate::error::ErrorBody;
use crate::{admin, calls};
use axum::Router;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard HTTP API",
        description = "Conference management (`/rest/v1/uc/conferences`, the reference dialect) and calls (`/v1/calls`).\n\n\
Every endpoint but `/health`, `/openapi.json` and `/docs` needs `Authorization: Bearer <credential>`: the static \
`--api-token` (a superuser over every domain), an API key (`/v1/keys`) or a token from `POST /auth`. Keys and tokens carry \
a domain and a role: an admin sees its own domain, a user its own calls and the conferences it takes part in, and no \
`admin` endpoint (403). Another domain's objects are 404, exactly like missing ones, and never counted or listed. \
A server with no credential configured only listens on loopback and is open.\n\n\
Errors are always `{\"error_code\": 1000 + HTTP status, \"error_message\": \"...\"}` (schema `ErrorBody`), also for a \
method a path does not serve (405) and a path that does not exist (404).\n\n\
**LOOKUP**: the reference's custom verb `LOOKUP /rest/v1/uc/conferences` (JSON body) is served as is; OpenAPI cannot \
describe custom verbs, so it is documented as its twin `POST /rest/v1/uc/conferences/lookup`.\n\n\
**From a script**: wherever a path has `{confid}`, a lookup expression `key=value` may stand instead \
(e.g. `/rest/v1/uc/conferences/callid=abc%40host/participants`, `.../from=2216&mode=number/topology`); \
the first matching conference (oldest) is used. The parameter's `pattern` is the exact syntax.\n\n\
**List options** (both lists): `filter` = JSON object of field values (array value = any of), \
`mask` = comma-separated fields (unknown names ignored), `order` = comma-separated fields with `-` for descending, \
`offset`, `limit`, `flat` (nested objects to `a.b` keys), `countonly` (`{\"count\":N}`). Unknown query parameters are a 400. \
Every string input is checked against the `pattern` given here; what does not match is a 400.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::health,
        conferences::list_conferences, conferences::lookup_post, conferences::get_conference, conferences::end_conference,
        participants::list, participants::dial_out, participants::get_one, participants::kick, participants::patch,
        topology::get, topology::change,
        conferences::media::play_room, conferences::media::stop_room, conferences::media::play_participant, conferences::media::stop_participant,
        conferences::media::get_recording, conferences::media::start_recording, conferences::media::pause_recording, conferences::media::stop_recording,
        conferences::media::list_recordings, conferences::media::download_recording,
        calls::place, calls::list, calls::get_one, calls::hang_up, calls::redirect, calls::intercept,
        crate::live_audio::start_room, crate::live_audio::stop_room, crate::live_audio::start_leg, crate::live_audio::stop_leg, crate::live_audio::list_streams,
        crate::call_control::hold, crate::call_control::unhold, crate::call_control::transfer, crate::call_control::record, crate::call_control::record_stop, crate::call_control::dtmf, crate::call_control::conference, crate::call_control::supervise,
        crate::status::status, crate::status::events, crate::event_stream::stream,
        crate::webhooks::list_webhooks, crate::webhooks::create_webhook, crate::webhooks::get_webhook, crate::webhooks::patch_webhook,
        crate::webhooks::delete_webhook, crate::webhooks::rotate_webhook,
        admin::list_domains, admin::create_domain, admin::get_domain, admin::patch_domain, admin::delete_domain,
        admin::list_users, admin::create_user, admin::get_user, admin::patch_user, admin::delete_user, admin::set_password,
        admin::list_apps, admin::create_app, admin::get_app, admin::patch_app, admin::delete_app, admin::list_wcs_hooks,
        admin::list_keys, admin::create_key, admin::delete_key, admin::list_registrations,
        crate::messages::send, crate::messages::list,
    ),
    components(schemas(
        ErrorBody, wire::Conference, wire::Participant, wire::ParticipantState, wire::CallDirection, wire::ConfidReply,
        wire::ParticipantRef, wire::Count, wire::DialOutBody, wire::ParticipantPatchBody, wire::TopologyRule,
        lookup::LookupBody, lookup::FromMode, calls::PlaceCall, calls::RedirectBody, calls::InterceptBody,
        crate::call_control::HoldBody, crate::call_control::HoldMode, crate::call_control::TransferBody, crate::call_control::DtmfBody, crate::call_control::ConferenceBody, crate::call_control::SuperviseBody,
        admin::DomainView, admin::NewDomainBody, admin::DomainPatchBody, admin::UserView, admin::NewUserBody, admin::UserPatchBody,
        admin::PasswordBody, admin::RoleName, admin::AppView, admin::NewAppBody, admin::AppPatchBody, admin::KeyView, admin::NewKeyView,
        admin::NewKeyBody, admin::RegistrationView, admin::HookBacklogView,
        conferences::media::PromptBody, conferences::media::PromptStarted, conferences::media::RoomRecording, conferences::media::RecordingFileView,
        conferences::media::RecordBody, conferences::media::RecordPatchBody, conferences::media::RecordingView,
        crate::live_audio::RoomStreamBody, crate::live_audio::LegStreamBody, crate::live_audio::StreamDirection, crate::live_audio::StreamView, crate::live_audio::StreamStateView,
        crate::webhooks::WebhookView, crate::webhooks::NewWebhookView, crate::webhooks::NewWebhookBody, crate::webhooks::WebhookPatchBody,
        crate::messages::NewMessageBody, crate::messages::MessageView, crate::messages::MessageState,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "conferences", description = "Active conferences (rooms): list, LOOKUP, get, end"),
        (name = "participants", description = "Participants: list, dial-out, get, kick, mute/deaf"),
        (name = "topology", description = "Who hears whom"),
        (name = "media", description = "(ours) Prompts to rooms and participants; room recordings and their files"),
        (name = "calls", description = "Single calls (legs)"),
        (name = "service", description = "Liveness, status, events"),
        (name = "events", description = "(ours) The durable event outbox: Server-Sent Events and signed webhooks"),
        (name = "messages", description = "(ours) Instant messages (SIP MESSAGE) to users' devices, kept for those offline"),
        (name = "admin", description = "The directory: domains, users, apps, API keys, registrations (admin credentials)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The document served at `/openapi.json`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the generated OpenAPI serializes");
    exact::apply(&mut doc);
    doc
}

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::from(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document()))
}
