//! Logs go to stderr through tracing. They name accounts by id and events by id and position,
//! never by email, and never carry a password, code, token or session id.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENURE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
