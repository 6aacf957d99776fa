//! Rate limits: the pipeline's limit stage. Every call is charged to its caller (the agent, or the
//! client address of an anonymous HTTP caller) in its class's budget before anything else runs,
//! whichever door it came through: a workflow of fifty steps is fifty-one calls, a schedule's
//! firing is a call. Front doors charge what reaches no tool (listings, the sign-in gate) here
//! too, so there is one limiter and one configuration.
//!
//! The buckets are GCRA cells in `governor`'s keyed store: a check touches one shard of one
//! map, never every key, and idle keys are forgotten by [`RateLimits::forget_idle`], which runs
//! off the call path.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::Caller;

/// What a call is charged against; each class has its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LimitClass {
    /// Calls from MCP clients (stdio, streamable HTTP), the plain form of `/mcp`, and the
    /// calls they cause (workflow steps, schedule firings, approved runs); MCP listings.
    #[default]
    Mcp,
    /// REST routes under `/api/` and the other authenticated routes.
    Api,
    /// Sign-up, sign-in, password reset and registration, by client address.
    Auth,
}

impl LimitClass {
    pub const ALL: [LimitClass; 3] = [LimitClass::Mcp, LimitClass::Api, LimitClass::Auth];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitClass::Mcp => "mcp",
            LimitClass::Api => "api",
            LimitClass::Auth => "auth",
        }
    }

    fn index(self) -> usize {
        match self {
            LimitClass::Mcp => 0,
            LimitClass::Api => 1,
            LimitClass::Auth => 2,
        }
    }
}

/// One class's budget: a sustained rate and the burst allowed after a quiet period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub per_minute: u32,
    pub burst: u32,
}

/// Whom a charge is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Agent(Arc<str>),
    /// An unauthenticated HTTP caller, by client address.
    Address(IpAddr),
}

impl LimitKey {
    /// An agent's own budget; anonymous callers share one per client address (`None` when the
    /// address is unknown, as for a local process).
    pub fn of(caller: &Caller, client: Option<IpAddr>) -> Option<Self> {
        if caller.is_anonymous() {
            client.map(LimitKey::Address)
        } else {
            Some(LimitKey::Agent(caller.agent_id.clone()))
        }
    }
}

/// The state of a bucket after a charge: what `X-RateLimit-*` and `Retry-After` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub class: LimitClass,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A refused charge: how long until one call would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub class: LimitClass,
    pub limit: u32,
    pub retry_after: Duration,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

impl Refusal {
    /// Whole seconds to wait, at least one (what `Retry-After` says).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Keys are hashed with foldhash's seeded quality hasher: callers choose their agent ids and,
/// anonymous, their addresses, so the seed must be random; SipHash cost a tenth of a charge.
type KeyHasher = foldhash::quality::RandomState;
type Limiter<C> = RateLimiter<LimitKey, DashMapStateStore<LimitKey, KeyHasher>, C, StateInformationMiddleware>;

struct ClassLimiter<C: Clock> {
    limiter: Limiter<C>,
    budget: Budget,
    /// How long one call's share of the budget takes to come back.
    period: Duration,
}

/// The three classes' limiters.
pub struct RateLimits<C: Clock = DefaultClock> {
    classes: [ClassLimiter<C>; 3],
    clock: C,
    /// Charges made here since they were last taken for the other replicas ([`Self::take_spent`]),
    /// kept only once [`Self::share`] was called (replicas sharing one database).
    spent: Option<DashMap<(LimitClass, LimitKey), u32, KeyHasher>>,
}

impl RateLimits<DefaultClock> {
    /// Limits with these budgets, in [`LimitClass::ALL`] order. A zero rate or burst counts as one.
    pub fn new(budgets: [Budget; 3]) -> Self {
        Self::with_clock(budgets, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(budgets: [Budget; 3], clock: C) -> Self {
        let classes = budgets.map(|budget| {
            let per_minute = budget.per_minute.max(1);
            let burst = NonZeroU32::new(budget.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            let period = Duration::from_secs(60) / per_minute;
            // `period` is at least 60 s / u32::MAX, never zero, so the quota always exists.
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
                .allow_burst(burst);
            let limiter: Limiter<C> = RateLimiter::new(
                quota,
                DashMapStateStore::with_hasher(KeyHasher::default()),
                clock.clone(),
            );
            ClassLimiter {
                limiter,
                budget: Budget {
                    per_minute,
                    burst: burst.get(),
                },
                period,
            }
        });
        Self {
            classes,
            clock,
            spent: None,
        }
    }

    /// Counts every charge from now on so it can be told to the other replicas sharing this
    /// agentos's database, whose own charges arrive through [`Self::absorb`]: the budget is
    /// then the cluster's, not each replica's.
    pub fn share(&mut self) {
        self.spent.get_or_insert_with(DashMap::default);
    }

    /// The charges made here since the last call (nothing unless shared).
    pub fn take_spent(&self) -> Vec<(LimitClass, LimitKey, u32)> {
        let Some(spent) = &self.spent else { return Vec::new() };
        let keys: Vec<_> = spent.iter().map(|entry| entry.key().clone()).collect();
        keys.into_iter()
            .filter_map(|key| spent.remove(&key))
            .map(|((class, key), count)| (class, key, count))
            .collect()
    }

    /// Charges `count` calls another replica let through to `key`'s bucket here. A bucket
    /// cannot owe more than it holds: what exceeds it is dropped, so a replica never refuses
    /// longer than a full refill.
    pub fn absorb(&self, class: LimitClass, key: &LimitKey, count: u32) {
        let cell = &self.classes[class.index()];
        let mut left = count;
        while left > 0 {
            let step = left.min(cell.budget.burst);
            let Some(cells) = NonZeroU32::new(step) else { return };
            match cell.limiter.check_key_n(key, cells) {
                Ok(Ok(_)) => left -= step,
                // Not that much room: take what is left one cell at a time.
                Ok(Err(_)) if step > 1 => {
                    while left > 0 && cell.limiter.check_key(key).is_ok() {
                        left -= 1;
                    }
                    return;
                }
                _ => return,
            }
        }
    }

    pub fn budget(&self, class: LimitClass) -> Budget {
        self.classes[class.index()].budget
    }

    /// Charges one call by `key` to `class`'s budget.
    pub fn charge(&self, class: LimitClass, key: &LimitKey) -> Result<Verdict, Refusal> {
        let cell = &self.classes[class.index()];
        let limit = cell.budget.burst;
        let refill_secs = |missing: u32| (cell.period * missing).as_secs_f64().ceil() as u64;
        match cell.limiter.check_key(key) {
            Ok(state) => {
                if let Some(spent) = &self.spent {
                    *spent.entry((class, key.clone())).or_insert(0) += 1;
                }
                let remaining = state.remaining_burst_capacity().min(limit);
                Ok(Verdict {
                    class,
                    limit,
                    remaining,
                    reset_secs: refill_secs(limit - remaining),
                })
            }
            Err(not_until) => Err(Refusal {
                class,
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
                reset_secs: refill_secs(limit),
            }),
        }
    }

    /// Forgets keys whose buckets are full again (they behave exactly like new ones). Scans
    /// every key: run it in the background, never on the call path.
    pub fn forget_idle(&self) {
        for cell in &self.classes {
            cell.limiter.retain_recent();
            cell.limiter.shrink_to_fit();
        }
    }

    /// How many keys the limiters remember (a scan; for tests and diagnostics).
    pub fn remembered(&self) -> usize {
        self.classes.iter().map(|cell| cell.limiter.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limits(per_minute: u32, burst: u32) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let budget = Budget { per_minute, burst };
        (RateLimits::with_clock([budget; 3], clock.clone()), clock)
    }

    fn agent(id: &str) -> LimitKey {
        LimitKey::Agent(Arc::from(id))
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let (limits, clock) = limits(60, 3);
        for remaining in [2, 1, 0] {
            let verdict = limits.charge(LimitClass::Api, &agent("a")).unwrap();
            assert_eq!((verdict.limit, verdict.remaining), (3, remaining));
        }
        let refused = limits.charge(LimitClass::Api, &agent("a")).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 1, "one call per second");
        assert_eq!(refused.reset_secs, 3);
        clock.advance(Duration::from_millis(1001));
        assert!(limits.charge(LimitClass::Api, &agent("a")).is_ok());
    }

    #[test]
    fn callers_and_classes_have_their_own_budgets() {
        let (limits, _) = limits(1, 1);
        assert!(limits.charge(LimitClass::Api, &agent("a")).is_ok());
        let refused = limits.charge(LimitClass::Api, &agent("a")).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 60);
        assert!(limits.charge(LimitClass::Api, &agent("b")).is_ok());
        assert!(limits.charge(LimitClass::Mcp, &agent("a")).is_ok());
        let address = LimitKey::Address("10.0.0.1".parse().unwrap());
        assert!(limits.charge(LimitClass::Auth, &address).is_ok());
        assert!(limits.charge(LimitClass::Auth, &address).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten_in_the_background() {
        let (limits, clock) = limits(600, 2);
        for i in 0..100 {
            limits.charge(LimitClass::Mcp, &agent(&format!("a{i}"))).unwrap();
        }
        assert_eq!(limits.remembered(), 100);
        clock.advance(Duration::from_secs(1));
        limits.forget_idle();
        assert_eq!(limits.remembered(), 0, "every bucket refilled");
    }

    #[test]
    fn anonymous_callers_are_keyed_by_address_and_agents_by_id() {
        let anonymous = Caller::anonymous(crate::registry::ToolPolicy::none());
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            LimitKey::of(&anonymous, Some(address)),
            Some(LimitKey::Address(address))
        );
        assert_eq!(LimitKey::of(&anonymous, None), None);
        let named = Caller::agent("a1", crate::registry::ToolPolicy::none(), Vec::new());
        assert_eq!(LimitKey::of(&named, Some(address)), Some(agent("a1")));
    }
}
