use chrono::{DateTime, Utc};

/// The source of "now" for everything above the domain. Tests inject fixed or stepping clocks so
/// that months of lifecycle pass in milliseconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}
