//! The account domain of Tenure: events, the `Account` decider, and the policies it applies.
//!
//! Everything here is pure: no IO, no clock, no randomness. Time arrives through [`Ctx`],
//! random values arrive inside commands, and slow work (password hashing, TOTP checks) is done by
//! the caller, which passes its outcome in.

pub mod account;
pub mod calendar;
pub mod clients;
pub mod clock;
pub mod decide;
pub mod events;
pub mod ids;
pub mod lifecycle;
pub mod org;
pub mod password;
pub mod personal;
pub mod profile;
pub mod secret;
pub mod throttle;
pub mod timestamp;
pub mod username_claim;

pub use account::{Account, Status};
pub use clock::Clock;
pub use decide::{AccountError, Command, Ctx, decide};
pub use events::{AccountEvent, Catalogued, Event, EventError, OrgEvent, UsernameClaimEvent};
pub use ids::{AccountId, OrgId, Username, UsernameError};
pub use lifecycle::{Lifecycle, Stage, Step};
pub use personal::Personal;
pub use secret::{Confidential, SecretDigest};
