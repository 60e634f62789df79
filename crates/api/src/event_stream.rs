//! `GET /v1/events/stream`: the durable event outbox as Server-Sent Events.
//!
//! Each event is `id: <seq>`, `event: <type>`, `data: <JSON as /v1/events shows it>`.
//! A client resumes with `Last-Event-ID` (or `?after=`): the stream first replays the
//! outbox from the store after that seq, then follows live events. To have neither a
//! gap nor a duplicate between the two, it subscribes to the live feed *before* reading
//! the backlog, and then sends only seqs above the last one sent; should the live feed
//! skip ahead (this reader was too slow and the broadcast dropped some), it reads the
//! missing ones from the store again. A comment line every 15 s keeps proxies from
//! closing an idle stream.
//!
//! Scope: a domain's admin credential streams its domain; the superuser names one with
//! `?domain=` (default: the server's own domain); a user credential gets 403 (events
//! are per domain here, not per call as in `/v1/events`).

use crate::admin::store_of;
use crate::auth::Scope;
use crate::conferences::list::parse_count;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use engine::users::DomainId;
use serde::Deserialize;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use store::StoredEvent;
use tokio::sync::{broadcast, mpsc, Notify};

/// What the HTTP side needs of the outbox (the shell fills it in; the defaults mean
/// "no outbox": the stream and webhook creation answer 503).
#[derive(Clone, Default)]
pub struct EventsState {
    /// Every event as it is committed to the outbox.
    pub live: Option<broadcast::Sender<Arc<StoredEvent>>>,
    /// The webhook master key (see [`crate::webhooks`]).
    pub master_key: Option<Arc<[u8; 32]>>,
    /// The server's own domain: where server-wide events go, and the superuser's default.
    pub default_domain: Option<DomainId>,
    /// Poked after every webhook change, so the deliverers notice at once.
    pub webhooks_changed: Arc<Notify>,
    /// Events the outbox could not take (its queue was full).
    pub dropped: Arc<AtomicU64>,
}

/// How often an idle stream gets a comment line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the store at a time while replaying.
const PAGE: u32 = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this seq (as `Last-Event-ID`, which wins when both are given; default
    /// 0: everything the outbox still keeps).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// Whose events (superuser only; default the server's domain).
    #[param(value_type = Option<String>)]
    pub domain: Option<String>,
    /// `false`: end the stream once the backlog is sent instead of following live
    /// events (default `true`).
    #[param(value_type = Option<bool>)]
    pub follow: Option<String>,
}

/// The domain's events as Server-Sent Events: the backlog after `Last-Event-ID` (or
/// `after`), then live ones. Each is `id: <seq>`, `event: <type>`,
/// `data: <the event's JSON>`; seqs are per domain, from 1, without gaps.
#[utoipa::path(get, path = "/v1/events/stream", operation_id = "stream_events", tag = "events", params(StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this seq (wins over `after`)")),
    responses((status = 200, description = "An endless `text/event-stream` (ends after the backlog with `follow=false`): \
            events `id: <seq>`, `event: <type>`, `data: <the event's JSON>`, and a comment line every 15 s",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad query or `Last-Event-ID`", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 503, description = "No event outbox", body = ErrorBody)))]
pub async fn stream(
    State(st): State<AppState>,
    scope: Scope,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    scope.require_admin()?;
    let Query(q) = q?;
    let mut after = parse_count("after", q.after.as_deref(), u64::MAX)?.unwrap_or(0);
    if let Some(v) = headers.get("last-event-id") {
        let v = v.to_str().map_err(|_| ApiError::bad_request("`Last-Event-ID` is not an integer"))?;
        after = parse_count("Last-Event-ID", Some(v.trim()), u64::MAX)?.unwrap_or(0);
    }
    // seqs are database integers: nothing is above i64::MAX
    let after = after.min(i64::MAX as u64);
    let follow = match q.follow.as_deref() {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => return Err(ApiError::bad_request(format!("`follow` {other:?} is not true or false"))),
    };
    let domain = crate::webhooks::domain_of_request(&st, &scope, q.domain.as_deref()).await?;
    let store = store_of(&st)?.clone();
    let live = st.events.live.as_ref().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "No event outbox configured"))?;
    // Subscribe before the first read of the store: nothing committed after that read
    // can be missed.
    let mut rx = live.subscribe();
    let (tx, out) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut last = after;
        // Replays from the store until it has nothing after `last`. Err: the client left.
        async fn catch_up(store: &store::Store, domain: DomainId, last: &mut u64, tx: &mpsc::Sender<Event>) -> Result<(), ()> {
            loop {
                let page = match store.events_after(domain, *last, PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream: reading the outbox failed");
                        return Err(());
                    }
                };
                let n = page.len();
                for e in page {
                    *last = e.seq;
                    tx.send(sse_event(&e)).await.map_err(|_| ())?;
                }
                if n < PAGE as usize {
                    return Ok(());
                }
            }
        }
        if catch_up(&store, domain, &mut last, &tx).await.is_err() || !follow {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(e) if e.domain_id != domain || e.seq <= last => {}
                Ok(e) if e.seq == last + 1 => {
                    last = e.seq;
                    if tx.send(sse_event(&e)).await.is_err() {
                        return;
                    }
                }
                // a gap (we lagged, or it was committed before we subscribed): the store has it
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if catch_up(&store, domain, &mut last, &tx).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut out = out;
    let events = futures_util::stream::poll_fn(move |cx| out.poll_recv(cx).map(|o| o.map(Ok::<Event, std::convert::Infallible>)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

fn sse_event(e: &StoredEvent) -> Event {
    Event::default().id(e.seq.to_string()).event(e.event_type.as_str()).data(e.to_json())
}
