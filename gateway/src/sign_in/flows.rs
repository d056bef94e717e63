//! Sign-in flows in progress: what the username step started and the later steps continue. They
//! live in memory for ten minutes; a restart asks users to start again, which costs them a
//! username. Unknown usernames get flows too, indistinguishable from the outside.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use tenure_domain::AccountId;
use tenure_domain::events::MfaMethod;

pub const FLOW_LIFETIME: Duration = Duration::minutes(10);
/// Flows kept at most; the oldest are dropped beyond it.
const MAX_FLOWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Password,
    /// The password was right; the second factor is next.
    Code(MfaMethod),
    /// The password was right and the org requires an authenticator the account has not
    /// enrolled: the code from this new key both enrolls it and finishes signing in.
    EnrollApp {
        secret: String,
    },
    /// Signed in, but the current terms are not accepted yet: the session waits for them.
    Terms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub username: String,
    /// `None` for a username nobody holds.
    pub account: Option<AccountId>,
    pub step: Step,
    pub started: DateTime<Utc>,
}

#[derive(Default)]
pub struct Flows {
    flows: Mutex<HashMap<String, Flow>>,
}

impl Flows {
    pub fn start(&self, flow: Flow) -> String {
        let mut bytes = [0u8; 16];
        // The OS's randomness is always there on the platforms Tenure runs on.
        getrandom::fill(&mut bytes).expect("the OS provides randomness");
        let id = URL_SAFE_NO_PAD.encode(bytes);
        let mut flows = self.flows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if flows.len() >= MAX_FLOWS {
            let now = flow.started;
            flows.retain(|_, f| now - f.started < FLOW_LIFETIME);
        }
        flows.insert(id.clone(), flow);
        id
    }

    /// The live flow `id`, if it has not expired at `now`.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Flow> {
        let mut flows = self.flows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match flows.get(id) {
            Some(flow) if now - flow.started < FLOW_LIFETIME => Some(flow.clone()),
            Some(_) => {
                flows.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn advance(&self, id: &str, step: Step) {
        if let Some(flow) = self.flows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id) {
            flow.step = step;
        }
    }

    pub fn finish(&self, id: &str) {
        self.flows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}
