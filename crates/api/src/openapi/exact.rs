//! Step 2 of the document (see the parent module): what utoipa's annotations cannot say,
//! written as JSON Schema over the generated document. Every pattern comes from
//! [`crate::formats`], which the handlers check with the same text.

use crate::conferences::wire::{Conference, Participant};
use crate::formats;
use serde_json::{json, Map, Value};

const CONFERENCES: &str = "/rest/v1/uc/conferences";
const CONFERENCE: &str = "/rest/v1/uc/conferences/{confid}";
const PARTICIPANTS: &str = "/rest/v1/uc/conferences/{confid}/participants";
const PARTICIPANT: &str = "/rest/v1/uc/conferences/{confid}/participants/{participantid}";

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// An integer from 0 to `max`.
fn count(max: u64) -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": max })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

pub(super) fn apply(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().expect("components.schemas");
    // Response objects: every field is always present (options are null), no other is.
    for name in [
        "ErrorBody", "Conference", "Participant", "ConfidReply", "ParticipantRef", "Count", "TopologyRule", "DomainView", "UserView",
        "AppView", "KeyView", "RegistrationView", "PromptStarted", "RoomRecording", "RecordingFileView", "RecordingView", "WebhookView",
        "MessageView",
        "StreamView",
        "HookBacklogView",
    ] {
        close(schemas.get_mut(name).unwrap_or_else(|| panic!("schema {name}")));
    }
    schemas["ErrorBody"]["properties"]["error_code"] = json!({
        "type": "integer", "minimum": 1400, "maximum": 1599,
        "description": "1000 + the HTTP status: 1400 bad input, 1401 missing/invalid token, 1404 not found, \
                        1405 method not allowed, 1409 conflict, 1422 no route, 1503 unavailable."
    });
    // mask: the same fields, any of them
    let conference_fields = fields_of(&schemas["Conference"], "Some fields of a conference (a `mask` was given).");
    let participant_fields = fields_of(&schemas["Participant"], "Some fields of a participant (a `mask` was given).");
    schemas.insert("ConferenceFields".into(), conference_fields);
    schemas.insert("ParticipantFields".into(), participant_fields);
    schemas.insert("ConferenceFilter".into(), filter_of(&schemas["Conference"], Conference::FIELDS, "conferences"));
    schemas.insert("ParticipantFilter".into(), filter_of(&schemas["Participant"], Participant::FIELDS, "participants"));
    schemas.insert("Leg".into(), leg());
    schemas.insert("Call".into(), call());
    call_control_bodies(schemas);
    schemas.insert("Event".into(), event());
    schemas.insert("Status".into(), status());
    lookup_body(&mut schemas["LookupBody"]);
    dial_out_body(&mut schemas["DialOutBody"]);
    patch_body(&mut schemas["ParticipantPatchBody"]);
    prompt_body(&mut schemas["PromptBody"]);
    place_call_body(&mut schemas["PlaceCall"]);
    admin_schemas(schemas);
    webhook_schemas(schemas);
    message_schemas(schemas);
    live_audio_schemas(schemas);

    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (_, op) in item.as_object_mut().expect("path item").iter_mut() {
            for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                parameter(path, p);
            }
        }
    }

    let list_of = |item: &str, fields: &str| {
        json!({ "anyOf": [
            { "type": "array", "items": schema_ref(item) },
            { "type": "array", "items": schema_ref(fields) },
            schema_ref("Count"),
        ]})
    };
    let one_of = |item: &str, fields: &str| json!({ "anyOf": [schema_ref(item), schema_ref(fields)] });
    for (path, method, status, schema) in [
        ("/health", "get", "200", json!({
            "type": "object", "required": ["status", "version"], "additionalProperties": false,
            "properties": { "status": { "const": "ok" }, "version": { "type": "string" } }
        })),
        (CONFERENCES, "get", "200", list_of("Conference", "ConferenceFields")),
        ("/rest/v1/uc/conferences/lookup", "post", "200", json!({ "type": "array", "items": { "type": "string" }, "minItems": 1 })),
        (CONFERENCE, "get", "200", one_of("Conference", "ConferenceFields")),
        (PARTICIPANTS, "get", "200", list_of("Participant", "ParticipantFields")),
        (PARTICIPANT, "get", "200", one_of("Participant", "ParticipantFields")),
        ("/v1/calls", "post", "201", leg_or_call()),
        ("/v1/calls", "get", "200", json!({ "type": "array", "items": leg_or_call() })),
        ("/v1/calls/{leg_id}", "get", "200", leg_or_call()),
        ("/v1/calls/{leg_id}", "delete", "200", leg_or_call()),
        ("/v1/status", "get", "200", schema_ref("Status")),
        ("/v1/events", "get", "200", json!({ "type": "array", "items": schema_ref("Event") })),
        (
            "/rest/v1/uc/conferences/{confid}/topology",
            "post",
            "requestBody",
            json!({ "oneOf": [
                { "type": "array", "items": schema_ref("TopologyRule") },
                schema_ref("TopologyRule"),
            ]}),
        ),
    ] {
        let op = &mut paths[path][method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        let content = if status == "requestBody" { &mut op["requestBody"] } else { &mut op["responses"][status] };
        assert!(content.is_object(), "{method} {path}: no {status} to describe");
        content["content"]["application/json"]["schema"] = schema;
    }
    // One server-sent event of the stream (as Schemathesis and SSE-aware clients read it).
    paths["/v1/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"] = json!({
        "type": "object",
        "description": "One event: `id` its seq, `event` its type, `data` the event's JSON (schema `Event`, plus `seq`).",
        "required": ["id", "event", "data"],
        "properties": {
            "id": { "type": "string", "pattern": "^[1-9][0-9]{0,18}$" },
            "event": { "type": "string", "pattern": formats::EVENT_TYPE },
            "data": { "type": "string", "contentMediaType": "application/json", "minLength": 2 },
            "retry": { "type": "integer" },
        },
    });
    // Starting a recording with no body at all means the defaults.
    paths["/rest/v1/uc/conferences/{confid}/recording"]["post"]["requestBody"]["required"] = json!(false);
    for op in ["hold", "unhold", "transfer", "record", "record/stop", "dtmf", "conference", "supervise", "redirect", "intercept"] {
        let path = format!("/v1/calls/{{leg_id}}/{op}");
        let response = &mut paths[&path]["post"]["responses"]["200"];
        assert!(response.is_object(), "post {path}: no 200");
        response["content"]["application/json"]["schema"] = schema_ref("Call");
    }
    links(paths);
}

/// OpenAPI links: which answer gives the ids another operation takes (for client
/// generators and for Schemathesis' stateful phase). Only answers that always carry
/// the ids: a list may be empty or reshaped by its options.
fn links(paths: &mut Map<String, Value>) {
    let conference_ops = ["get_conference", "end_conference", "list_participants", "dial_out", "get_topology", "change_topology"];
    let participant_ops = ["get_participant", "patch_participant", "kick_participant"];
    let call_ops = ["get_call", "hang_up_call"];
    for (path, method, status, targets, parameters) in [
        ("/rest/v1/uc/conferences/lookup", "post", "200", &conference_ops[..], json!({ "confid": "$response.body#/0" })),
        (PARTICIPANTS, "post", "200", &participant_ops[..], json!({ "confid": "$response.body#/confid", "participantid": "$response.body#/participantid" })),
        (PARTICIPANTS, "get", "200", &participant_ops[..], json!({ "confid": "$request.path.confid", "participantid": "$response.body#/0/participantid" })),
        ("/v1/calls", "post", "201", &call_ops[..], json!({ "leg_id": "$response.body#/leg_id" })),
    ] {
        let response = &mut paths[path][method]["responses"][status];
        assert!(response.is_object(), "{method} {path} {status}");
        let links: Map<String, Value> = targets
            .iter()
            .map(|op| (op.to_string(), json!({ "operationId": op, "parameters": parameters })))
            .collect();
        response["links"] = Value::Object(links);
    }
}

/// Webhooks: the bodies' formats, and the answer that shows a secret.
fn webhook_schemas(schemas: &mut Map<String, Value>) {
    let url = || json!({ "type": "string", "pattern": formats::WEBHOOK_URL, "maxLength": formats::WEBHOOK_URL_MAX, "example": "https://hooks.example.com/switchboard" });
    let types = || json!({ "type": "array", "items": text(formats::EVENT_TYPE), "maxItems": 64, "example": ["call_started", "call_ended"] });
    let flag = || json!({ "type": ["boolean", "null"] });
    for (name, props) in [
        ("NewWebhookBody", json!({ "url": url(), "events": or_null(types()), "enabled": flag(), "domain": or_null(domain_name()) })),
        ("WebhookPatchBody", json!({ "url": or_null(url()), "events": or_null(types()), "enabled": flag() })),
    ] {
        let schema = &mut schemas[name];
        for (k, v) in props.as_object().expect("object") {
            assert!(schema["properties"].get(k).is_some(), "no field {k} in {name}");
            let description = schema["properties"][k].get("description").cloned();
            schema["properties"][k] = v.clone();
            if let Some(d) = description {
                schema["properties"][k]["description"] = d;
            }
        }
        assert_eq!(schema["properties"].as_object().map(|p| p.len()), props.as_object().map(|p| p.len()), "{name}: every field described");
        schema["additionalProperties"] = json!(false);
    }
    schemas["NewWebhookBody"]["required"] = json!(["url"]);
    schemas["WebhookPatchBody"]["anyOf"] = json!([
        { "required": ["url"], "properties": { "url": { "type": "string" } } },
        { "required": ["events"], "properties": { "events": { "type": "array" } } },
        { "required": ["enabled"], "properties": { "enabled": { "type": "boolean" } } },
    ]);
    let mut new = schemas["WebhookView"].clone();
    new["properties"]["secret"] = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$", "description": "The signing secret (its hex text is the HMAC key); shown only this once." });
    close(&mut new);
    new["description"] = json!("A webhook just made or rotated: its view and, this once, its signing secret.");
    schemas.insert("NewWebhookView".into(), new);
}

/// Instant messages: the body's formats (each the server's own check), the answer's
/// state and origin.
fn message_schemas(schemas: &mut Map<String, Value>) {
    let body = &mut schemas["NewMessageBody"];
    body["properties"]["body"] = json!({ "type": "string", "pattern": formats::MESSAGE_BODY, "maxLength": formats::MESSAGE_BODY_MAX, "example": "Your 3 pm is here" });
    body["properties"]["content_type"] = or_null(json!({ "type": "string", "pattern": formats::CONTENT_TYPE, "example": "text/plain" }));
    body["properties"]["from"] = or_null(json!({ "type": "string", "pattern": formats::MESSAGE_FROM, "example": "reception" }));
    assert_eq!(body["properties"].as_object().map(|p| p.len()), Some(3), "NewMessageBody: every field described");
    body["required"] = json!(["body"]);
    body["additionalProperties"] = json!(false);
    schemas["MessageView"]["properties"]["origin"] = json!({ "enum": ["sip", "api"] });
}

/// All properties required, no others allowed.
fn close(schema: &mut Value) {
    let names: Vec<Value> = schema["properties"].as_object().expect("object schema").keys().cloned().map(Value::String).collect();
    schema["required"] = Value::Array(names);
    schema["additionalProperties"] = json!(false);
}

/// The same properties as `item`, none required.
fn fields_of(item: &Value, description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "properties": item["properties"],
        "additionalProperties": false,
    })
}

/// `filter`: a JSON object whose keys are the item's fields and whose values are a
/// scalar or an array of scalars (any of).
fn filter_of(item: &Value, fields: &[&str], what: &str) -> Value {
    let scalar = json!({ "type": ["string", "number", "boolean", "null"] });
    let value = json!({ "anyOf": [scalar, { "type": "array", "items": scalar }] });
    let properties: Map<String, Value> = fields.iter().map(|f| (f.to_string(), value.clone())).collect();
    assert_eq!(item["properties"].as_object().map(|p| p.len()), Some(fields.len()), "{what}: FIELDS and the schema disagree");
    json!({
        "type": "object",
        "description": format!("Keeps the {what} whose fields all match: a value, or an array of values (any of). \
                                Strings and numbers compare as text (`{{\"confroomnum\": 9}}` matches `\"9\"`)."),
        "properties": properties,
        "additionalProperties": false,
    })
}

/// Parameters by name (and, where it matters, by path).
fn parameter(path: &str, p: &mut Value) {
    let name = p["name"].as_str().unwrap_or_default().to_owned();
    let fields = if path == CONFERENCES { Some(Conference::FIELDS) } else if path == PARTICIPANTS { Some(Participant::FIELDS) } else { None };
    let schema = match name.as_str() {
        "confid" => json!({ "type": "string", "pattern": formats::conference_ref(), "example": "rCF-001-PhKjyX" }),
        "participantid" | "leg_id" => json!({ "type": "string", "minLength": 1 }),
        "mask" => json!({ "type": "string", "example": "participantid,state" }),
        "flat" | "countonly" => json!({ "type": "string", "enum": formats::FLAG_VALUES }),
        "offset" | "limit" if fields.is_some() => count(u64::MAX),
        "state" if path.ends_with("/messages") => json!({ "type": "string", "enum": ["pending", "delivered", "failed"] }),
        "limit" if path.ends_with("/messages") => json!({ "type": "integer", "minimum": 1, "maximum": crate::messages::MAX_LIST }),
        "after" => count(u64::MAX),
        "limit" => count(crate::status::MAX_EVENTS),
        "order" => {
            let fields = fields.unwrap_or_else(|| panic!("order on {path}"));
            json!({ "type": "string", "pattern": formats::order(fields), "example": format!("-{}", fields[fields.len() - 1]) })
        }
        "filter" => {
            let filter = if path == CONFERENCES { "ConferenceFilter" } else { "ParticipantFilter" };
            let p = p.as_object_mut().expect("parameter");
            p.remove("schema");
            p.insert("content".into(), json!({ "application/json": { "schema": schema_ref(filter) } }));
            return;
        }
        "Idempotency-Key" => json!({ "type": "string", "pattern": formats::IDEMPOTENCY_KEY }),
        "name" if path.starts_with("/v1/domains") => domain_name(),
        "domain" if path == "/v1/users" => domain_name(),
        "name" if path.starts_with("/v1/keys") => text(formats::LOGIN),
        "client_id" => text(formats::LOGIN),
        "id" | "webhook_id" => json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX }),
        "Last-Event-ID" => count(u64::MAX),
        "domain" if path == "/v1/events/stream" => domain_name(),
        "follow" => json!({ "type": "string", "enum": ["true", "false", "1", "0"] }),
        "kind" if path == "/v1/calls" => json!({ "type": "string", "enum": ["leg", "call"] }),
        "recording_id" => json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}~[A-Za-z0-9._-]{1,128}$", "example": "rCF-001-PhKjyX~1-mix" }),
        other => panic!("parameter {other} of {path} has no exact schema"),
    };
    p["schema"] = schema;
}

/// `/v1/calls` answers with legs (UUID `leg_id`) or two-party calls (integer `call_id`).
fn leg_or_call() -> Value {
    json!({ "anyOf": [schema_ref("Leg"), schema_ref("Call")] })
}

/// Properties of a two-party call (`CallInfo`), shared by `Call` and the call events.
fn call_properties() -> Map<String, Value> {
    let nullable_ms = || json!({ "type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX });
    let side = || json!({ "enum": ["caller", "callee", null] });
    let party = object(
        "One party: its SIP URI and, for a directory user, who it is.",
        json!({
            "uri": { "type": "string" }, "user_id": { "type": ["integer", "null"] }, "ext": nullable("string"),
            "display_name": nullable("string"),
        })
        .as_object()
        .expect("object")
        .clone(),
    );
    let props = json!({
        "call_id": { "type": "integer", "minimum": 1, "maximum": i64::MAX, "description": "The call's id, for `/v1/calls/{id}/…`." },
        "domain": { "type": "string" },
        "state": { "enum": ["ringing", "active", "held", "ended"] },
        "caller": party, "callee": party,
        "caller_leg": nullable("string"), "callee_leg": nullable("string"),
        "ringing_legs": { "type": "array", "items": { "type": "string" }, "description": "Every leg rung for the callee (forking)." },
        "started_ms": count(u64::MAX), "answered_ms": nullable_ms(), "ended_ms": nullable_ms(),
        "disposition": { "enum": ["answered", "busy", "no_answer", "unavailable", "cancelled", "failed", null] },
        "hangup_by": side(), "caller_codec": nullable("string"), "callee_codec": nullable("string"), "held": side(),
        "recordings": { "type": "array", "items": { "type": "string" }, "description": "WAV files, relative to the data dir." },
        "api_originated": { "type": "boolean" },
    });
    props.as_object().expect("object").clone()
}

fn call() -> Value {
    object("A two-party call between users (or a user and the gateway).", call_properties())
}

/// Live audio: the URL format the server checks, the rates and directions it takes.
fn live_audio_schemas(schemas: &mut Map<String, Value>) {
    let url = json!({ "type": "string", "pattern": formats::WS_URL, "maxLength": 2048, "example": "ws://127.0.0.1:9000/audio" });
    let rate = json!({ "enum": [8000, 16000, null] });
    let direction = json!({ "enum": ["says", "hears", "both"] });
    for body in ["RoomStreamBody", "LegStreamBody"] {
        let props = &mut schemas[body]["properties"];
        props["url"] = url.clone();
        props["sample_rate"] = rate.clone();
        props["play_back"] = json!({ "type": "boolean" });
    }
    schemas["LegStreamBody"]["properties"]["direction"] = direction.clone();
    schemas["StreamDirection"] = direction;
    let view = &mut schemas["StreamView"]["properties"];
    view["sample_rate"] = json!({ "enum": [8000, 16000] });
    view["direction"] = json!({ "enum": ["says", "hears", "both", null] });
    view["started_ms"] = count(u64::MAX);
    // `GET /v1/streams`: a stream's fields and its counters, in one closed object.
    let mut state = schemas["StreamView"].clone();
    for k in ["dropped_out", "dropped_back", "underruns"] {
        state["properties"][k] = count(u64::MAX);
    }
    state["description"] = json!("A live stream and how it is going: frames the receiver did not take in time (`dropped_out`), playback refused as too much (`dropped_back`), playback running dry (`underruns`).");
    close(&mut state);
    schemas.insert("StreamStateView".into(), state);
}

/// Bodies of mid-call control: the enums and formats the server checks.
fn call_control_bodies(schemas: &mut Map<String, Value>) {
    let side = json!({ "enum": ["caller", "callee"] });
    let call_id = json!({ "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX });
    let target = || json!({ "type": "string", "pattern": formats::dial_target() });
    schemas["HoldBody"]["properties"]["side"] = side.clone();
    schemas["HoldBody"]["properties"]["mode"] = json!({ "enum": ["sendonly", "inactive"] });
    schemas["TransferBody"]["properties"]["side"] = side.clone();
    schemas["TransferBody"]["properties"]["to"] = or_null(target());
    schemas["TransferBody"]["properties"]["replaces"] = call_id;
    schemas["TransferBody"]["anyOf"] = json!([
        { "required": ["to"], "properties": { "to": { "type": "string" } } },
        { "required": ["replaces"], "properties": { "replaces": { "type": "integer" } } },
    ]);
    schemas["DtmfBody"]["properties"]["side"] = side;
    schemas["DtmfBody"]["properties"]["digits"] = text(formats::DTMF_DIGITS);
    schemas["DtmfBody"]["properties"]["method"] = json!({ "enum": ["rfc4733", "info"] });
    schemas["SuperviseBody"]["properties"]["to"] = target();
    schemas["SuperviseBody"]["properties"]["mode"] = json!({ "enum": ["listen", "whisper", "barge"] });
    let room = json!({ "type": "string", "pattern": "^[0-9]{1,32}$" });
    let confid = json!({ "type": "string", "pattern": formats::conference_ref() });
    schemas["ConferenceBody"]["properties"]["room"] = or_null(room.clone());
    schemas["ConferenceBody"]["properties"]["confid"] = or_null(confid.clone());
    schemas["ConferenceBody"]["oneOf"] = json!([
        { "required": ["confid"], "properties": { "confid": confid, "room": { "type": "null" } } },
        { "required": ["room"], "properties": { "room": room, "confid": { "type": "null" } } },
    ]);
}

fn text_or_number() -> Value {
    json!({ "type": ["string", "number"] })
}

fn lookup_body(schema: &mut Value) {
    let keys = [
        "dialogid", "inviteid", "callid", "uri", "from", "sipuserid", "sipuserlogin", "sipuserphonenumber", "userid", "confid",
        "confuri", "confroomnum", "confnumber",
    ];
    let props = schema["properties"].as_object_mut().expect("LookupBody properties");
    for key in keys {
        let description = props[key].get("description").cloned();
        let mut p = if key == "uri" || key == "confuri" {
            json!({ "type": "string", "pattern": formats::lookup_uri() })
        } else {
            text_or_number()
        };
        if let Some(d) = description {
            p["description"] = d;
        }
        props[key] = p;
    }
    props["mode"] = json!({ "enum": ["number", "sipuser"], "description": "With `from` only: how to read it." });
    schema["anyOf"] = keys.iter().map(|k| json!({ "required": [k] })).collect();
    schema["dependentRequired"] = json!({ "mode": ["from"] });
    schema["if"] = json!({ "required": ["mode"], "properties": { "mode": { "const": "number" } } });
    schema["then"] = json!({ "properties": { "from": { "anyOf": [
        { "type": "string", "pattern": formats::FROM_NUMBER },
        count(u64::MAX),
    ]}}});
}

fn dial_out_body(schema: &mut Value) {
    let to = &mut schema["properties"]["to"];
    let description = to["description"].clone();
    *to = json!({
        "description": description,
        "anyOf": [{ "type": "string", "pattern": formats::dial_target() }, count(u64::MAX)],
        "example": "2216",
    });
}

fn patch_body(schema: &mut Value) {
    schema["anyOf"] = json!([
        { "required": ["muted"], "properties": { "muted": { "type": "boolean" } } },
        { "required": ["deaf"], "properties": { "deaf": { "type": "boolean" } } },
        { "required": ["gain_in_db"], "properties": { "gain_in_db": { "type": "number" } } },
        { "required": ["gain_out_db"], "properties": { "gain_out_db": { "type": "number" } } },
    ]);
    for key in ["gain_in_db", "gain_out_db"] {
        let description = schema["properties"][key]["description"].clone();
        schema["properties"][key] = gain_db();
        schema["properties"][key]["description"] = description;
    }
    schema["description"] = json!("Body of PATCH on a participant (ours): `muted`, `deaf`, `gain_in_db` and/or `gain_out_db`, at least one of them not null.");
}

/// `prompt` and/or `tones`, each in its exact syntax (a tone step out of range is a 422).
fn prompt_body(schema: &mut Value) {
    // null is "not given": at least one of the two must be a string.
    schema["anyOf"] = json!([
        { "required": ["prompt"], "properties": { "prompt": { "type": "string" } } },
        { "required": ["tones"], "properties": { "tones": { "type": "string" } } },
    ]);
    let props = &mut schema["properties"];
    props["prompt"] = json!({ "type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,64}$", "example": "beep" });
    let step = r"[0-9]{1,4}(\+[0-9]{1,4})?/[0-9]{1,6}";
    props["tones"] = json!({ "type": ["string", "null"], "pattern": format!(r"^ *{step}( *, *{step})* *$"), "example": "440+480/2000,0/4000" });
}

/// A gain in dB, as PATCH on a participant takes it.
fn gain_db() -> Value {
    json!({ "type": ["number", "null"], "minimum": -24, "maximum": 24 })
}

fn place_call_body(schema: &mut Value) {
    let props = &mut schema["properties"];
    props["to"]["pattern"] = json!(formats::dial_target());
    props["to"]["example"] = json!("sip:bob@10.0.0.5:5070");
    props["service"] = json!({ "enum": ["echo", null], "description": "What the answered call is connected to: `echo` (the default)." });
    props["hangup_after_ms"] = json!({
        "type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX,
        "description": "Hang up this many milliseconds after answer."
    });
}

fn text(pattern: &str) -> Value {
    json!({ "type": "string", "pattern": pattern })
}

fn domain_name() -> Value {
    json!({ "type": "string", "pattern": formats::DOMAIN_NAME, "maxLength": formats::DOMAIN_NAME_MAX, "example": "alpha.example.com" })
}

/// A WCS app's hook list (store::valid_rest_methods).
fn rest_methods() -> Value {
    json!({ "type": "array", "items": { "type": "string", "pattern": "^(\\*|[A-Za-z][A-Za-z0-9]{0,63})$" }, "maxItems": store::directory::REST_METHODS_MAX })
}

/// A WCS app's hook base URL (store::valid_rest_url).
fn rest_url() -> Value {
    json!({ "type": "string", "pattern": "^https?://[!-\"$-.0->@-~][!-\"$->@-~]*$", "maxLength": 2000 })
}

fn secret() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": formats::SECRET_MAX })
}

/// Optional: the value, or null (= not given).
fn or_null(v: Value) -> Value {
    json!({ "anyOf": [v, { "type": "null" }] })
}

/// In a PATCH: the value, `""` (clear it), or null (leave it).
fn clearable(v: Value) -> Value {
    json!({ "anyOf": [v, { "const": "" }, { "type": "null" }] })
}

fn role_or_null() -> Value {
    json!({ "enum": ["admin", "user", null] })
}

/// Request bodies and answers of the admin endpoints: each string in the format the
/// server checks; a PATCH must change something (one field given, not null).
fn admin_schemas(schemas: &mut Map<String, Value>) {
    let set_props = |schema: &mut Value, props: Value| {
        let given = schema["properties"].as_object().expect("properties").len();
        let props = props.as_object().expect("object").clone();
        assert_eq!(given, props.len(), "every field described: {schema}");
        for (k, v) in props {
            assert!(schema["properties"].get(&k).is_some(), "no field {k} in {schema}");
            let description = schema["properties"][&k].get("description").cloned();
            schema["properties"][&k] = v;
            if let Some(d) = description {
                schema["properties"][&k]["description"] = d;
            }
        }
    };
    let must_change = |fields: &[(&str, Value)]| -> Value {
        fields.iter().map(|(f, t)| json!({ "required": [f], "properties": { *f: t } })).collect()
    };
    let person = || text(formats::PERSON_NAME);
    let phone = || text(formats::PHONE);
    set_props(&mut schemas["NewDomainBody"], json!({ "name": domain_name(), "realm": or_null(text(formats::REALM)) }));
    set_props(&mut schemas["DomainPatchBody"], json!({ "enabled": { "type": ["boolean", "null"] }, "add_alias": or_null(domain_name()) }));
    schemas["DomainPatchBody"]["anyOf"] = must_change(&[("enabled", json!({ "type": "boolean" })), ("add_alias", json!({ "type": "string" }))]);
    set_props(
        &mut schemas["NewUserBody"],
        json!({
            "login": text(formats::LOGIN), "password": secret(), "domain": domain_name(), "pin": or_null(text(formats::PIN)),
            "ext": or_null(text(formats::EXTENSION)), "first_name": or_null(person()), "last_name": or_null(person()),
            "display_name": or_null(person()), "did": or_null(phone()), "cell_phone": or_null(phone()), "home_phone": or_null(phone()),
            "email": or_null(text(formats::EMAIL)), "role": role_or_null(),
        }),
    );
    // the superuser must name the domain; a domain admin's own is the default (and the only one it may name)
    schemas["NewUserBody"]["required"] = json!(["login", "password", "domain"]);
    let patchable = [
        ("display_name", person()), ("first_name", person()), ("last_name", person()), ("ext", text(formats::EXTENSION)),
        ("did", phone()), ("cell_phone", phone()), ("home_phone", phone()), ("email", text(formats::EMAIL)), ("pin", text(formats::PIN)),
    ];
    let mut props: Map<String, Value> = patchable.iter().map(|(f, v)| (f.to_string(), clearable(v.clone()))).collect();
    props.insert("role".into(), role_or_null());
    props.insert("enabled".into(), json!({ "type": ["boolean", "null"] }));
    set_props(&mut schemas["UserPatchBody"], Value::Object(props));
    let mut change: Vec<(&str, Value)> = patchable.iter().map(|(f, _)| (*f, json!({ "type": "string" }))).collect();
    change.push(("role", json!({ "enum": ["admin", "user"] })));
    change.push(("enabled", json!({ "type": "boolean" })));
    schemas["UserPatchBody"]["anyOf"] = must_change(&change);
    set_props(&mut schemas["PasswordBody"], json!({ "password": secret() }));
    set_props(
        &mut schemas["NewAppBody"],
        json!({ "client_id": text(formats::LOGIN), "secret": or_null(secret()), "name": or_null(person()), "domain": or_null(domain_name()), "rest_url": or_null(rest_url()), "rest_methods": or_null(rest_methods()) }),
    );
    schemas["NewAppBody"]["anyOf"] = must_change(&[("secret", secret()), ("rest_url", rest_url())]);
    set_props(
        &mut schemas["AppPatchBody"],
        json!({ "enabled": { "type": ["boolean", "null"] }, "secret": or_null(secret()), "rest_url": clearable(rest_url()), "rest_methods": or_null(rest_methods()) }),
    );
    schemas["AppPatchBody"]["anyOf"] = must_change(&[
        ("enabled", json!({ "type": "boolean" })),
        ("secret", json!({ "type": "string" })),
        ("rest_url", json!({ "type": "string" })),
        ("rest_methods", json!({ "type": "array" })),
    ]);
    set_props(&mut schemas["NewKeyBody"], json!({ "name": text(formats::LOGIN), "role": role_or_null(), "domain": or_null(domain_name()) }));
    // the answer that creates a key: its description and, this once, the key
    let mut new_key = schemas["KeyView"].clone();
    new_key["properties"]["key"] = json!({ "type": "string", "pattern": "^sbk_[0-9a-f]{64}$", "description": "The bearer credential; not kept by the server." });
    close(&mut new_key);
    new_key["description"] = json!("A new API key: its description and the key itself, shown only this once.");
    schemas.insert("NewKeyView".into(), new_key);
}

/// Properties of a leg (`LegInfo`), shared by `Leg` and the leg events.
fn leg_properties() -> Map<String, Value> {
    let ms = || count(u64::MAX);
    let nullable_ms = || json!({ "type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX });
    let props = json!({
        "leg_id": { "type": "string", "description": "Leg id, for `/v1/calls/{leg_id}`." },
        "call_id": { "type": "string" },
        "direction": { "enum": ["inbound", "outbound"] },
        "state": { "enum": ["calling", "ringing", "active", "held", "ended"] },
        "service": {
            "description": "What the leg is connected to: `echo`, `ring`, `call` (a party of a two-party call), `ivr` (keying in a room at the conference access number), `voicemail` (at the voicemail number), `announcement` (a call the server placed to play sounds into: WCS `/rest-api/call/startup`), or `{\"room\": \"<room number>\"}`.",
            "anyOf": [
                { "enum": ["echo", "ring", "call", "ivr", "voicemail", "announcement"] },
                { "type": "object", "required": ["room"], "properties": { "room": { "type": "string" } }, "additionalProperties": false },
            ]
        },
        "remote_uri": { "type": "string" },
        "local_uri": { "type": "string" },
        "local_tag": nullable("string"),
        "remote_tag": nullable("string"),
        "started_ms": ms(),
        "answered_ms": nullable_ms(),
        "ended_ms": nullable_ms(),
        "end_status": { "type": ["integer", "null"], "minimum": 0, "maximum": 65535, "description": "SIP status that ended the leg (or 0)." },
        "end_reason": nullable("string"),
        "codec": nullable("string"),
        "domain": { "type": "string", "description": "The domain (tenant) the leg belongs to." },
    });
    props.as_object().expect("object").clone()
}

fn object(description: &str, props: Map<String, Value>) -> Value {
    let required: Vec<&String> = props.keys().collect();
    json!({ "type": "object", "description": description, "required": required, "properties": props, "additionalProperties": false })
}

fn leg() -> Value {
    object("A call leg (one side of a call the server is in).", leg_properties())
}

fn status() -> Value {
    let n = || count(u64::MAX);
    let props = json!({
        "live_legs": n(), "legs": n(), "rooms": n(), "transactions": n(), "rtp_ports_in_use": n(),
        "shutting_down": { "type": "boolean" },
        "events_dropped": { "type": "integer", "minimum": 0, "description": "Engine events the durable outbox's queue could not take since start (should stay 0)." },
    });
    let mut schema = object(
        "What the server holds right now. A credential of one domain gets its own counts and no server-wide figures \
         (`transactions`, `rtp_ports_in_use`, `events_dropped`).",
        props.as_object().expect("object").clone(),
    );
    schema["required"] = json!(["live_legs", "legs", "rooms", "shutting_down"]);
    schema
}

fn event() -> Value {
    let head = |kind: &str| {
        let mut m = Map::new();
        m.insert("seq".into(), json!({ "type": "integer", "minimum": 1, "maximum": u64::MAX }));
        m.insert("ts".into(), count(u64::MAX));
        m.insert("type".into(), json!({ "const": kind }));
        m
    };
    let room_properties = || -> Map<String, Value> {
        let props = json!({
            "confid": { "type": "string" }, "confnumber": { "type": "string" }, "confroomnum": { "type": "string" },
            "confuri": { "type": "string" }, "site": { "type": "string" }, "startts": count(u64::MAX),
            "domain": { "type": "string" },
        });
        props.as_object().expect("object").clone()
    };
    let mut variants = Vec::new();
    for kind in ["leg_started", "leg_answered", "leg_ended"] {
        let mut m = head(kind);
        m.extend(leg_properties());
        variants.push(object(&format!("`{kind}`: the leg's fields."), m));
    }
    let mut dtmf = head("dtmf");
    dtmf.insert("leg_id".into(), json!({ "type": "string" }));
    dtmf.insert("digit".into(), json!({ "type": "string", "minLength": 1, "maxLength": 1 }));
    dtmf.insert("duration_ms".into(), count(u32::MAX as u64));
    dtmf.insert("domain".into(), json!({ "type": "string" }));
    variants.push(object("`dtmf`: a digit received on a leg.", dtmf));
    let mut started = head("room_started");
    started.extend(room_properties());
    variants.push(object("`room_started`: the room's fields.", started));
    let mut ended = head("room_ended");
    ended.insert("info".into(), object("The room.", room_properties()));
    ended.insert("ended_ms".into(), count(u64::MAX));
    ended.insert("max_participants".into(), count(u32::MAX as u64));
    variants.push(object("`room_ended`: the room, when it ended, and its most participants at once.", ended));
    for kind in ["call_started", "call_ringing", "call_answered", "call_held", "call_retrieved", "call_ended"] {
        let mut m = head(kind);
        m.extend(call_properties());
        variants.push(object(&format!("`{kind}`: the call's fields."), m));
    }
    for (kind, field, what) in [
        ("call_transferred", "target", "`call_transferred`: the call and where a party went."),
        ("recording_started", "file", "`recording_started`: the call and the WAV file (relative to the data dir)."),
        ("recording_stopped", "file", "`recording_stopped`: the call and the WAV file."),
    ] {
        let mut m = head(kind);
        m.insert("info".into(), call());
        m.insert(field.into(), json!({ "type": "string" }));
        variants.push(object(what, m));
    }
    let string = || json!({ "type": "string" });
    let nullable_string = || json!({ "type": ["string", "null"] });
    let mut prompt = head("prompt_ended");
    prompt.insert("confid".into(), string());
    prompt.insert("participantid".into(), nullable_string());
    prompt.insert("prompt_id".into(), count(u64::MAX));
    prompt.insert("end".into(), string());
    prompt.insert("domain".into(), string());
    variants.push(object("`prompt_ended`: a prompt started over the API is over (`end`: finished, interrupted by <digit>, stopped, failed).", prompt));
    for kind in ["room_recording_started", "room_recording_stopped"] {
        let mut m = head(kind);
        m.insert("confid".into(), string());
        m.insert("number".into(), count(u32::MAX as u64));
        m.insert("started_ms".into(), count(u64::MAX));
        m.insert("paused".into(), json!({ "type": "boolean" }));
        m.insert("tracks".into(), json!({ "type": "boolean" }));
        let mut file = Map::new();
        file.insert("participantid".into(), nullable_string());
        file.insert("file".into(), string());
        m.insert("files".into(), json!({ "type": "array", "items": object("A file (relative to the data dir).", file) }));
        m.insert("domain".into(), string());
        variants.push(object(&format!("`{kind}`: the room's recording."), m));
    }
    let mut done = head("recording_completed");
    done.insert("confid".into(), string());
    done.insert("participantid".into(), nullable_string());
    done.insert("file".into(), string());
    done.insert("duration_ms".into(), count(u64::MAX));
    done.insert("dropped_frames".into(), count(u64::MAX));
    done.insert("failed".into(), json!({ "type": "boolean" }));
    done.insert("domain".into(), string());
    variants.push(object("`recording_completed`: a room recording's file is complete.", done));
    let id = || json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX });
    let mut accepted = head("message_accepted");
    for (k, v) in [
        ("message_id", string()), ("domain", string()), ("user_id", id()), ("to", string()), ("from", string()),
        ("from_user_id", json!({ "type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX })), ("content_type", string()),
        ("body", string()), ("origin", json!({ "enum": ["sip", "api"] })), ("created_ms", count(u64::MAX)),
    ] {
        accepted.insert(k.into(), v);
    }
    variants.push(object("`message_accepted`: a new instant message for a user (from a phone, or the API).", accepted));
    for (kind, extra, what) in [
        ("message_delivered", &["status"][..], "`message_delivered`: a device of the user took it (`status`: its 2xx)."),
        ("message_deferred", &["reason"][..], "`message_deferred`: no device could take it now; it is sent again when the user registers."),
        ("message_failed", &["status", "reason"][..], "`message_failed`: every device refused it."),
    ] {
        let mut m = head(kind);
        m.insert("message_id".into(), string());
        m.insert("user_id".into(), id());
        m.insert("domain".into(), string());
        for f in extra {
            m.insert((*f).into(), if *f == "status" { json!({ "type": "integer", "minimum": 100, "maximum": 699 }) } else { string() });
        }
        variants.push(object(what, m));
    }
    let stream = || -> Map<String, Value> {
        let props = json!({
            "stream_id": string(), "confid": nullable_string(), "leg_id": nullable_string(),
            "direction": { "enum": ["says", "hears", "both", null] }, "url": string(),
            "sample_rate": { "enum": [8000, 16000] }, "play_back": { "type": "boolean" },
            "started_ms": count(u64::MAX), "domain": string(),
        });
        props.as_object().expect("object").clone()
    };
    let mut started = head("stream_started");
    started.extend(stream());
    variants.push(object("`stream_started`: a live audio stream (the server is connecting to its receiver).", started));
    let mut stopped = head("stream_stopped");
    stopped.insert("info".into(), object("The stream.", stream()));
    stopped.insert("reason".into(), string());
    variants.push(object(
        "`stream_stopped`: a live audio stream ended (`reason`: stopped, room_ended, leg_ended, shutdown, connect_failed, receiver_closed).",
        stopped,
    ));
    json!({ "description": "An engine event: `seq`, `ts` (ms since the epoch), `type`, and the type's fields.", "oneOf": variants })
}

#[cfg(test)]
mod tests {
    use super::super::document;

    /// Every response that is not a success is an `ErrorBody`, and every operation
    /// behind the token documents 401.
    #[test]
    fn every_error_response_is_an_error_body() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, r) in responses {
                    if status.starts_with('2') {
                        continue;
                    }
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                if path != "/health" {
                    assert!(responses.contains_key("401"), "{method} {path}: no 401");
                }
                if path.contains("{confid}") {
                    assert!(responses.contains_key("400"), "{method} {path}: a lookup expression can be malformed");
                }
            }
        }
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_them() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for r in op["responses"].as_object().unwrap().values() {
                    for link in r["links"].as_object().into_iter().flat_map(|l| l.values()) {
                        links += 1;
                        assert!(ids.contains(link["operationId"].as_str().unwrap()), "{link}");
                    }
                }
            }
        }
        assert!(links >= 10, "{links} links");
    }

    #[test]
    fn every_parameter_has_an_exact_schema_and_patterns_are_the_servers() {
        let doc = document();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    seen += 1;
                    let schema = if p["schema"].is_object() { &p["schema"] } else { &p["content"]["application/json"]["schema"] };
                    assert!(schema.is_object(), "{method} {path} {}", p["name"]);
                }
                if let Some(p) = op["parameters"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == "confid")) {
                    assert_eq!(p["schema"]["pattern"], crate::formats::conference_ref().as_str(), "{method} {path}");
                }
            }
        }
        assert!(seen > 30, "{seen} parameters");
        let events = &doc["paths"]["/v1/events"]["get"]["parameters"];
        for p in events.as_array().unwrap() {
            assert_eq!(p["in"], "query", "{p}");
        }
    }
}
