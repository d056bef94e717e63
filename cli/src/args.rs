use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tenure_gateway::http::client::TrustedProxies;

#[derive(Debug, Parser)]
#[command(name = "tenure", version, about = "Tenure: event-sourced account lifecycle for a business customer portal")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Where the embedded store, keys and outbox live.
    #[arg(long, env = "TENURE_DATA_DIR", default_value = "./tenure-data", global = true)]
    pub data_dir: PathBuf,
    /// The base of links in mail [default: http://<listen address>].
    #[arg(long, env = "TENURE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// The event store: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE [default: sqlite://<data-dir>/tenure.db].
    #[arg(long, env = "TENURE_STORE", global = true, hide_env_values = true)]
    pub store: Option<String>,
    /// Outbound mail server, smtp://host:port [default: .eml files under <data-dir>/outbox/].
    #[arg(long, env = "TENURE_SMTP", global = true, value_parser = parse_smtp, hide_env_values = true)]
    pub smtp: Option<String>,
    /// The sender of Tenure's mail.
    #[arg(long, env = "TENURE_MAIL_FROM", global = true, default_value = "Tenure <no-reply@tenure.invalid>")]
    pub mail_from: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The web gateway and the projections; on an empty store it prints a one-time link for
    /// the first administrator.
    Serve(Serve),
    /// Operator versions of the org administrator's actions.
    #[command(subcommand)]
    Admin(Admin),
    /// An account's full history, or its state at a time.
    Audit(Audit),
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(Bench),
    /// Single sign-on (SPEC §13): the keys that sign tokens.
    #[command(subcommand)]
    Oidc(Oidc),
    /// Posts org-level items for the dashboard widgets.
    #[command(subcommand)]
    Org(OrgItem),
    /// The read models: status, rebuild, and a runner for use without `tenure serve`.
    #[command(subcommand)]
    Projections(Projections),
    /// The inactivity scheduler (SPEC §5): warnings, deactivation, deletion, username release.
    Scheduler(Scheduler),
    /// The mail outbox: what is queued, sent or failing, and sending it now.
    #[command(subcommand)]
    Mail(Mail),
    /// Creates or upgrades the schema of the store that --store names, and exits. `tenure serve`
    /// does the same at start; this runs it ahead of a rollout.
    Migrate,
    /// Copies every event, in order, with the data keys, from one store into another, verifying
    /// every hash chain; the target then serves. A copy that stopped part-way resumes.
    MigrateStore(MigrateStore),
}

impl Command {
    /// Whether the command runs as a server or talks to sockets at length (the gateway, the
    /// scheduler's mail, the projections' runner, benchmarks with their own HTTP server).
    pub fn serves(&self) -> bool {
        matches!(
            self,
            Command::Serve(_) | Command::Scheduler(_) | Command::Bench(_) | Command::Projections(Projections::Run)
        )
    }
}

#[derive(Debug, Args)]
pub struct MigrateStore {
    /// The store to copy from: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long)]
    pub from: String,
    /// The store to copy into: empty, or holding the beginning of an earlier copy.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct Scheduler {
    /// One pass, then exit with a summary: warned, deactivated, deleted, released.
    #[arg(long)]
    pub once: bool,
    /// Act as if the time were this (RFC 3339): for audits, demos and tests. Events are stamped
    /// with it; without --once the clock runs on from it.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Print what a pass would do and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub quarantine: Quarantine,
    #[arg(long, env = "TENURE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct Quarantine {
    /// Days a deleted profile's username stays unavailable.
    #[arg(
        long = "username-quarantine",
        env = "TENURE_USERNAME_QUARANTINE",
        default_value_t = 180,
        value_parser = clap::value_parser!(u32).range(0..=36_500)
    )]
    pub days: u32,
}

#[derive(Debug, Subcommand)]
pub enum Projections {
    /// Each projection's checkpoint, the store's head, the lag and the state; exits non-zero
    /// when one has failed.
    Status,
    /// Rebuilds from position 0 into a fresh copy while the current copy keeps answering, then
    /// swaps it in.
    Rebuild {
        /// Projections to rebuild [default: all]: accounts, org_widgets.
        names: Vec<String>,
    },
    /// Keeps the projections up to date until interrupted (`tenure serve` does this itself).
    Run,
}

#[derive(Debug, Subcommand)]
pub enum Mail {
    /// How many mails are queued, sent, failing and refused for good, the oldest queued one's
    /// age, and why the failing ones fail; exits 1 while a mail fails or one was refused for good
    /// (in the last 30 days).
    Status,
    /// Sends what is due now (waiting up to 30 s for a mail server that refuses), then prints
    /// the status.
    Send,
}

#[derive(Debug, Subcommand)]
pub enum OrgItem {
    /// Open orders.
    #[command(subcommand)]
    Order(OpenClose),
    /// Open support tickets.
    #[command(subcommand)]
    Ticket(OpenClose),
    /// Network maintenance windows.
    #[command(subcommand)]
    Maintenance(Maintenance),
}

#[derive(Debug, Subcommand)]
pub enum OpenClose {
    Open {
        #[arg(long)]
        org: String,
        /// The item's id [default: a new one, printed].
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        title: String,
    },
    Close {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Maintenance {
    /// Schedules a maintenance window.
    Add {
        #[arg(long)]
        org: String,
        /// The window's id [default: a new one, printed].
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        title: String,
        /// RFC 3339.
        #[arg(long, value_parser = parse_time)]
        starts: DateTime<Utc>,
        /// RFC 3339.
        #[arg(long, value_parser = parse_time)]
        ends: DateTime<Utc>,
    },
    /// Cancels a scheduled window.
    Cancel {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct Serve {
    #[arg(long, env = "TENURE_LISTEN", default_value = crate::context::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Session cookies without `Secure`, for plain-HTTP local use.
    #[arg(long, env = "TENURE_INSECURE_COOKIES")]
    pub insecure_cookies: bool,
    /// The current version of the terms and conditions.
    #[arg(long, env = "TENURE_TERMS_VERSION", default_value_t = 1)]
    pub terms_version: u32,
    /// The issuer authenticator apps show.
    #[arg(long, env = "TENURE_ISSUER", default_value = "Tenure")]
    pub issuer: String,
    #[arg(long, env = "TENURE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "TENURE_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "TENURE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Minutes a session lasts without use.
    #[arg(long, env = "TENURE_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u32,
    /// Hours a session lasts at most.
    #[arg(long, env = "TENURE_SESSION_MAX_HOURS", default_value_t = 12)]
    pub session_max_hours: u32,
    /// Runs the inactivity scheduler in this process too.
    #[arg(long, env = "TENURE_WITH_SCHEDULER")]
    pub with_scheduler: bool,
    #[command(flatten)]
    pub quarantine: Quarantine,
    /// Proxies believed for Forwarded / X-Forwarded-For / X-Forwarded-Proto: CIDR[,CIDR…].
    /// The client is the right-most address in the chain that is not one of them.
    #[arg(long, env = "TENURE_TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    /// The peers that may read /metrics (CIDR[,CIDR…]), asking directly, not through a proxy:
    /// its counters tell what happened, such as whether a reset request found an account.
    #[arg(long, env = "TENURE_METRICS_FROM", default_value = "127.0.0.0/8,::1", value_parser = TrustedProxies::parse)]
    pub metrics_from: TrustedProxies,
    /// Failed sign-in steps (wrong password or code, unknown token, refused form) a client
    /// address may make per minute, and at once, before it is answered 429.
    #[arg(long, env = "TENURE_ADDRESS_FAILURES_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub address_failures_per_minute: u32,
    /// Serve HTTPS with this certificate chain (PEM), reloaded on SIGHUP.
    #[arg(long, env = "TENURE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TENURE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client may take to send a request's headers (and a new connection its first).
    #[arg(long, env = "TENURE_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay idle between requests.
    #[arg(long, env = "TENURE_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Seconds a client may take to send a request's body, once its headers are in.
    #[arg(long, env = "TENURE_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Connections one client address (an IPv6 /64) may hold open at once; trusted proxies
    /// are not capped.
    #[arg(long, env = "TENURE_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub connections_per_address: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Oidc {
    /// Makes a new token signing key, which every gateway signs with from then on; the one it
    /// replaces still verifies (and stays in the JWKS) for the grace period, then is dropped.
    RotateKeys {
        /// Hours the replaced key still verifies: at least one, so that no token a gateway signs
        /// before it reads the new key (it reads keys every 30 s) outlives the old key.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=8760))]
        grace_hours: u32,
    },
    /// The applications (OpenID Connect clients) an org's users sign in to through Tenure.
    #[command(subcommand)]
    Client(OidcClient),
}

#[derive(Debug, Subcommand)]
pub enum OidcClient {
    /// Registers an application with an org; prints `client_id:` and, once, the
    /// `client_secret:` of a confidential one.
    Add(ClientAdd),
    /// Lists the registered applications, of one org or of all.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Removes an application.
    Remove { client_id: String },
}

#[derive(Debug, Args)]
pub struct ClientAdd {
    /// The org whose users sign in to it.
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub name: String,
    /// Where the authorization answer may go, compared exactly: https://, or http:// to localhost.
    #[arg(long = "redirect-uri", required = true, num_args = 1..)]
    pub redirect_uris: Vec<String>,
    /// A public client (in a browser or on a device): no secret, PKCE required.
    #[arg(long)]
    pub public: bool,
    /// Where the application may send the browser after signing out.
    #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The dashboard tab that links to it.
    #[arg(long, value_parser = ["services", "apis", "monitoring", "billing", "support", "orders"])]
    pub tab: Option<String>,
    /// Shared with the users of every org, not only --org's.
    #[arg(long)]
    pub all_orgs: bool,
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Invites a user; prints the account id and the invitation link.
    Invite(Invite),
    /// Sends a new invitation link; the previous one stops working.
    Resend { username: String },
    /// Sets the second factor the user must use.
    Mfa { username: String, mfa: Mfa },
    /// Reactivates a deactivated profile.
    Reactivate { username: String },
    /// Mails the user a password reset link (a deactivated profile gets a notice instead).
    ResetPassword { username: String },
    /// Voids the user's authenticator and recovery codes and ends their sessions: the next
    /// sign-in sets up a new authenticator after the password.
    ResetMfa { username: String },
}

#[derive(Debug, Args)]
pub struct Invite {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// The organisation's id.
    #[arg(long)]
    pub org: String,
    /// The organisation's display name [default: the org id].
    #[arg(long)]
    pub org_name: Option<String>,
    /// The organisation is a wholesale customer (it sees the Orders tab).
    #[arg(long)]
    pub wholesale: bool,
    #[arg(long, value_enum, default_value_t = Role::User)]
    pub role: Role,
    /// With `--role auditor`: the auditor reads the accounts of every org, not only `--org`'s.
    #[arg(long, requires = "role")]
    pub all_orgs: bool,
    #[arg(long, value_enum, default_value_t = Mfa::None)]
    pub mfa: Mfa,
    #[arg(long)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    User,
    Admin,
    /// Reads account histories (the Audit tab and `/api/v1/audit/…`); changes nothing.
    Auditor,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mfa {
    None,
    App,
    Email,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Audit {
    #[command(subcommand)]
    pub log: Option<AuditLog>,
    /// A username or an account id.
    #[arg(required = true)]
    pub who: Option<String>,
    /// Print the account's state at this time instead of its history: RFC 3339 (to the end of
    /// its last digit), a date and time in UTC, or a date (to its end).
    #[arg(long, value_parser = tenure_projections::history::parse_as_of)]
    pub as_of: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Check the stream's hash chain and the whole log it belongs to; exit non-zero naming each
    /// bad event.
    #[arg(long, conflicts_with = "as_of")]
    pub verify: bool,
    /// Print every event as stored with its inclusion proof against the latest signed head (a
    /// JSON file for `tenure audit check-proof`).
    #[arg(long, conflicts_with_all = ["as_of", "verify"])]
    pub proof: bool,
}

/// The verifiable log (SPEC §12). A username that is one of these words is audited by its id.
#[derive(Debug, Subcommand)]
pub enum AuditLog {
    /// Prints the latest signed tree head as JSON, signing one first if the log grew since.
    Head,
    /// Prints the log's Ed25519 public key (PEM), which checks heads and proofs.
    PublicKey,
    /// Checks the whole store: every chain, positions 1..n, the tree against every signed head
    /// and, with --head, against a head saved earlier. Exits non-zero naming each problem.
    VerifyStore {
        /// A signed head saved earlier (the JSON `tenure audit head` prints).
        #[arg(long)]
        head: Option<PathBuf>,
    },
    /// Proves that the log of one saved head is a prefix of the log of a later one.
    Consistency {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
    /// Checks a proof saved from `tenure audit <account> --proof`, offline.
    CheckProof {
        file: PathBuf,
        /// The log's public key as `tenure audit public-key` printed it; without it, the key
        /// written in the proof is used.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Builds the Merkle tree again from the events.
    RebuildTree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Cloudevents,
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Durable appends per second with 1, 8 and 64 writers, beside a raw insert loop.
    Append(BenchAppend),
    /// A full rebuild of all projections over a generated store, beside a raw scan of its events.
    Rebuild(BenchRebuild),
    /// One measured rebuild, beside its raw scan, over a store `bench rebuild` generated: run
    /// in a process of its own, without the generator's heap.
    #[command(hide = true)]
    RebuildRun(BenchRebuildRun),
    /// Complete sign-ins per second through the HTTP server, beside raw argon2 verifications.
    SignIn(BenchSignIn),
    /// The scheduler's cold replay (time, memory per account) and the cost of one tick with few
    /// accounts due, over generated stores, beside a raw scan of their events.
    Scheduler(BenchScheduler),
    /// One scheduler start over a store `bench scheduler` made, in a process of its own so that
    /// its memory is its own: prints one JSON line.
    #[command(hide = true)]
    SchedulerStart(BenchSchedulerStart),
    /// A release gateway (`tenure serve`) under a mixed load, its resident memory each minute.
    Soak(BenchSoak),
    /// The database work of a sign-in step (shared flow state) with few and many flows pending.
    Flows(BenchFlows),
    /// Password reset requests through the HTTP server for held, deactivated, deleted and
    /// unknown names, alternating: their times, each as a ratio to the unknown name's.
    Reset(BenchReset),
    /// `tenure audit verify-store` over a generated store with a signed head, beside a raw scan
    /// of its events (SQLite).
    VerifyStore(BenchRebuild),
    /// Refreshes and code exchanges per second through the token endpoint, beside one ES256
    /// signature plus a refresh token's durable write (SPEC §13).
    Oidc(BenchOidc),
    /// Fills an empty store with sample accounts and signed-in ones, and prints their session
    /// cookies, one per line (scripts/bench-http measures `tenure serve` over it with wrk).
    HttpStore(BenchHttpStore),
}

#[derive(Debug, Args)]
pub struct BenchHttpStore {
    /// Sample accounts (about ten events each).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Signed-in accounts, one session each.
    #[arg(long, default_value_t = 32)]
    pub sessions: usize,
}

#[derive(Debug, Args)]
pub struct BenchOidc {
    /// Seconds to run the refreshes and their baseline each (in alternating slices), and the
    /// code exchanges.
    #[arg(long, default_value_t = 9.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Concurrent clients (and baseline workers).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
}

#[derive(Debug, Args)]
pub struct BenchReset {
    /// Requests timed per kind of name.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(20..))]
    pub samples: u32,
    /// Concurrent clients, each alternating the kinds of name.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
}

#[derive(Debug, Args)]
pub struct BenchFlows {
    /// Flows pending while the steps are timed, comma separated; the first is the baseline.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 1_000_000])]
    pub pending: Vec<usize>,
    /// Flows timed per case.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..))]
    pub samples: u32,
    /// Also on PostgreSQL: a scratch database on the server this URL reaches, dropped afterwards.
    #[arg(long)]
    pub postgres: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchScheduler {
    /// Accounts to generate (about ten events each), comma separated: one store per size.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    pub accounts: Vec<usize>,
    /// Where to put the generated stores [default: a temporary directory in the data dir].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also starts from a snapshot of this many accounts: the first store's tracker, made up to
    /// that size with accounts of random activity (a store of ten million accounts would take
    /// hours to generate here, and a start from a snapshot reads only the log's tail).
    #[arg(long)]
    pub snapshot_of: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchSchedulerStart {
    /// The generated store's directory; its `scheduler.snapshot` is used when there is one.
    #[arg(long)]
    pub scratch: PathBuf,
    /// Saves a snapshot once started.
    #[arg(long)]
    pub save: bool,
    /// Before saving, adds accounts of random activity until the tracker holds this many.
    #[arg(long)]
    pub pad_to: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchSoak {
    /// How long to load the gateway.
    #[arg(long, default_value_t = 10)]
    pub minutes: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Sample accounts in the store besides the signed-in ones.
    #[arg(long, default_value_t = 2_000)]
    pub accounts: usize,
}

#[derive(Debug, Args)]
pub struct BenchSignIn {
    /// Seconds to run each part; the raw verifications and the complete sign-ins take turns in
    /// five slices.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
}

#[derive(Debug, Args)]
pub struct BenchRebuildRun {
    /// The generated store's directory (SQLite: its events; PostgreSQL: its master key).
    #[arg(long)]
    pub scratch: PathBuf,
    /// The generated PostgreSQL database, events and read models: from the environment, so
    /// that its password is not on a command line.
    #[arg(long, env = "TENURE_BENCH_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchRebuild {
    /// Accounts to generate (about ten events each).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    /// Where to put the generated store [default: a temporary directory in the data dir].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run on PostgreSQL: scratch databases are created on the server this URL reaches, and
    /// dropped afterwards.
    #[arg(long)]
    pub postgres: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchAppend {
    /// Seconds to run each case (0.1 to 3600).
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Concurrent writers, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 64])]
    pub writers: Vec<usize>,
    /// Where to put the scratch databases [default: a temporary directory in the data dir].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run on PostgreSQL: scratch databases are created on the server this URL reaches, and
    /// dropped afterwards; the baseline is a raw tokio-postgres insert loop.
    #[arg(long)]
    pub postgres: Option<String>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "expected an RFC 3339 time such as 2026-05-01T00:00:00Z".to_string())
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.1..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err("expected a number of seconds from 0.1 to 3600".into()),
    }
}

fn parse_smtp(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("smtp://").ok_or("expected smtp://host:port")?;
    let (host, port) = rest.rsplit_once(':').ok_or("expected smtp://host:port")?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("expected smtp://host:port".into());
    }
    Ok(text.to_string())
}
