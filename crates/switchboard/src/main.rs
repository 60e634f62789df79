//! `switchboard`: the server binary, and a small client for it.
//!
//! `serve` wires the layers together — transports, the signalling task that owns the
//! engine, the media engine's threads, the HTTP APIs — and shuts them down in order on
//! SIGTERM/SIGINT (BYE to live calls first). `call` asks a running server to place a
//! call over its HTTP API.

mod admin;
mod callcontroller;
mod config;
mod directory_sync;
mod listeners;
mod messages;
mod live_audio;
mod outbox;
mod prompts;
mod push;
mod signalling;
mod sip_ws;
mod tokens;
mod transport;
mod wcs;
mod wcs_hooks;
mod webhooks;
mod xmlrpc;
mod voicemail;

use clap::{Parser, Subcommand};
use config::Config;
use engine::{Engine, EngineConfig, EngineHandle};
use media::{MediaConfig, MediaEngine};
use serde::Serialize;
use signalling::Signalling;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Programmable SIP call and conference server")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
    /// Ask a running server to place a call.
    Call(CallArgs),
    /// Manage domains (tenants).
    Domains(admin::DomainsCmd),
    /// Manage users.
    Users(admin::UsersCmd),
    /// Manage OAuth2 apps (clients of POST /auth).
    Apps(admin::AppsCmd),
    /// Manage API keys.
    Keys(admin::KeysCmd),
}

/// Flags of `serve`. Each overrides the config file and `SWITCHBOARD_*` variables.
#[derive(clap::Args, Serialize)]
struct ServeArgs {
    /// TOML config file (same keys as the flags, with underscores).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// SIP UDP+TCP address [default: 127.0.0.1:5060]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_listen: Option<SocketAddr>,
    /// HTTP API address [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_listen: Option<SocketAddr>,
    /// RTP port range LO-HI [default: 20000-29999]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rtp_ports: Option<String>,
    /// Data directory [default: ./data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Database URL, postgres://… or sqlite://… [default: SQLite in the data dir]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// SIP domain [default: switchboard.local]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    /// Bearer token for the HTTP APIs (required off loopback)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    api_token: Option<String>,
    /// SIP timer T1 in milliseconds [default: 500]; lower only for tests
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_t1_ms: Option<u64>,
    /// Media worker threads, 0 = one per core [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    media_workers: Option<usize>,
    /// `[routing]` flags.
    #[command(flatten)]
    routing: RoutingFlags,
    /// `[media]` flags.
    #[command(flatten)]
    media: MediaFlags,
    /// `[xmlrpc]` flags.
    #[command(flatten)]
    xmlrpc: XmlRpcFlags,
}

/// Flags of the `[xmlrpc]` section (nested like [`RoutingFlags`]).
#[derive(clap::Args, Serialize)]
struct XmlRpcFlags {
    /// SEMS webconference XML-RPC address, empty = off ([xmlrpc] listen) [default: 127.0.0.1:8090]
    #[arg(long = "xmlrpc-listen")]
    #[serde(rename = "listen", skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
}

/// Flags of the `[routing]` section. They serialize nested (`{"routing":{"gateway":..}}`)
/// so that they go through the same layering as the file and the environment.
#[derive(clap::Args, Serialize)]
struct RoutingFlags {
    /// Outbound gateway for dial-outs to numbers, sip:host:port ([routing] gateway)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
}

/// Flags of the `[media]` section (nested like [`RoutingFlags`]).
#[derive(clap::Args, Serialize)]
struct MediaFlags {
    /// RTP ports: a pair per call, or one pair per media worker ([media] port_mode) [default: per-leg]
    #[arg(long = "media-port-mode", value_enum)]
    #[serde(rename = "port_mode", skip_serializing_if = "Option::is_none")]
    port_mode: Option<config::PortMode>,
}

#[derive(clap::Args)]
struct CallArgs {
    /// SIP URI to call, e.g. sip:bob@127.0.0.1:5070
    to: String,
    /// Base URL of the server's HTTP API
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "SWITCHBOARD_SERVER")]
    server: String,
    /// Bearer token
    #[arg(long, env = "SWITCHBOARD_API_TOKEN")]
    token: Option<String>,
    /// Hang up this many seconds after answer
    #[arg(long)]
    hangup_after: Option<f64>,
    /// User part of our From
    #[arg(long)]
    from: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => serve(args),
        Cmd::Call(args) => call(args),
        Cmd::Domains(c) => admin::run(admin::Command::Domains(c)),
        Cmd::Users(c) => admin::run(admin::Command::Users(c)),
        Cmd::Apps(c) => admin::run(admin::Command::Apps(c)),
        Cmd::Keys(c) => admin::run(admin::Command::Keys(c)),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: logs sent to files and journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging();
    let cfg = match Config::load(args.config.as_ref(), &args) {
        Ok(c) => c,
        Err(e) => {
            error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for var in Config::ignored_env_vars() {
        warn!("{var} is not a configuration key; ignored");
    }
    info!("effective configuration: {}", cfg.redacted());
    if let Err(e) = api::routing::Routing::with_gateway(cfg.routing.gateway.as_deref()) {
        error!("configuration error: {e}");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("switchboard-io").build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    if !cfg.http_listen.ip().is_loopback() && cfg.api_token.is_none() {
        return Err(format!(
            "refusing to serve the HTTP API on {} without an API token: set --api-token or SWITCHBOARD_API_TOKEN",
            cfg.http_listen
        ));
    }
    let (rtp_lo, rtp_hi) = cfg.rtp_port_range()?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| format!("cannot create data dir {}: {e}", cfg.data_dir.display()))?;

    // Transports first: a port conflict should fail before anything else starts.
    let udp = Arc::new(UdpSocket::bind(cfg.sip_listen).await.map_err(|e| format!("SIP UDP {}: {e}", cfg.sip_listen))?);
    let sip_addr = udp.local_addr().map_err(|e| e.to_string())?;
    let tcp = TcpListener::bind(sip_addr).await.map_err(|e| format!("SIP TCP {sip_addr}: {e}"))?;
    let http = TcpListener::bind(cfg.http_listen).await.map_err(|e| format!("HTTP {}: {e}", cfg.http_listen))?;
    let advertised = if sip_addr.ip().is_unspecified() {
        warn!("SIP listens on a wildcard address; advertising 127.0.0.1 in Via/Contact/SDP");
        SocketAddr::new([127, 0, 0, 1].into(), sip_addr.port())
    } else {
        sip_addr
    };

    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(
        MediaConfig {
            bind_ip: advertised.ip(),
            rtp_ports: (rtp_lo, rtp_hi),
            workers: cfg.media_workers,
            rtp_timeout: Duration::from_secs(60),
            port_mode: cfg.media.port_mode.into(),
        },
        Box::new(move |ev| {
            let _ = media_tx.send(ev);
        }),
    )
    .map_err(|e| format!("media engine: {e}"))?;

    let prompts_dir = prompts::prepare(&cfg)?;
    let mut timers = sip::transaction::TimerConfig::default();
    timers.t1 = Duration::from_millis(cfg.sip_t1_ms.max(1));
    let mut engine = Engine::new(
        EngineConfig {
            domain: cfg.domain.clone(),
            sip_addr: advertised,
            timers,
            registrar: cfg.registrar.engine_config()?,
            security: cfg.security.engine_config()?,
            data_dir: cfg.data_dir.clone(),
            ring_time: std::time::Duration::from_secs(cfg.calls.ring_time_s.max(1)),
            gateway: cfg.routing.gateway.as_deref().and_then(|g| sip::parse::parse_uri(g.trim()).ok()),
            wake_wait: std::time::Duration::from_millis(cfg.push.wake_wait_ms),
            ivr: cfg.ivr.engine_config()?,
            prompts: engine::engine::PromptSet { dir: prompts_dir.clone() },
            join_leave_sounds: cfg.rooms.join_leave_sounds,
            voicemail: cfg.voicemail.engine_config()?,
            live_audio_urls: {
                cfg.live_audio.check()?;
                cfg.live_audio.allowed_urls.clone()
            },
            ..EngineConfig::default()
        },
        media.handle(),
    );

    // The directory, call records and room history live in the database (SQLite in
    // the data dir unless database_url says otherwise); records are written by a
    // background task so signalling never waits on the disk.
    let db = open_store(&cfg).await?;
    let directory_changed = Arc::new(tokio::sync::Notify::new());
    let (directory, bindings, default_domain) = start_directory(&cfg, &db, directory_changed.clone()).await?;
    engine.set_directory(directory.borrow().clone());
    // Registrations survive restarts; lapsed ones are dropped (and forgotten by the store).
    // WebSocket ones died with their socket: the browser registers again when it reconnects.
    let bindings = bindings.into_iter().filter(|b| !matches!(b.transport.as_str(), "ws" | "wss")).collect::<Vec<_>>();
    let registered: Vec<engine::users::UserId> = {
        let mut v: Vec<_> = bindings.iter().map(|b| b.user_id).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    engine.restore_bindings(std::time::Instant::now(), bindings);
    // Call ids continue above the call log's, so MX clients never see one reused.
    engine.seed_call_ids(db.next_call_id_floor().await.map_err(|e| format!("store: {e}"))?);
    let tokens = tokens::setup(&cfg, db.clone(), directory.clone(), directory_changed.clone()).await?;
    let push = push::PushSender::new(&cfg.push, db.clone(), tokens.service.cfg.node.clone());
    let (recorder, recorder_task) = store::spawn_recorder(db.clone());
    let events = engine::EventLog::default();
    // The durable outbox (SSE, webhooks): written off the signalling path, see outbox.rs.
    let events_state = api::event_stream::EventsState {
        live: Some(tokio::sync::broadcast::channel(outbox::LIVE_CAPACITY).0),
        master_key: Some(Arc::new(
            api::webhooks::load_or_create_master_key(&cfg.data_dir).map_err(|e| format!("webhook master key in {}: {e}", cfg.data_dir.display()))?,
        )),
        default_domain: Some(default_domain),
        ..Default::default()
    };
    let (commits_tx, commits_rx) = watch::channel(0u64);
    let (outbox, outbox_task) = outbox::spawn(
        outbox::Writer {
            store: db.clone(),
            directory: directory.clone(),
            default_domain,
            live: events_state.live.clone().expect("made above"),
            commits: commits_tx,
            batch: Duration::from_millis(cfg.events.batch_ms),
            batch_max: cfg.events.batch_max.max(1),
        },
        cfg.events.queue,
        events_state.dropped.clone(),
    );
    outbox::spawn_pruner(db.clone(), Duration::from_secs(cfg.events.retention_hours.saturating_mul(3600)));
    webhooks::spawn(
        db.clone(),
        events_state.master_key.clone().expect("made above"),
        commits_rx,
        events_state.webhooks_changed.clone(),
        webhooks::Settings {
            timeout: Duration::from_millis(cfg.events.webhook_timeout_ms.max(1)),
            retry_initial: Duration::from_millis(cfg.events.retry_initial_ms.max(1)),
            retry_max: Duration::from_millis(cfg.events.retry_max_ms.max(1)),
        },
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (inbound_tx, inbound_rx) = mpsc::channel(4096);
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    tokio::spawn(transport::udp_receiver(udp.clone(), inbound_tx.clone()));
    tokio::spawn(transport::tcp_acceptor(tcp, inbound_tx.clone()));
    let ws_inbound = inbound_tx.clone();
    let rooms = engine::RoomDirectory::default();
    let signalling = tokio::spawn(
        Signalling {
            engine,
            udp,
            inbound: inbound_rx,
            inbound_tx,
            commands: cmd_rx,
            media_events: media_rx,
            shutdown: shutdown_rx.clone(),
            events: events.clone(),
            rooms: rooms.clone(),
            recorder,
            directory: directory.clone(),
            push: Some(push),
            voicemail: voicemail::Mailboxes::new(db.clone(), cfg.data_dir.clone(), cmd_tx.clone(), directory.clone()),
            messages: messages::Messages::spawn(db.clone(), cmd_tx.clone(), directory.clone(), registered),
            outbox,
            live_audio: live_audio::Client { engine: cmd_tx.clone(), tls: live_audio::tls_client(cfg.live_audio.ca_file.as_deref())? },
        }
            .run(),
    );

    let routing = api::routing::Routing::with_gateway(cfg.routing.gateway.as_deref())?;
    // One WebRTC gateway for both browser dialects.
    let webrtc = wcs::start_shared_gateway(&cfg, advertised)?;
    let engine_handle = EngineHandle::new(cmd_tx, events.clone(), rooms);
    let sip_ws = sip_ws::SipWs::setup(&cfg, ws_inbound, webrtc.as_ref().map(|(g, _)| g.clone()), tokens.api_tls.is_some(), engine_handle.clone())?;
    if let Some(s) = &sip_ws {
        s.spawn_listener(&cfg, shutdown_rx.clone()).await?;
    }
    let mut wcs_state = wcs::setup(&cfg, advertised, db.clone(), webrtc, &prompts_dir, sip_ws.as_ref().map(sip_ws::SipWs::call_ender))?;
    if let Some(w) = wcs_state.as_mut() {
        // `/rest-api/call/startup` places its calls through the engine.
        w.engine = Some(engine_handle.clone());
    }
    wcs::spawn_listener(&cfg, wcs_state.clone(), shutdown_rx.clone()).await?;
    let mut state = api::AppState::new(engine_handle, cfg.api_token.clone())
        .with_routing(routing)
        .with_directory(db, directory);
    state.wcs = wcs_state;
    state.directory_changed = directory_changed;
    state.data_dir = Some(cfg.data_dir.clone());
    state.events = events_state;
    state.verifiers.push(tokens.verifier.clone());
    tokens::spawn_admin(&cfg, &tokens, cfg.api_token.clone(), state.verifiers.clone(), shutdown_rx.clone()).await?;
    let cc_routes = callcontroller::routes(&cfg, state.clone())?;
    callcontroller::spawn_listener(&cfg, cc_routes.clone(), shutdown_rx.clone()).await?;
    xmlrpc::spawn_listener(&cfg, state.engine.clone(), shutdown_rx.clone()).await?;
    let mx_routes = api::mx::routes(api::mx::MxState { engine: Some(state.engine.clone()), ..tokens.mx_state.clone() });
    let mut app = api::router(state).merge(mx_routes).merge(cc_routes);
    if let Some(s) = sip_ws {
        // Ahead of every route: `/` is also the WCS SDK's socket (no subprotocol).
        app = app.layer(axum::middleware::from_fn_with_state(s, sip_ws::SipWs::dispatch));
    }
    let api_tls = tokens.api_tls.clone();
    let mut http_stop = shutdown_rx.clone();
    let http_task = tokio::spawn(async move {
        let stop = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = api::tls::serve(http, app, api_tls, stop).await {
            error!("HTTP server: {e}");
        }
    });
    info!(sip = %sip_addr, http = %cfg.http_listen, rtp = %cfg.rtp_ports, data = %cfg.data_dir.display(), "switchboard ready");
    eprint!("{}", welcome(sip_addr, advertised, cfg.http_listen, &cfg.data_dir));

    wait_for_signal().await;
    info!("signal received; stopping");
    let _ = shutdown_tx.send(true);
    let _ = signalling.await;
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    tokio::task::spawn_blocking(move || media.shutdown()).await.map_err(|e| e.to_string())?;
    // The signalling task has dropped its recorder: the writer drains and finishes.
    let _ = tokio::time::timeout(Duration::from_secs(5), recorder_task).await;
    // …and so does the event outbox's.
    let _ = tokio::time::timeout(Duration::from_secs(5), outbox_task).await;
    info!("stopped");
    Ok(())
}

/// The store `database_url` names, else SQLite in the data dir.
async fn open_store(cfg: &Config) -> Result<store::Store, String> {
    match &cfg.database_url {
        Some(url) => store::Store::open_url(url).await.map_err(|e| format!("database {}: {e}", config::redact_url_password(url))),
        None => store::Store::open(&cfg.data_dir).await.map_err(|e| format!("database in {}: {e}", cfg.data_dir.display())),
    }
}

/// Makes sure our `--domain` exists, says how to create an admin if there is none,
/// starts the directory reload loop, and reads the persisted bindings.
async fn start_directory(
    cfg: &Config,
    db: &store::Store,
    directory_changed: Arc<tokio::sync::Notify>,
) -> Result<(watch::Receiver<Arc<store::DirectorySnapshot>>, Vec<store::Binding>, store::DomainId), String> {
    let domain = db.ensure_domain(&cfg.domain).await.map_err(|e| format!("domain {:?}: {e}", cfg.domain))?;
    if !db.has_admin().await.map_err(|e| format!("database: {e}"))? {
        let place = match &cfg.database_url {
            Some(url) => format!("--database-url '{}'", config::redact_url_password(url)),
            None => format!("--data-dir '{}'", cfg.data_dir.display()),
        };
        warn!(
            "no admin yet: create one with `switchboard users add admin --domain {} --password SECRET --admin {place}` \
             (or `switchboard keys add NAME --role admin {place}`)",
            domain.name
        );
    }
    let (directory, _task) = directory_sync::start(db.clone(), directory_changed.clone()).await.map_err(|e| format!("directory: {e}"))?;
    let bindings = db.load_bindings().await.map_err(|e| format!("bindings: {e}"))?;
    info!(bindings = bindings.len(), "persisted bindings loaded");
    Ok((directory, bindings, domain.id))
}

/// What a newcomer needs on start: where to reach us, where data goes, a first call.
fn welcome(sip: SocketAddr, advertised: SocketAddr, http: SocketAddr, data_dir: &std::path::Path) -> String {
    let http_url = match http.ip().is_unspecified() {
        true => format!("http://127.0.0.1:{}", http.port()),
        false => format!("http://{http}"),
    };
    format!(
        "  SIP   udp {sip}\n  SIP   tcp {sip}\n  HTTP  {http_url}  (API docs: {http_url}/docs)\n  data  {}\n  \
         try   sip:echo@{advertised} (echoes your audio) or sip:conf-1@{advertised} (conference room 1)\n",
        data_dir.display()
    )
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn call(args: CallArgs) -> ExitCode {
    let mut body = serde_json::json!({ "to": args.to });
    if let Some(s) = args.hangup_after {
        body["hangup_after_ms"] = serde_json::json!((s * 1000.0) as u64);
    }
    if let Some(f) = args.from {
        body["from"] = serde_json::json!(f);
    }
    let url = format!("{}/v1/calls", args.server.trim_end_matches('/'));
    let mut req = ureq::post(&url).timeout(Duration::from_secs(10));
    if let Some(t) = &args.token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_json(body) {
        Ok(resp) => {
            println!("{}", resp.into_string().unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(ureq::Error::Status(code, resp)) => {
            eprintln!("server answered {code}: {}", resp.into_string().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot reach {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
