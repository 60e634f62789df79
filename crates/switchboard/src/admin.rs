//! The admin CLI: `switchboard domains|users|apps|keys …`, straight on the database.
//!
//! These forms are a contract for scripts (issue 9), so they change only by adding:
//!
//! ```text
//! switchboard domains add NAME [--realm R] [--alias HOST]…
//! switchboard domains list | show NAME | disable NAME | enable NAME | delete NAME [--force]
//! switchboard users add LOGIN --domain NAME --ext EXT --password SECRET [--pin PIN]
//!     [--first-name F] [--last-name L] [--display-name D] [--number N] [--cell N]
//!     [--home N] [--email E] [--admin]
//! switchboard users list [--domain NAME] | show LOGIN --domain NAME
//! switchboard users passwd LOGIN --domain NAME [--password SECRET] [--pin PIN]
//! switchboard users update LOGIN --domain NAME [--ext E] [--first-name F] … [--role R]
//! switchboard users disable|enable|delete LOGIN --domain NAME
//! switchboard apps add CLIENT_ID --secret SECRET [--domain NAME] [--name N]
//! switchboard apps list [--domain NAME] | show ID | passwd ID --secret S | disable|enable|delete ID
//! switchboard keys add NAME --role admin|user [--domain NAME] | list | delete NAME
//! ```
//!
//! Every command takes `--data-dir DIR` or `--database-url URL` (else the same
//! `--config FILE` / `SWITCHBOARD_*` settings as `serve`), and `--json` for output a
//! script can parse. Errors are one line on stderr: exit 1 when the request was
//! refused (not found, already exists, invalid value, in use, database), 2 for usage
//! (clap's own). A secret given as `-` is read from the first line of stdin, so it
//! need not appear in the process list.
//!
//! The CLI writes while a server runs on the same database: SQLite waits for the
//! server's write lock (WAL mode, busy timeout), and the server picks the change up
//! through its directory reload loop (crate::directory_sync) within about a second.
//! No output ever contains a secret: `show` says which secrets are set, not what.

use crate::config::Config;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use store::{Domain, NewUser, Role, Store, StoreError, User, UserPatch};

/// Where the database is, and how to print. `global`: accepted after the action too.
#[derive(Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// Data directory of the server (SQLite in DIR/switchboard.db)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://…); overrides --data-dir
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// The server's TOML config file, for data_dir / database_url
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Machine-readable output (JSON)
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DomainsCmd {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    action: DomainAction,
}

#[derive(Subcommand, Debug)]
enum DomainAction {
    /// Add a domain.
    Add {
        name: String,
        /// Digest realm [default: the name]
        #[arg(long)]
        realm: Option<String>,
        /// Another SIP host name it answers to (repeatable)
        #[arg(long = "alias", value_name = "HOST")]
        aliases: Vec<String>,
    },
    /// List domains.
    List,
    /// Show one domain.
    Show { name: String },
    /// Disable a domain (its users can no longer register or log in).
    Disable { name: String },
    /// Enable a domain.
    Enable { name: String },
    /// Delete a domain (refused while it has users, unless --force).
    Delete {
        name: String,
        /// Delete its users, apps and keys too
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct UsersCmd {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    action: UserAction,
}

/// `LOGIN --domain NAME`.
#[derive(Args, Debug)]
struct UserRef {
    login: String,
    /// The user's domain
    #[arg(long)]
    domain: String,
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Add a user.
    Add {
        login: String,
        #[arg(long)]
        domain: String,
        /// Extension (digits); also a digest username
        #[arg(long)]
        ext: Option<String>,
        /// Password for SIP (kept as HA1) and the API (argon2); `-` reads stdin
        #[arg(long)]
        password: String,
        /// PIN (digits; argon2); `-` reads stdin
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Direct number (DID)
        #[arg(long)]
        number: Option<String>,
        #[arg(long)]
        cell: Option<String>,
        #[arg(long)]
        home: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Make the user an admin of its domain
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List {
        /// Only this domain's
        #[arg(long)]
        domain: Option<String>,
    },
    /// Show one user.
    Show(UserRef),
    /// Change a user's details ("" clears a field).
    Update {
        #[command(flatten)]
        user: UserRef,
        #[arg(long)]
        ext: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        number: Option<String>,
        #[arg(long)]
        cell: Option<String>,
        #[arg(long)]
        home: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Set a user's password and/or PIN.
    Passwd {
        #[command(flatten)]
        user: UserRef,
        #[arg(long)]
        password: Option<String>,
        /// New PIN ("" removes it)
        #[arg(long)]
        pin: Option<String>,
    },
    /// Disable a user (no registration, login or calls as them).
    Disable(UserRef),
    /// Enable a user.
    Enable(UserRef),
    /// Delete a user with its credentials and registrations.
    Delete(UserRef),
}

#[derive(Args, Debug)]
pub struct AppsCmd {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    action: AppAction,
}

#[derive(Subcommand, Debug)]
enum AppAction {
    /// Add an app: an OAuth2 client, a Web Call Server application (its client id is
    /// the `appKey` browsers connect with), or both.
    Add {
        client_id: String,
        /// Its OAuth2 secret (argon2); `-` reads stdin. Optional for a WCS app.
        #[arg(long)]
        secret: Option<String>,
        /// Only this domain's users log in through it
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Web Call Server hooks: POSTed to this URL + "/" + method name
        #[arg(long)]
        rest_url: Option<String>,
        /// Only these hooks (comma list: connect,call,CallStatusEvent) [default: all]
        #[arg(long, value_delimiter = ',')]
        rest_methods: Option<Vec<String>>,
    },
    /// Set which hooks a WCS app's backend gets: method and event names, `*` for all.
    RestMethods {
        client_id: String,
        #[arg(value_delimiter = ',', required = true)]
        methods: Vec<String>,
    },
    /// Set (or with --clear, remove) a WCS app's REST URL.
    RestUrl {
        client_id: String,
        url: Option<String>,
        #[arg(long, conflicts_with = "url")]
        clear: bool,
    },
    /// List apps.
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Show one app.
    Show { client_id: String },
    /// WCS event hooks waiting for their backend, per app (`defaultApp` included):
    /// how many, since when, and why the first is not delivered yet.
    Hooks,
    /// Set an app's secret.
    Passwd {
        client_id: String,
        #[arg(long)]
        secret: String,
    },
    Disable { client_id: String },
    Enable { client_id: String },
    Delete { client_id: String },
}

#[derive(Args, Debug)]
pub struct KeysCmd {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Subcommand, Debug)]
enum KeyAction {
    /// Create an API key and print it (once: only its hash is kept).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Limit the key to this domain [default: every domain]
        #[arg(long)]
        domain: Option<String>,
    },
    /// List API keys (names and prefixes, never the keys).
    List,
    /// Delete an API key.
    Delete { name: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RoleArg {
    Admin,
    User,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::User => Role::User,
        }
    }
}

pub enum Command {
    Domains(DomainsCmd),
    Users(UsersCmd),
    Apps(AppsCmd),
    Keys(KeysCmd),
}

/// A refusal or failure, printed as one line.
struct Failure(String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure(e.to_string())
    }
}

type Outcome = Result<(), Failure>;

pub fn run(cmd: Command) -> ExitCode {
    let db = match &cmd {
        Command::Domains(c) => c.db.clone(),
        Command::Users(c) => c.db.clone(),
        Command::Apps(c) => c.db.clone(),
        Command::Keys(c) => c.db.clone(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start runtime: {e}")),
    };
    let result = rt.block_on(async {
        let store = open(&db).await?;
        let out = Out { json: db.json };
        let result = match cmd {
            Command::Domains(c) => domains(&store, &out, c.action).await,
            Command::Users(c) => users(&store, &out, c.action).await,
            Command::Apps(c) => apps(&store, &out, c.action).await,
            Command::Keys(c) => keys(&store, &out, c.action).await,
        };
        // Closing checkpoints SQLite's log and ends PostgreSQL sessions cleanly.
        store.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => fail(&msg),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

/// The database as `serve` would find it: flags, else config file / environment.
async fn open(db: &DbArgs) -> Result<Store, Failure> {
    #[derive(Serialize)]
    struct Overrides<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        data_dir: Option<&'a PathBuf>,
        #[serde(skip_serializing_if = "Option::is_none")]
        database_url: Option<&'a String>,
    }
    let cfg = Config::load(db.config.as_ref(), &Overrides { data_dir: db.data_dir.as_ref(), database_url: db.database_url.as_ref() })
        .map_err(|e| Failure(format!("configuration: {e}")))?;
    // An explicit --data-dir beats a database_url from the file or environment.
    let url = if db.data_dir.is_some() && db.database_url.is_none() { None } else { cfg.database_url.clone() };
    let opened = match &url {
        Some(url) => Store::open_url(url).await,
        None => Store::open(&cfg.data_dir).await,
    };
    opened.map_err(|e| {
        let place = match &url {
            Some(u) => crate::config::redact_url_password(u),
            None => cfg.data_dir.display().to_string(),
        };
        Failure(format!("cannot open the database {place}: {e}"))
    })
}

/// Prints results as text or as JSON.
struct Out {
    json: bool,
}

impl Out {
    /// `value` as JSON, or `text` for people.
    fn show(&self, value: &impl Serialize, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let line = if self.json { serde_json::to_string_pretty(value).unwrap_or_default() } else { text() };
        let _ = writeln!(stdout, "{}", line.trim_end());
    }
}

/// A secret argument; `-` means the first line of stdin.
fn secret(value: &str) -> Result<String, Failure> {
    if value != "-" {
        return Ok(value.to_owned());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Failure(format!("cannot read the secret from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn domain_named(store: &Store, name: &str) -> Result<Domain, Failure> {
    store.domain_by_name(name).await?.ok_or_else(|| Failure(format!("domain {:?} not found", name.trim().to_ascii_lowercase())))
}

async fn user_named(store: &Store, r: &UserRef) -> Result<(Domain, User), Failure> {
    let domain = domain_named(store, &r.domain).await?;
    let user = store
        .user_by_login(domain.id, &r.login)
        .await?
        .ok_or_else(|| Failure(format!("user {:?} not found in domain {:?}", r.login, domain.name)))?;
    Ok((domain, user))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A table: columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

async fn domains(store: &Store, out: &Out, action: DomainAction) -> Outcome {
    match action {
        DomainAction::Add { name, realm, aliases } => {
            let mut d = store.add_domain(&name, realm.as_deref()).await?;
            for alias in &aliases {
                store.add_domain_alias(d.id, alias).await?;
            }
            if !aliases.is_empty() {
                d = store.domain(d.id).await?.unwrap_or(d);
            }
            out.show(&d, || format!("added domain {} (realm {:?})", d.name, d.realm));
        }
        DomainAction::List => {
            let list = store.list_domains().await?;
            let rows = list
                .iter()
                .map(|d| vec![d.name.clone(), d.realm.clone(), yes_no(d.enabled).into(), d.aliases.join(",")])
                .collect();
            out.show(&list, || table(&["NAME", "REALM", "ENABLED", "ALIASES"], rows));
        }
        DomainAction::Show { name } => {
            let d = domain_named(store, &name).await?;
            let users = store.list_users(Some(d.id)).await?.len();
            #[derive(Serialize)]
            struct Shown<'a> {
                #[serde(flatten)]
                domain: &'a Domain,
                users: usize,
            }
            out.show(&Shown { domain: &d, users }, || {
                format!(
                    "name:    {}\nid:      {}\nrealm:   {}\nenabled: {}\naliases: {}\nusers:   {users}",
                    d.name,
                    d.id,
                    d.realm,
                    yes_no(d.enabled),
                    if d.aliases.is_empty() { "-".into() } else { d.aliases.join(", ") }
                )
            });
        }
        DomainAction::Disable { name } => set_domain_enabled(store, out, &name, false).await?,
        DomainAction::Enable { name } => set_domain_enabled(store, out, &name, true).await?,
        DomainAction::Delete { name, force } => {
            let d = domain_named(store, &name).await?;
            let result = if force { store.delete_domain_cascade(d.id).await } else { store.delete_domain(d.id).await };
            match result {
                Err(StoreError::InUse(m)) => return Err(Failure(format!("{m} (or pass --force)"))),
                other => other?,
            }
            out.show(&serde_json::json!({"deleted": d.name}), || format!("deleted domain {}", d.name));
        }
    }
    Ok(())
}

async fn set_domain_enabled(store: &Store, out: &Out, name: &str, enabled: bool) -> Outcome {
    let d = domain_named(store, name).await?;
    store.set_domain_enabled(d.id, enabled).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    out.show(&serde_json::json!({"domain": d.name, "enabled": enabled}), || format!("domain {} {word}", d.name));
    Ok(())
}

/// A user as `list`/`show` print it: the directory fields plus the domain's name.
#[derive(Serialize)]
struct UserView<'a> {
    #[serde(flatten)]
    user: &'a User,
    domain: &'a str,
}

async fn users(store: &Store, out: &Out, action: UserAction) -> Outcome {
    match action {
        UserAction::Add {
            login,
            domain,
            ext,
            password,
            pin,
            first_name,
            last_name,
            display_name,
            number,
            cell,
            home,
            email,
            admin,
        } => {
            let new = NewUser {
                domain,
                login,
                password: secret(&password)?,
                pin: pin.as_deref().map(secret).transpose()?,
                ext,
                first_name,
                last_name,
                display_name,
                did: number,
                cell_phone: cell,
                home_phone: home,
                email,
                role: if admin { Role::Admin } else { Role::User },
            };
            let u = store.add_user(&new).await?;
            let d = store.domain(u.domain_id).await?.map(|d| d.name).unwrap_or_default();
            out.show(&UserView { user: &u, domain: &d }, || {
                let ext = u.ext.as_deref().map(|e| format!(", extension {e}")).unwrap_or_default();
                let role = if u.role == Role::Admin { " (admin)" } else { "" };
                format!("added user {}@{d}{ext}{role}", u.login)
            });
        }
        UserAction::List { domain } => {
            let domain = match domain {
                Some(name) => Some(domain_named(store, &name).await?),
                None => None,
            };
            let list = store.list_users(domain.as_ref().map(|d| d.id)).await?;
            let names: std::collections::HashMap<i64, String> =
                store.list_domains().await?.into_iter().map(|d| (d.id, d.name)).collect();
            let views: Vec<UserView> = list.iter().map(|u| UserView { user: u, domain: names.get(&u.domain_id).map_or("", |s| s) }).collect();
            let rows = views
                .iter()
                .map(|v| {
                    let u = v.user;
                    vec![
                        u.login.clone(),
                        v.domain.to_owned(),
                        u.ext.clone().unwrap_or_else(|| "-".into()),
                        u.caller_name(),
                        u.role.as_str().into(),
                        yes_no(u.enabled).into(),
                    ]
                })
                .collect();
            out.show(&views, || table(&["LOGIN", "DOMAIN", "EXT", "NAME", "ROLE", "ENABLED"], rows));
        }
        UserAction::Show(r) => {
            let (d, u) = user_named(store, &r).await?;
            let secrets = store.user_secrets(u.id).await?;
            #[derive(Serialize)]
            struct Shown<'a> {
                #[serde(flatten)]
                view: UserView<'a>,
                secrets: store::UserSecrets,
            }
            out.show(&Shown { view: UserView { user: &u, domain: &d.name }, secrets }, || {
                let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let usernames = [Some(u.login.as_str()), u.ext.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(", ");
                let password = if secrets.password {
                    format!("set (SIP digest: HA1 MD5 and SHA-256 for {usernames}; API: argon2id)")
                } else {
                    "not set".into()
                };
                format!(
                    "login:        {}\nid:           {}\ndomain:       {}\nextension:    {}\ndisplay name: {}\nfirst name:   {}\n\
                     last name:    {}\nnumber:       {}\ncell:         {}\nhome:         {}\nemail:        {}\nrole:         {}\n\
                     enabled:      {}\npassword:     {password}\npin:          {}\ndevices:      {} device password(s)",
                    u.login,
                    u.id,
                    d.name,
                    opt(&u.ext),
                    opt(&u.display_name),
                    opt(&u.first_name),
                    opt(&u.last_name),
                    opt(&u.did),
                    opt(&u.cell_phone),
                    opt(&u.home_phone),
                    opt(&u.email),
                    u.role.as_str(),
                    yes_no(u.enabled),
                    if secrets.pin { "set (argon2id)" } else { "not set" },
                    secrets.device_credentials / 2,
                )
            });
        }
        UserAction::Update { user, ext, first_name, last_name, display_name, number, cell, home, email, role } => {
            let (d, u) = user_named(store, &user).await?;
            let patch = UserPatch {
                ext,
                first_name,
                last_name,
                display_name,
                did: number,
                cell_phone: cell,
                home_phone: home,
                email,
                role: role.map(Role::from),
                ..Default::default()
            };
            let dropped_ext = patch.ext.is_some() && u.ext.is_some() && patch.ext != u.ext;
            let updated = store.update_user(u.id, &patch).await?;
            out.show(&UserView { user: &updated, domain: &d.name }, || {
                let mut msg = format!("updated user {}@{}", updated.login, d.name);
                if dropped_ext {
                    // HA1 needs the password, which is not kept: see store::directory.
                    msg.push_str(" (the old extension's SIP credentials were removed; set the password again to register with the new one)");
                }
                msg
            });
        }
        UserAction::Passwd { user, password, pin } => {
            if password.is_none() && pin.is_none() {
                return Err(Failure("nothing to change: give --password and/or --pin".into()));
            }
            let (d, u) = user_named(store, &user).await?;
            let patch = UserPatch {
                password: password.as_deref().map(secret).transpose()?,
                pin: pin.as_deref().map(secret).transpose()?,
                ..Default::default()
            };
            store.update_user(u.id, &patch).await?;
            let what = match (&patch.password, &patch.pin) {
                (Some(_), Some(_)) => "password and PIN",
                (Some(_), None) => "password",
                _ => "PIN",
            };
            out.show(&serde_json::json!({"user": u.login, "domain": d.name, "changed": what}), || {
                format!("{what} of {}@{} changed", u.login, d.name)
            });
        }
        UserAction::Disable(r) => set_user_enabled(store, out, &r, false).await?,
        UserAction::Enable(r) => set_user_enabled(store, out, &r, true).await?,
        UserAction::Delete(r) => {
            let (d, u) = user_named(store, &r).await?;
            store.delete_user(u.id).await?;
            out.show(&serde_json::json!({"deleted": u.login, "domain": d.name}), || format!("deleted user {}@{}", u.login, d.name));
        }
    }
    Ok(())
}

async fn set_user_enabled(store: &Store, out: &Out, r: &UserRef, enabled: bool) -> Outcome {
    let (d, u) = user_named(store, r).await?;
    store.set_user_enabled(u.id, enabled).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    out.show(&serde_json::json!({"user": u.login, "domain": d.name, "enabled": enabled}), || {
        format!("user {}@{} {word}", u.login, d.name)
    });
    Ok(())
}

/// An app as printed: with its domain's name.
#[derive(Serialize)]
struct AppView<'a> {
    #[serde(flatten)]
    app: &'a store::App,
    domain: Option<String>,
}

async fn app_view<'a>(store: &Store, app: &'a store::App) -> Result<AppView<'a>, Failure> {
    let domain = match app.domain_id {
        Some(id) => store.domain(id).await?.map(|d| d.name),
        None => None,
    };
    Ok(AppView { app, domain })
}

async fn app_named(store: &Store, client_id: &str) -> Result<store::App, Failure> {
    store.app(client_id).await?.ok_or_else(|| Failure(format!("app {client_id:?} not found")))
}

async fn apps(store: &Store, out: &Out, action: AppAction) -> Outcome {
    match action {
        AppAction::Add { client_id, secret: s, domain, name, rest_url, rest_methods } => {
            let domain_id = match domain {
                Some(n) => Some(domain_named(store, &n).await?.id),
                None => None,
            };
            if let Some(u) = &rest_url {
                store::valid_rest_url(u)?;
            }
            if let Some(m) = &rest_methods {
                store::valid_rest_methods(m)?;
            }
            let secret = match (s, &rest_url) {
                (Some(s), _) => secret(&s)?,
                // A WCS-only app: nobody logs in with it, so its secret is random and unknown.
                (None, Some(_)) => random_secret(),
                (None, None) => return Err(Failure("--secret is required (or --rest-url, for a Web Call Server app)".into())),
            };
            let mut app = store.add_app(&client_id, &secret, name.as_deref(), domain_id).await?;
            if let Some(u) = rest_url.as_deref() {
                store.set_app_rest_url(&client_id, Some(u)).await?;
                app.rest_url = store.app(&client_id).await?.and_then(|a| a.rest_url);
            }
            if let Some(m) = rest_methods.as_deref() {
                store.set_app_rest_methods(&client_id, Some(m)).await?;
                app.rest_methods = store.app(&client_id).await?.and_then(|a| a.rest_methods);
            }
            let view = app_view(store, &app).await?;
            out.show(&view, || {
                let scope = view.domain.as_deref().map(|d| format!(" for domain {d}")).unwrap_or_default();
                format!("added app {}{scope}", app.client_id)
            });
        }
        AppAction::List { domain } => {
            let domain_id = match domain {
                Some(n) => Some(domain_named(store, &n).await?.id),
                None => None,
            };
            let list = store.list_apps(domain_id).await?;
            let mut views = Vec::new();
            for a in &list {
                views.push(app_view(store, a).await?);
            }
            let rows = views
                .iter()
                .map(|v| {
                    vec![
                        v.app.client_id.clone(),
                        v.app.name.clone().unwrap_or_else(|| "-".into()),
                        v.domain.clone().unwrap_or_else(|| "(any)".into()),
                        yes_no(v.app.enabled).into(),
                    ]
                })
                .collect();
            out.show(&views, || table(&["CLIENT_ID", "NAME", "DOMAIN", "ENABLED"], rows));
        }
        AppAction::Show { client_id } => {
            let app = app_named(store, &client_id).await?;
            let view = app_view(store, &app).await?;
            out.show(&view, || {
                format!(
                    "client_id: {}\nid:        {}\nname:      {}\ndomain:    {}\nenabled:   {}\nsecret:    set (argon2id)\nrest_url:  {}\nhooks:     {}",
                    app.client_id,
                    app.id,
                    app.name.as_deref().unwrap_or("-"),
                    view.domain.as_deref().unwrap_or("(any)"),
                    yes_no(app.enabled),
                    app.rest_url.as_deref().unwrap_or("-"),
                    methods_text(app.rest_methods.as_deref())
                )
            });
        }
        AppAction::Hooks => {
            let backlog = store.hook_backlog().await?;
            let now = crate::outbox::now_ms();
            let json: Vec<serde_json::Value> = backlog
                .iter()
                .map(|q| {
                    serde_json::json!({
                        "app": q.queue, "pending": q.pending, "oldest_ms": q.oldest_ms, "attempts": q.head_attempts,
                        "next_attempt_ms": q.next_attempt_ms, "last_status": q.last_status, "last_error": q.last_error,
                    })
                })
                .collect();
            out.show(&json, || {
                if backlog.is_empty() {
                    return "no WCS event hooks waiting: every backend has taken its events".into();
                }
                let rows = backlog
                    .iter()
                    .map(|q| {
                        vec![
                            q.queue.clone(),
                            q.pending.to_string(),
                            format!("{} s", now.saturating_sub(q.oldest_ms) / 1000),
                            q.head_attempts.to_string(),
                            if q.next_attempt_ms > now { format!("in {} s", (q.next_attempt_ms - now).div_ceil(1000)) } else { "now".into() },
                            q.last_error.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["APP", "WAITING", "OLDEST", "TRIES", "NEXT TRY", "LAST ERROR"], rows)
            });
        }
        AppAction::Passwd { client_id, secret: s } => {
            store.set_app_secret(&client_id, &secret(&s)?).await?;
            out.show(&serde_json::json!({"app": client_id, "changed": "secret"}), || format!("secret of app {client_id} changed"));
        }
        AppAction::RestUrl { client_id, url, clear } => {
            if url.is_none() && !clear {
                return Err(Failure("give the URL, or --clear".into()));
            }
            store.set_app_rest_url(&client_id, url.as_deref()).await?;
            let shown = store.app(&client_id).await?.and_then(|a| a.rest_url);
            out.show(&serde_json::json!({"app": client_id, "rest_url": shown}), || match &shown {
                Some(u) => format!("app {client_id}: hooks go to {u}"),
                None => format!("app {client_id}: no hooks"),
            });
        }
        AppAction::RestMethods { client_id, methods } => {
            store.set_app_rest_methods(&client_id, Some(&methods)).await?;
            let shown = app_named(store, &client_id).await?.rest_methods;
            out.show(&serde_json::json!({"app": client_id, "rest_methods": shown}), || format!("app {client_id}: hooks {}", methods_text(shown.as_deref())));
        }
        AppAction::Disable { client_id } => set_app_enabled(store, out, &client_id, false).await?,
        AppAction::Enable { client_id } => set_app_enabled(store, out, &client_id, true).await?,
        AppAction::Delete { client_id } => {
            store.delete_app(&client_id).await?;
            out.show(&serde_json::json!({"deleted": client_id}), || format!("deleted app {client_id}"));
        }
    }
    Ok(())
}

/// An app's hook list for people: "all", "none" or the names.
fn methods_text(methods: Option<&[String]>) -> String {
    match methods {
        None => "all".into(),
        Some([]) => "none".into(),
        Some(m) => m.join(","),
    }
}

async fn set_app_enabled(store: &Store, out: &Out, client_id: &str, enabled: bool) -> Outcome {
    store.set_app_enabled(client_id, enabled).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    out.show(&serde_json::json!({"app": client_id, "enabled": enabled}), || format!("app {client_id} {word}"));
    Ok(())
}

async fn keys(store: &Store, out: &Out, action: KeyAction) -> Outcome {
    match action {
        KeyAction::Add { name, role, domain } => {
            let domain = match domain {
                Some(n) => Some(domain_named(store, &n).await?),
                None => None,
            };
            let (key, plain) = store.add_api_key(&name, domain.as_ref().map(|d| d.id), role.into()).await?;
            // The one place a secret is printed: the key is made here and kept only hashed.
            out.show(&serde_json::json!({"key": plain, "name": key.name, "role": key.role, "domain": domain.as_ref().map(|d| &d.name), "prefix": key.prefix}), || {
                let scope = domain.as_ref().map(|d| format!("domain {}", d.name)).unwrap_or_else(|| "every domain".into());
                format!("{plain}\n(API key {:?}, role {}, {scope}; shown once: store it now)", key.name, key.role.as_str())
            });
        }
        KeyAction::List => {
            let list = store.list_api_keys().await?;
            let names: std::collections::HashMap<i64, String> =
                store.list_domains().await?.into_iter().map(|d| (d.id, d.name)).collect();
            let rows = list
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        k.role.as_str().into(),
                        k.domain_id.and_then(|id| names.get(&id).cloned()).unwrap_or_else(|| "(all)".into()),
                        format!("{}…", k.prefix),
                    ]
                })
                .collect();
            out.show(&list, || table(&["NAME", "ROLE", "DOMAIN", "PREFIX"], rows));
        }
        KeyAction::Delete { name } => {
            store.delete_api_key(&name).await?;
            out.show(&serde_json::json!({"deleted": name}), || format!("deleted API key {name}"));
        }
    }
    Ok(())
}

/// A secret nobody is told: for apps that only carry WCS hooks.
fn random_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
