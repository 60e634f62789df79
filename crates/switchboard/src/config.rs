//! Configuration: built-in defaults, then an optional TOML file, then `SWITCHBOARD_*`
//! environment variables, then command-line flags — each overriding the one before.
//! The keys are the same everywhere: `sip_listen` in TOML is `SWITCHBOARD_SIP_LISTEN`
//! in the environment and `--sip-listen` on the command line. Keys of a TOML section
//! nest with `__` in the environment: `[routing] gateway` is `SWITCHBOARD_ROUTING__GATEWAY`.
//!
//! A TOML file with an unknown key is an error (a typo must not silently fall back to a
//! default). Unknown `SWITCHBOARD_*` environment variables are only warned about: the
//! environment is shared with other tools (test scripts, wrappers) that use the prefix.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// SIP over UDP and TCP, on the same address.
    pub sip_listen: SocketAddr,
    /// HTTP APIs.
    pub http_listen: SocketAddr,
    /// RTP port range, `LO-HI` (inclusive; even ports for RTP, odd for RTCP).
    pub rtp_ports: String,
    /// Where the database and recordings live.
    pub data_dir: PathBuf,
    /// The database: `postgres://USER[:PASSWORD]@HOST:PORT/DB` or `sqlite://PATH`;
    /// unset = SQLite in `data_dir` (`switchboard.db`).
    pub database_url: Option<String>,
    /// Our SIP domain (From of calls we place, room URIs); created as a directory
    /// domain on the first start.
    pub domain: String,
    /// Bearer token for the HTTP APIs. Required when `http_listen` is not loopback.
    pub api_token: Option<String>,
    /// SIP timer T1 in ms (RFC 3261 §17: 500). Lower it only for tests.
    pub sip_t1_ms: u64,
    /// Media worker threads; 0 = one per core.
    pub media_workers: usize,
    /// Outbound call routing (`[routing]` in TOML, `SWITCHBOARD_ROUTING__*` in the environment).
    pub routing: RoutingConfig,
    /// Media sockets (`[media]` in TOML, `SWITCHBOARD_MEDIA__*` in the environment).
    pub media: MediaSection,
    /// Phone registration (`[registrar]`).
    pub registrar: RegistrarSection,
    /// Brute-force and scanner defence, who may call what (`[security]`).
    pub security: SecuritySection,
    /// API tokens of `/auth` (`[auth]`).
    pub auth: AuthSection,
    /// Federated login through an OpenID Connect issuer (`[oidc]`).
    pub oidc: OidcSection,
    /// The MX Proxy dialect's extras (`[mx]`).
    pub mx: MxSection,
    /// HTTPS on the HTTP API listener (`[tls]`; the admin web uses it with `[mx] admin_tls`).
    pub tls: TlsSection,
    /// Push to wake mobile apps (`[push]`, reference 001 §8).
    pub push: PushSection,
    /// The sipXcallController dialect (`[callcontroller]`).
    pub callcontroller: CallControllerSection,
    /// Two-party calls (`[calls]`).
    #[serde(default)]
    pub calls: CallsSection,
    /// Prompt files (`<name>.wav`, the names of `prompts/README.md`); unset = the
    /// built-in English set, written to `<data_dir>/prompts/en` at start.
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    /// The conference access number (`[ivr]`).
    #[serde(default)]
    pub ivr: IvrSection,
    /// Conference rooms (`[rooms]`).
    #[serde(default)]
    pub rooms: RoomsSection,
    /// The SEMS webconference XML-RPC dialect (`[xmlrpc]`, reference 003).
    #[serde(default)]
    pub xmlrpc: XmlRpcSection,
    /// Mailboxes and the voicemail number (`[voicemail]`).
    #[serde(default)]
    pub voicemail: VoicemailSection,
    /// The durable event outbox and webhooks (`[events]`, docs/events.md).
    #[serde(default)]
    pub events: EventsSection,
    /// The Web Call Server dialect: browsers with the Flashphoner Web SDK (`[wcs]`,
    /// reference 004).
    #[serde(default)]
    pub wcs: WcsSection,
    /// SIP over WebSocket for browser phones such as JsSIP and SIP.js (`[sip_ws]`,
    /// RFC 7118).
    #[serde(default)]
    pub sip_ws: SipWsSection,
    /// Live audio out: where streams of rooms and legs may go (`[live_audio]`,
    /// docs/live-audio.md).
    #[serde(default)]
    pub live_audio: LiveAudioSection,
}

/// `[live_audio]`: rooms and legs streamed to WebSocket receivers over the API. Only
/// URLs starting with one of `allowed_urls` may be streamed to, so the API cannot make
/// the server connect anywhere; none configured (the default) refuses every stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveAudioSection {
    /// URL prefixes, each `ws://` or `wss://` with at least a host, e.g.
    /// `"ws://10.0.0.5:9000/"`. End a prefix at a `/` (or the port's `:`) so that
    /// `ws://media.example.com` does not also allow `ws://media.example.com.evil`.
    pub allowed_urls: Vec<String>,
    /// PEM file of more CA certificates to trust for `wss://` receivers (a private CA),
    /// besides the public web roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl LiveAudioSection {
    pub fn check(&self) -> Result<(), String> {
        for p in &self.allowed_urls {
            let rest = p.strip_prefix("ws://").or_else(|| p.strip_prefix("wss://"));
            let ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) && p.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(format!("[live_audio] allowed_urls: {p:?} is not a ws:// or wss:// URL prefix with a host"));
            }
        }
        Ok(())
    }
}

/// `[sip_ws]`: SIP over WebSocket (RFC 7118). Browser phones connect to
/// `ws://<http_listen>/` asking for the `sip` subprotocol (and to `listen`, if set),
/// register and call like any phone; their WebRTC media is anchored at the WebRTC
/// gateway that `[wcs]`'s ICE keys (`ice_port`, `candidates`, `media_timeout_s`) set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipWsSection {
    /// Off: no `sip` subprotocol at `/` and no `listen`.
    pub enabled: bool,
    /// A listener of its own besides the HTTP API's (`ws://`, any path, the `sip`
    /// subprotocol required); empty = none.
    pub listen: String,
    /// Codecs a browser's call may use, in preference order; the first the browser
    /// offers is the one used (PCMU, PCMA, opus). G.711 first: the room mixes it with
    /// no resampling.
    pub codecs: Vec<String>,
}

impl Default for SipWsSection {
    fn default() -> Self {
        SipWsSection { enabled: true, listen: String::new(), codecs: vec!["PCMU".into(), "PCMA".into(), "opus".into()] }
    }
}

/// `[wcs]`: browsers running `@flashphoner/websdk` connect to `ws://<http_listen>/`
/// (and to `listen`, if set) and call over WebRTC; hooks go to their app's REST URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WcsSection {
    /// Off: no WebSocket at `/`, no `/rest-api`.
    pub enabled: bool,
    /// A listener of its own besides the HTTP API's (WCS's `ws://host:8080`); empty = none.
    pub listen: String,
    /// `defaultApp`'s REST URL (hooks); unset = no hooks for it.
    pub rest_url: Option<String>,
    /// The hooks `defaultApp`'s backend gets (method and event names); unset = all.
    pub rest_methods: Option<Vec<String>>,
    /// Origins allowed to open the WebSocket; empty = any.
    pub allowed_origins: Vec<String>,
    /// Codecs offered to and accepted from browsers, in preference order (opus, PCMU, PCMA).
    pub codecs: Vec<String>,
    /// Time limit of one hook POST (WCS's `rest_request_timeout`).
    pub hook_timeout_s: u64,
    /// Signs every hook POST with `Authorization: WCS <hex HMAC-MD5 of the body>` (WCS's
    /// `rest_hook_secret_key` with `rest_hook_send_hash`); unset = unsigned.
    pub hook_secret: Option<String>,
    /// Further tries of an invocation (`connect`, `call`, …) whose backend could not be
    /// reached (WCS's `rest_client_request_retry_count`).
    pub hook_retries: u32,
    /// An event hook its backend does not take (down, 5xx) is retried, the wait
    /// doubling from 1 s up to this.
    pub event_retry_max_s: u64,
    /// An event hook still not delivered after this long is dropped (logged).
    pub event_max_age_s: u64,
    /// A session whose page asked for `keepAlive` stays this long after its socket
    /// closes (registered; calls to it get 480), for the page to come back with its
    /// `authToken`; 0 = never kept.
    pub keep_alive_s: u64,
    /// Server pings every this long; a client that misses `ping_probes` is dropped.
    pub ping_interval_s: u64,
    pub ping_probes: u32,
    /// The UDP port browsers' ICE, DTLS and SRTP arrive on (0: any free port).
    pub ice_port: u16,
    /// Addresses advertised to browsers as ICE candidates; empty = the SIP address and
    /// this host's outward address.
    pub candidates: Vec<String>,
    /// A browser leg with no media for this long is reported dead and hung up.
    pub media_timeout_s: u64,
    /// Where `/rest-api/call/inject_sound` finds its `fileName`s (WAV); unset = the
    /// prompt files' folder.
    pub sounds_dir: Option<PathBuf>,
}

impl Default for WcsSection {
    fn default() -> Self {
        WcsSection {
            enabled: true,
            listen: String::new(),
            rest_url: None,
            rest_methods: None,
            allowed_origins: Vec::new(),
            codecs: vec!["opus".into(), "PCMU".into(), "PCMA".into()],
            hook_timeout_s: 15,
            hook_secret: None,
            hook_retries: 3,
            event_retry_max_s: 60,
            event_max_age_s: 86_400,
            keep_alive_s: 60,
            ping_interval_s: 5,
            ping_probes: 10,
            ice_port: 0,
            candidates: Vec::new(),
            media_timeout_s: 10,
            sounds_dir: None,
        }
    }
}

/// `[voicemail]`: calls users do not take go to their mailbox; see `engine::apps::voicemail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoicemailSection {
    /// Unanswered (after the user's `vmDelay`), busy and unreachable calls to users go
    /// to voicemail instead of failing.
    pub enabled: bool,
    /// The voicemail access number (Request-URI user).
    pub number: String,
    /// Ringing before voicemail for users who never set `vmDelay` (MX `PATCH /calls`).
    pub default_delay_s: u64,
    /// A message is cut at this length.
    pub max_message_s: u64,
}

impl Default for VoicemailSection {
    fn default() -> Self {
        VoicemailSection { enabled: false, number: "voicemail".into(), default_delay_s: 30, max_message_s: 120 }
    }
}

impl VoicemailSection {
    pub fn engine_config(&self) -> Result<engine::apps::voicemail::VoicemailConfig, String> {
        if self.number.is_empty() || !self.number.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.*#+".contains(&b)) {
            return Err(format!("[voicemail] number {:?}: expected a SIP user part (letters, digits, -_.*#+)", self.number));
        }
        if self.max_message_s == 0 || self.max_message_s > 3600 {
            return Err("[voicemail] max_message_s: expected 1..3600".into());
        }
        Ok(engine::apps::voicemail::VoicemailConfig {
            enabled: self.enabled,
            number: self.number.clone(),
            default_delay: std::time::Duration::from_secs(self.default_delay_s.max(1)),
            max_message: std::time::Duration::from_secs(self.max_message_s),
            ..Default::default()
        })
    }
}

/// `[ivr]`: callers at the conference access number key in a room number (and the
/// room's PIN where it has one); see `engine::apps::ivr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrSection {
    /// The access number: `sip:<conference_number>@<our domain>`.
    pub conference_number: String,
    /// Callers whose Request-URI user matches this regex (unanchored, as SEMS) go
    /// straight into a room; empty = off. E.g. `^000777` with `direct_room_strip = 6`
    /// puts `000777123` into room `123`.
    pub direct_room_re: String,
    pub direct_room_strip: usize,
    /// Only existing rooms can be entered (others get the wrong-PIN prompt).
    pub private_rooms: bool,
    /// `"<room>" = "<PIN>"`: rooms that ask callers for a PIN before they enter.
    pub room_pins: std::collections::BTreeMap<String, String>,
    /// An entry is taken after this pause following a digit.
    pub inter_digit_timeout_ms: u64,
    /// The prompt is played again after this long without a digit.
    pub no_input_timeout_ms: u64,
    /// An entry of this many digits is taken without waiting for `#`.
    pub max_digits: usize,
    /// Wrong entries and silent rounds before the goodbye prompt and BYE.
    pub max_attempts: u32,
    /// A scheduled conference (reference 001) may be entered this many seconds before
    /// its start.
    pub early_join_s: u32,
    /// SEMS's `lonely_user_timer`: seconds a participant left alone in a room may stay
    /// before being hung up (0: never).
    pub lonely_user_timer_s: u32,
    /// SEMS's `loop_first_participant_prompt`.
    pub loop_first_participant_prompt: bool,
}

impl Default for IvrSection {
    fn default() -> Self {
        let d = engine::engine::IvrConfig::default();
        IvrSection {
            conference_number: d.conference_number,
            direct_room_re: String::new(),
            direct_room_strip: 0,
            private_rooms: false,
            room_pins: Default::default(),
            inter_digit_timeout_ms: d.inter_digit_timeout.as_millis() as u64,
            no_input_timeout_ms: d.no_input_timeout.as_millis() as u64,
            max_digits: d.max_digits,
            max_attempts: d.max_attempts,
            early_join_s: d.early_join_s as u32,
            lonely_user_timer_s: 0,
            loop_first_participant_prompt: false,
        }
    }
}

impl IvrSection {
    pub fn engine_config(&self) -> Result<engine::engine::IvrConfig, String> {
        let direct_room_re = match self.direct_room_re.trim() {
            "" => None,
            re => Some(regex::Regex::new(re).map_err(|e| format!("[ivr] direct_room_re: {e}"))?),
        };
        if self.conference_number.trim().is_empty() {
            return Err("[ivr] conference_number is empty".into());
        }
        if let Some((room, _)) = self.room_pins.iter().find(|(_, pin)| pin.is_empty() || !pin.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("[ivr] room_pins: the PIN of room `{room}` must be digits"));
        }
        Ok(engine::engine::IvrConfig {
            conference_number: self.conference_number.trim().to_owned(),
            direct_room_re,
            direct_room_strip: self.direct_room_strip,
            private_rooms: self.private_rooms,
            room_pins: self.room_pins.clone().into_iter().collect(),
            inter_digit_timeout: std::time::Duration::from_millis(self.inter_digit_timeout_ms.max(100)),
            no_input_timeout: std::time::Duration::from_millis(self.no_input_timeout_ms.max(1000)),
            max_digits: self.max_digits.clamp(1, 64),
            max_attempts: self.max_attempts.max(1),
            early_join_s: i64::from(self.early_join_s),
            lonely_user_timer: (self.lonely_user_timer_s > 0).then(|| std::time::Duration::from_secs(self.lonely_user_timer_s.into())),
            loop_first_participant_prompt: self.loop_first_participant_prompt,
        })
    }
}

/// `[events]`: the durable outbox of engine events (SSE `/v1/events/stream`) and the
/// webhooks that deliver it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Delivered events older than this are deleted (an enabled webhook's undelivered
    /// ones are kept).
    pub retention_hours: u64,
    /// Events waiting to be written; beyond that new ones are dropped (logged, counted)
    /// rather than the signalling task waiting.
    pub queue: usize,
    /// The writer collects events for up to this long into one transaction.
    pub batch_ms: u64,
    /// …or this many.
    pub batch_max: usize,
    /// Time limit of one webhook POST.
    pub webhook_timeout_ms: u64,
    /// Back-off after a failed delivery: first wait, doubling up to the max (with jitter).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            retention_hours: 72,
            queue: 65_536,
            batch_ms: 20,
            batch_max: 500,
            webhook_timeout_ms: 10_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
        }
    }
}

/// `[rooms]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsSection {
    /// Rooms dialled directly (`conf-<n>`, the feature code) also play the
    /// first-participant prompt and join/leave sounds; rooms entered through the
    /// access number always do.
    pub join_leave_sounds: bool,
}

/// `[xmlrpc]`: the SEMS webconference dialect on a listener of its own (SEMS's
/// xmlrpc2di port), with webconference.conf's keys of the same names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmlRpcSection {
    /// Plain HTTP, any path; empty = the dialect is off.
    pub listen: String,
    /// Rooms must exist beforehand (roomCreate, predefined_rooms); no other call creates one.
    pub private_rooms: bool,
    /// No adminpin checks.
    pub ignore_pin: bool,
    /// For getRoomPassword and listRooms; empty = they always refuse.
    pub master_password: String,
    /// Feedback (vq*Feedback) is appended to this file; unset = not written.
    pub feedback_file: Option<PathBuf>,
    /// `room:pin;room2:pin2`, opened at start.
    pub predefined_rooms: String,
    /// An empty room idle this long (seconds) is deleted; 0 = never.
    pub rooms_expire_delay: u64,
    /// A finished participant leaves roomInfo after this long (seconds); 0 = never.
    pub participants_expire_delay: u64,
    /// roomCreate's timeout argument ends the room when it passes.
    pub support_rooms_timeout: bool,
}

impl Default for XmlRpcSection {
    fn default() -> Self {
        XmlRpcSection {
            listen: "127.0.0.1:8090".into(),
            private_rooms: false,
            ignore_pin: false,
            master_password: String::new(),
            feedback_file: None,
            predefined_rooms: String::new(),
            rooms_expire_delay: 7200,
            participants_expire_delay: 10,
            support_rooms_timeout: false,
        }
    }
}

/// `[push]`: where pushes go and which apps may register tokens (`PUT /tokens/…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSection {
    /// APNs base URL; pushes go to `<apns_url>/3/device/<token>`.
    pub apns_url: String,
    /// APNs development gateway, for sandbox topics (`<topic>~`).
    pub apns_sandbox_url: String,
    /// APNs topics (app bundle ids) accepted; `com.example.app~` is the sandbox of `com.example.app`.
    pub apns_topics: Vec<String>,
    /// FCM legacy HTTP endpoint.
    pub fcm_url: String,
    /// `[push.fcm]`: `"<app id>" = "<server key>"`; the app ids accepted for FCM tokens.
    pub fcm: std::collections::BTreeMap<String, String>,
    /// How long an incoming call for a user with push tokens waits for the woken app to
    /// register before it rings (for the bridge).
    pub wake_wait_ms: u64,
    /// Time limit of one push request (MX: 30 s).
    pub timeout_ms: u64,
}

impl Default for PushSection {
    fn default() -> Self {
        PushSection {
            apns_url: "https://api.push.apple.com".into(),
            apns_sandbox_url: "https://api.development.push.apple.com".into(),
            apns_topics: Vec::new(),
            fcm_url: "https://fcm.googleapis.com/fcm/send".into(),
            fcm: Default::default(),
            wake_wait_ms: 5000,
            timeout_ms: 30_000,
        }
    }
}

/// `[callcontroller]`: the sipXcallController dialect (reference 002). It is always
/// served on the HTTP listener; `listen` adds a listener of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallControllerSection {
    /// A listener serving only `/callcontroller/…`; empty = none.
    pub listen: String,
    /// CIDRs whose requests need no PIN (e.g. `10.0.0.0/8`, `127.0.0.1/32`).
    pub trusted_networks: Vec<String>,
}

/// `[calls]`: two-party calls between users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// How long the callee's devices ring before the caller gets 480 (or voicemail).
    pub ring_time_s: u64,
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection { ring_time_s: 60 }
    }
}

/// `[registrar]`: RFC 3261 §10 registrations and their digest challenges.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSection {
    /// Shorter registrations get 423 with Min-Expires (seconds).
    pub min_expires: u32,
    /// Longer ones are shortened to this (seconds).
    pub max_expires: u32,
    /// Expiry when a REGISTER names none (seconds).
    pub default_expires: u32,
    /// A nonce is good this long; older genuine ones get `stale=true`.
    pub nonce_ttl_s: u64,
    /// Challenge order, one header each: `MD5`, `SHA-256`. MD5 first by default
    /// because Debian's SIPp 3.6.1 and many phones read only the first challenge and
    /// speak only MD5; pjsua2 and RFC 8760 clients pick SHA-256 wherever it is listed.
    pub digest_algorithms: Vec<String>,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        RegistrarSection { min_expires: 60, max_expires: 3600, default_expires: 3600, nonce_ttl_s: 300, digest_algorithms: vec!["MD5".into(), "SHA-256".into()] }
    }
}

impl RegistrarSection {
    pub fn engine_config(&self) -> Result<engine::registrar::RegistrarConfig, String> {
        let mut algs = Vec::new();
        for a in &self.digest_algorithms {
            let alg = sip::digest::Algorithm::from_token(a.trim()).ok_or_else(|| format!("[registrar] digest_algorithms: unknown algorithm `{a}` (MD5, SHA-256)"))?;
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        if algs.is_empty() {
            return Err("[registrar] digest_algorithms is empty: name MD5 and/or SHA-256".into());
        }
        if self.min_expires > self.max_expires {
            return Err(format!("[registrar] min_expires {} is above max_expires {}", self.min_expires, self.max_expires));
        }
        if self.nonce_ttl_s == 0 {
            return Err("[registrar] nonce_ttl_s must be at least 1".into());
        }
        Ok(engine::registrar::RegistrarConfig {
            min_expires: self.min_expires,
            max_expires: self.max_expires,
            default_expires: self.default_expires.clamp(self.min_expires, self.max_expires),
            nonce_ttl: std::time::Duration::from_secs(self.nonce_ttl_s),
            digest_algorithms: algs,
            ..Default::default()
        })
    }
}

/// `[security]`: lock-outs after failed authentications, scanners, trusted networks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Failed authentications of one username within the window that lock it out.
    pub lockout_user_failures: u32,
    /// Failed authentications from one address within the window that lock it out.
    pub lockout_ip_failures: u32,
    pub lockout_window_s: u64,
    /// How long a lock-out lasts.
    pub lockout_s: u64,
    /// User-Agent substrings (case-insensitive) of scanners.
    pub scanner_user_agents: Vec<String>,
    /// Drop scanners' requests silently; false = answer 403.
    pub drop_scanners: bool,
    /// CIDRs (gateways) whose INVITEs skip authentication.
    pub trusted_networks: Vec<String>,
    /// Unauthenticated callers may call users' extensions (rooms and services are always open).
    pub anonymous_may_call_users: bool,
}

impl Default for SecuritySection {
    fn default() -> Self {
        let d = engine::registrar::SecurityConfig::default();
        SecuritySection {
            lockout_user_failures: d.user_failures,
            lockout_ip_failures: d.ip_failures,
            lockout_window_s: d.failure_window.as_secs(),
            lockout_s: d.lockout.as_secs(),
            scanner_user_agents: d.scanner_user_agents,
            drop_scanners: d.drop_scanners,
            trusted_networks: Vec::new(),
            anonymous_may_call_users: d.anonymous_may_call_users,
        }
    }
}

impl SecuritySection {
    pub fn engine_config(&self) -> Result<engine::registrar::SecurityConfig, String> {
        let trusted = self
            .trusted_networks
            .iter()
            .map(|c| c.parse::<engine::registrar::Cidr>().map_err(|e| format!("[security] trusted_networks: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(engine::registrar::SecurityConfig {
            user_failures: self.lockout_user_failures,
            ip_failures: self.lockout_ip_failures,
            failure_window: std::time::Duration::from_secs(self.lockout_window_s.max(1)),
            lockout: std::time::Duration::from_secs(self.lockout_s),
            scanner_user_agents: self.scanner_user_agents.clone(),
            drop_scanners: self.drop_scanners,
            trusted_networks: trusted,
            anonymous_may_call_users: self.anonymous_may_call_users,
        })
    }
}

/// `[auth]`: the JWTs `POST /auth` issues.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Lifetime of an access token, seconds (MX Proxy: 1 h).
    pub token_ttl_s: u64,
    /// A signing key signs for this long, then a new one takes over (MX Proxy: 6 h).
    pub sign_key_ttl_s: u64,
    /// `iss` of our tokens; unset = `https://<the user's domain>`.
    pub issuer: Option<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { token_ttl_s: 3600, sign_key_ttl_s: 6 * 3600, issuer: None }
    }
}

/// `[oidc]`: `POST /auth` with an issuer's id_token. Off unless `issuer` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    pub issuer: Option<String>,
    /// Where the issuer publishes its keys (its `jwks_uri`).
    pub jwks_url: Option<String>,
    /// Our client id at the issuer: the id_token's `aud` must contain it.
    pub audience: Option<String>,
    /// The claim naming the user: a login, or `login@domain`.
    pub user_claim: String,
    /// The domain the issuer's users belong to; unset = the server's `domain`.
    pub domain: Option<String>,
}

impl Default for OidcSection {
    fn default() -> Self {
        OidcSection { issuer: None, jwks_url: None, audience: None, user_claim: "preferred_username".into(), domain: None }
    }
}

/// `[mx]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxSection {
    /// The admin web's address; empty = off.
    pub admin_listen: String,
    /// Serve the admin web over HTTPS (with the `[tls]` certificate).
    pub admin_tls: bool,
    /// The file `GET /debug/log` serves; unset = 404.
    pub log_file: Option<PathBuf>,
    /// What `GET /auth` reports as `mx`; unset = the host name.
    pub node: Option<String>,
    /// What `GET /conferences/info` shows (`[mx.conferences]`).
    #[serde(default)]
    pub conferences: MxConferencesSection,
}

impl Default for MxSection {
    fn default() -> Self {
        MxSection { admin_listen: "127.0.0.1:8043".into(), admin_tls: false, log_file: None, node: None, conferences: MxConferencesSection::default() }
    }
}

/// `[mx.conferences]`: what `GET /conferences/info` shows apps for inviting people to a
/// scheduled conference. Its `ext` is `[ivr] conference_number`. The templates are
/// filled in by the app (`%Date%`, `%Time%`, `%Timezone%`, `%Subject%`, `%Duration%`,
/// `%DID%`, `%Extension%`, `%ID%`); unset = reference 001's sample texts.
/// ```toml
/// [mx.conferences]
/// did = "+1 555 0100"
/// meeting = "Join the web session at https://meet.example.com/join?id=%ID%"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MxConferencesSection {
    /// The number outside callers dial to reach the conference number; empty = none.
    pub did: String,
    /// The invitation's subject line.
    pub subject: String,
    /// The invitation's text.
    pub body: String,
    /// The web-meeting line.
    pub meeting: String,
}

impl Default for MxConferencesSection {
    fn default() -> Self {
        let d = api::mx::conferences::ConferenceInfo::default();
        MxConferencesSection { did: d.did, subject: d.subject, body: d.body, meeting: d.meeting }
    }
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection { cert_file: None, key_file: None, self_signed: false, http: true }
    }
}

/// `[tls]`: a certificate for our HTTP listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain and private key; both set = the API listener speaks HTTPS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// No files: generate a self-signed certificate into `<data_dir>/tls/` and use it.
    pub self_signed: bool,
    /// Serve the HTTP API listener over HTTPS when a certificate is configured (false:
    /// the certificate is only for the admin web, `[mx] admin_tls`).
    pub http: bool,
}

/// `[media]`: how legs get their RTP ports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// `per-leg` (a port pair per call from `rtp_ports`) or `shared` (one pair per
    /// media worker, calls told apart by source address).
    pub port_mode: PortMode,
}

/// `[media] port_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PortMode {
    #[default]
    PerLeg,
    Shared,
}

impl From<PortMode> for media::PortMode {
    fn from(m: PortMode) -> media::PortMode {
        match m {
            PortMode::PerLeg => media::PortMode::PerLeg,
            PortMode::Shared => media::PortMode::Shared,
        }
    }
}

/// `[routing]`: where calls to numbers go until the user directory exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Outbound gateway for numbers, `sip:host:port`; none = numbers have no route.
    pub gateway: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip_listen: "127.0.0.1:5060".parse().expect("literal"),
            http_listen: "127.0.0.1:8080".parse().expect("literal"),
            rtp_ports: "20000-29999".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            domain: "switchboard.local".into(),
            api_token: None,
            sip_t1_ms: 500,
            media_workers: 0,
            routing: RoutingConfig::default(),
            media: MediaSection::default(),
            registrar: RegistrarSection::default(),
            security: SecuritySection::default(),
            auth: AuthSection::default(),
            oidc: OidcSection::default(),
            mx: MxSection::default(),
            tls: TlsSection::default(),
            push: PushSection::default(),
            callcontroller: CallControllerSection::default(),
            calls: CallsSection::default(),
            prompts_dir: None,
            ivr: IvrSection::default(),
            rooms: RoomsSection::default(),
            xmlrpc: XmlRpcSection::default(),
            voicemail: VoicemailSection::default(),
            events: EventsSection::default(),
            wcs: WcsSection::default(),
            sip_ws: SipWsSection::default(),
            live_audio: LiveAudioSection::default(),
        }
    }
}

impl Config {
    /// Layers the sources. `overrides` holds only the flags given on the command line.
    pub fn load(file: Option<&PathBuf>, overrides: &impl Serialize) -> Result<Config, figment::Error> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        // `__` nests: SWITCHBOARD_ROUTING__GATEWAY is `routing.gateway`.
        let env = Env::prefixed("SWITCHBOARD_").filter(|k| Self::is_known_env_key(k.as_str())).split("__");
        // Lossy: a number from the environment (text) fills a numeric key; see EnvText.
        fig.merge(EnvText(env)).merge(Serialized::defaults(overrides)).extract_lossy()
    }

    /// The settings as one line of JSON for the start-up log, the API token redacted.
    pub fn redacted(&self) -> String {
        let mut shown = self.clone();
        if shown.api_token.is_some() {
            shown.api_token = Some("<redacted>".into());
        }
        shown.database_url = shown.database_url.as_deref().map(redact_url_password);
        if !shown.xmlrpc.master_password.is_empty() {
            shown.xmlrpc.master_password = "<redacted>".into();
        }
        for key in shown.push.fcm.values_mut() {
            *key = "<redacted>".into();
        }
        serde_json::to_string(&shown).unwrap_or_else(|e| format!("(unprintable: {e})"))
    }

    /// Top-level keys, from the defaults (so a new field needs no list kept in step).
    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// `key` is the variable name after `SWITCHBOARD_`; its part before any `__` must
    /// name a configuration key.
    fn is_known_env_key(key: &str) -> bool {
        let head = key.split("__").next().unwrap_or(key);
        Self::top_level_keys().iter().any(|k| k.eq_ignore_ascii_case(head))
    }

    /// `SWITCHBOARD_*` variables that configure nothing (reported at start-up).
    /// `SWITCHBOARD_CONFIG` names the file (`--config`): not a key, but not foreign either.
    pub fn ignored_env_vars() -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k != "SWITCHBOARD_CONFIG")
            .filter(|k| k.strip_prefix("SWITCHBOARD_").is_some_and(|rest| !Self::is_known_env_key(rest)))
            .collect()
    }

    /// `LO-HI` as numbers, checked.
    pub fn rtp_port_range(&self) -> Result<(u16, u16), String> {
        let (lo, hi) = self.rtp_ports.split_once('-').ok_or_else(|| format!("rtp_ports `{}` is not LO-HI", self.rtp_ports))?;
        let lo: u16 = lo.trim().parse().map_err(|_| format!("rtp_ports: bad low port `{lo}`"))?;
        let hi: u16 = hi.trim().parse().map_err(|_| format!("rtp_ports: bad high port `{hi}`"))?;
        if lo >= hi || lo < 1024 {
            return Err(format!("rtp_ports `{}`: need 1024 <= LO < HI", self.rtp_ports));
        }
        Ok((lo, hi))
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:<redacted>@host/…`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:<redacted>@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

/// The environment with every value kept as text. figment's own `Env` guesses types
/// from the text, so `SWITCHBOARD_API_TOKEN=123456` became a number and failed a
/// string key; as text, it fills a string key as is, and (with `extract_lossy`) a
/// numeric key by parsing.
struct EnvText(Env);

impl Provider for EnvText {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in self.0.iter() {
            // A dotted key nests: `routing.gateway`.
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), Value::from(value)) {
                merge_into(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Adds `from` to `into`, section by section.
fn merge_into(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, section)), Value::Dict(_, more)) => merge_into(section, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
