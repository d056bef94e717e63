//! The plumbing every feature's front ends share: the session extractors, the client's
//! address, JSON bodies, page rendering, the signed-in layout and the middleware.

pub mod client;
pub mod fallback;
pub mod json;
pub mod layout;
pub mod middleware;
pub mod render;
pub mod session;
