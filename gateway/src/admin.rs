//! The org administration (SPEC §4): an administrator's own org only — its users with state and
//! last sign-in, invitations (also how a deleted profile is recreated), the MFA requirement,
//! resending an invitation, and reactivation. The invitation is also the operator's
//! `tenure admin invite`.

pub mod api;
pub mod applications;
pub mod clients;
pub mod flow;
pub mod pages;
