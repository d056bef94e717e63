mod admin;
mod audit;
mod audit_log;
mod bench;
mod bench_flows;
mod bench_http_store;
mod bench_oidc;
mod bench_reset;
mod bench_scheduler;
mod bench_sign_in;
mod bench_soak;
mod bench_verify;
mod mail;
mod migrate;
mod oidc;
mod org;
mod projections;
pub mod scheduler;
mod serve;

use std::process::ExitCode;

use crate::args::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(serve) => serve::run(&cli.global, serve).await,
        Command::Admin(admin) => admin::run(&cli.global, admin).await,
        Command::Audit(audit) => audit::run(&cli.global, audit).await,
        Command::Bench(bench) => bench::run(&cli.global, bench).await,
        Command::Oidc(command) => oidc::run(&cli.global, command).await,
        Command::Org(item) => org::run(&cli.global, item).await,
        Command::Projections(command) => projections::run(&cli.global, command).await,
        Command::Scheduler(args) => scheduler::run(&cli.global, args).await,
        Command::Mail(command) => mail::run(&cli.global, command).await,
        Command::Migrate => migrate::schema(&cli.global).await,
        Command::MigrateStore(args) => migrate::store(&cli.global, args).await,
    }
}
