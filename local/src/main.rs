//! `cargo run -p loyalty-local`: the whole loyalty API on one port for development.

use clap::{Parser, Subcommand};
use loyalty::clock::TestClock;
use loyalty::program::Program;
use loyalty::service::Services;
use loyalty::store::{DynamoStore, EmbeddedStore, Store};
use loyalty_local::auth::{DevAuth, Role};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "loyalty-local",
    about = "The loyalty API on your machine: no AWS account, no Docker."
)]
struct Cli {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:3000", global = true)]
    listen: SocketAddr,
    /// Where the embedded store and the dev-token secret live (give the same --data to `token`).
    #[arg(long, default_value = ".loyalty", global = true)]
    data: PathBuf,
    /// Throwaway in-memory store (nothing survives a restart).
    #[arg(long, conflicts_with = "dynamodb")]
    memory: bool,
    /// Use the DynamoDB table named by LOYALTY_TABLE at the standard SDK endpoint
    /// (AWS_ENDPOINT_URL_DYNAMODB for an emulator); the table is created if missing.
    #[arg(long)]
    dynamodb: bool,
    /// Program rules (JSON, see README); default: LOYALTY_PROGRAM / LOYALTY_PROGRAM_FILE or built-in.
    #[arg(long)]
    program: Option<PathBuf>,
    /// POST every event, signed, to this URL (repeatable); see README "Webhooks".
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a dev bearer token.
    Token {
        #[command(subcommand)]
        role: TokenRole,
    },
    /// Print the OpenAPI document the server serves (for validators and client generators).
    Openapi,
}

#[derive(Subcommand)]
enum TokenRole {
    /// A member token whose subject is the member id.
    Member { id: String },
    /// A POS token bound to one store.
    Pos { store_id: String },
    /// An administrator token.
    Admin,
    /// A support operator's token (find and care for members, adjust within the limit).
    Support { name: String },
    /// An analyst's token (read-only: analytics, segments, campaigns, members, events).
    Analyst { name: String },
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("loyalty-local: {msg}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = &cli.command {
        let doc = loyalty_members::api_document();
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_else(|e| fail(e))
        );
        return;
    }
    let auth_dir = (!cli.memory).then_some(cli.data.as_path());
    let auth =
        Arc::new(DevAuth::load(auth_dir).unwrap_or_else(|e| fail(format!("dev secret: {e}"))));
    if let Some(Command::Token { role }) = &cli.command {
        let role = match role {
            TokenRole::Member { id } => Role::Member(id.clone()),
            TokenRole::Pos { store_id } => Role::Pos(store_id.clone()),
            TokenRole::Admin => Role::Admin,
            TokenRole::Support { name } => Role::Support(name.clone()),
            TokenRole::Analyst { name } => Role::Analyst(name.clone()),
        };
        println!("{}", auth.mint(&role));
        // On stderr, so `$(loyalty-local token …)` captures only the token.
        eprintln!(
            "loyalty-local: signed with {}; a server started with the same --data accepts it",
            auth.source
        );
        return;
    }

    tracing_subscriber::fmt()
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let program = match &cli.program {
        Some(p) => Program::from_file(&p.to_string_lossy()),
        None => Program::from_env(),
    }
    .unwrap_or_else(|e| fail(e));

    let (store, where_): (Arc<dyn Store>, String) = if cli.memory {
        (
            Arc::new(EmbeddedStore::in_memory().unwrap_or_else(|e| fail(e))),
            "in memory (gone when the server stops)".into(),
        )
    } else if cli.dynamodb {
        let table = std::env::var("LOYALTY_TABLE")
            .unwrap_or_else(|_| fail("--dynamodb needs LOYALTY_TABLE"));
        let store = DynamoStore::from_env(table.clone()).await;
        store.ensure_table().await.unwrap_or_else(|e| fail(e));
        (Arc::new(store), format!("DynamoDB table {table}"))
    } else {
        let file = cli.data.join("loyalty.redb");
        let store = EmbeddedStore::open(&file).unwrap_or_else(|e| fail(e));
        let shown = std::fs::canonicalize(&file).unwrap_or(file);
        (
            Arc::new(store),
            format!("{} (embedded, durable)", shown.display()),
        )
    };

    let clock = Arc::new(TestClock::default());
    let services = Services::new(store, program, clock.clone());
    let state_dir = (!cli.memory).then(|| cli.data.clone());
    let (secret, secret_from) = loyalty_local::webhooks::load_secret(state_dir.as_deref())
        .unwrap_or_else(|e| fail(format!("webhook secret: {e}")));
    let secret = Arc::new(secret);
    for url in &cli.webhooks {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            fail(format!("--webhook {url}: give an http:// or https:// URL"));
        }
        let hook = loyalty_local::webhooks::Webhook {
            url: url.clone(),
            secret: secret.clone(),
            state_dir: state_dir.as_ref().map(|d| d.join("webhooks")),
            timing: Default::default(),
        };
        tokio::spawn(hook.run(services.clone()));
    }
    tokio::spawn(loyalty_local::builds::run(
        services.clone(),
        std::time::Duration::from_secs(5),
    ));
    let app = loyalty_local::app_with_console(
        services,
        clock,
        auth.clone(),
        cli.listen.ip().is_loopback(),
    );
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {}: {e}", cli.listen)));
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let member = auth.mint(&Role::Member("demo-member".into()));
    let pos = auth.mint(&Role::Pos("store-1".into()));
    let admin = auth.mint(&Role::Admin);
    let console_note = if cli.listen.ip().is_loopback() {
        "(signed in as a dev admin; ?as=support or ?as=analyst)"
    } else {
        "(dev sign-in off: the server is not on a loopback address)"
    };
    let hooks = if cli.webhooks.is_empty() {
        "none (--webhook URL)".to_owned()
    } else {
        cli.webhooks.join(", ")
    };
    println!(
        "Loyalty API (local) on {url}\n  console: {url}/console/   {console_note}\n  data:    {where_}\n  openapi: {url}/v1/openapi.json\n\n\
         Dev tokens (30 days; mint more with `cargo run -p loyalty-local -- token member|pos|admin|support|analyst`):\n  \
         export MEMBER={member}   # member demo-member\n  \
         export POS={pos}   # POS of store-1\n  \
         export ADMIN={admin}\n\n\
         Webhooks: {hooks}; signing secret: {secret_from}\n\n\
         Try: curl -s {url}/v1/rewards -H \"Authorization: Bearer $MEMBER\"   (README.md has a walkthrough)\n"
    );
    loyalty_local::serve::serve(listener, app, Default::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
}
