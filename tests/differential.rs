//! Differential test of everything selection produces, against a committed
//! fixture.
//!
//! [`TRACES`] traces, each fully determined by its index (a splitmix64
//! generator seeded from it, so the traces are the same on every run,
//! platform and toolchain), build a random registry (every identity policy,
//! several models and providers, weights from 0 to `u32::MAX`, priorities,
//! labels, tags, versions, context windows, `rpm` / `tpm` / `max_in_flight`
//! limits) and a selector (every built-in strategy, non-default strategy
//! settings and a custom strategy that records what the [`Candidates`] and
//! [`Context`] API show it; every health preset and one with ejection, slow
//! start and panic mode; counted and uncounted in flight), then run 40 to
//! 200 operations on it: selects with random requests (filters,
//! affinity, exclusions, token estimates, times that mostly move forward
//! and sometimes go back), picks held, completed with every kind of report
//! or dropped, reports by key, bursts of failures, explanations, attempt
//! plans, health snapshots, extra handles, and rebuilds onto changed
//! registries (deployments added, removed, re-weighted, moved between
//! priorities and endpoints). One trace in ten drives a [`Fleet`] instead:
//! its shared handle and handles of its own, `install`, `apply` of
//! `Registry::diff`, reports and snapshots.
//!
//! Every operation appends a line with its observable result (key text,
//! error and explanation `Display`, snapshot fields) to the trace's text;
//! the text is hashed with FNV-1a 64 (defined here: std's hashers promise
//! no stable output) and the `index digest` lines must equal
//! `tests/fixtures/differential.txt`. On a mismatch the test prints the
//! first differing trace's index and its whole text.
//!
//! A sanity check counts, over all traces, what they reached (picks, each
//! error, cooling, ejection, slow start, panic-mode picks, each filter and
//! limit, failover, rebuilds that kept state, …) and fails if any count is
//! zero, so the traces cannot silently stop exercising something.
//!
//! Re-bless (only when a change of selection results is intended):
//!
//! ```text
//! MODELFLEET_BLESS=1 cargo test --all-features --test differential
//! ```
//!
//! `MODELFLEET_TRACE=<index>` prints that trace's text.
//!
//! The digests hold on every build profile (debug and release give the
//! same). Latency estimates and slow-start weights go through `f64::exp`
//! and `powf`, whose last bit may differ between math libraries, so a
//! platform with another libm may need its own fixture.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use modelfleet::health::{
    CooldownRule, Ejection, FailureKind, FailureRate, HealthPolicy, HealthSnapshot, Outcome,
    Report, RetryAfter, SlowStart, State, Unhealthy,
};
use modelfleet::select::{
    BuiltinStrategy, Candidate, Candidates, ConsistentHash, Context, InFlight, Latency, Load,
    PowerOfTwo, Reason, Removed, RoundRobin, Strategy, WeightedRandom, WeightedRoundRobin,
};
use modelfleet::{
    Deployment, Error, Fleet, FleetHandle, ModelKey, OwnedPick, Pick, Policy, Registry, Request,
    Selector, SelectorBuilder, TagMatch, VersionPreference,
};
use semver::VersionReq;

/// How many traces run.
const TRACES: usize = 1000;

/// Selector versions (rebuilds) and extra handles a trace may create.
const CELLS: usize = 24;

// ---------------------------------------------------------------------------
// Deterministic generator and stable hash

/// splitmix64: a fixed, tiny generator, so the traces never change.
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

// ---------------------------------------------------------------------------
// Counts for the sanity check

/// Events by (group, name): static names, so counting allocates nothing.
#[derive(Default)]
struct Counts(BTreeMap<(&'static str, &'static str), u64>);

impl Counts {
    fn bump(&mut self, what: &'static str) {
        self.bump_of(what, "");
    }

    fn bump_of(&mut self, group: &'static str, name: &'static str) {
        *self.0.entry((group, name)).or_default() += 1;
    }

    /// Every count under its full name, `group.name`.
    fn named(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .map(|(&(g, n), &v)| {
                (
                    if n.is_empty() {
                        g.to_owned()
                    } else {
                        format!("{g}.{n}")
                    },
                    v,
                )
            })
            .collect()
    }

    fn removed(&mut self, group: &'static str, removed: &Removed) {
        for (reason, _) in removed.iter() {
            self.bump_of(group, reason.as_str());
        }
    }

    fn error(&mut self, err: &Error) {
        match err {
            Error::UnknownModel { .. } => self.bump("error.unknown_model"),
            Error::NoEligible { removed, .. } => {
                self.bump("error.no_eligible");
                if removed.total() == 0 {
                    self.bump("error.no_eligible.strategy_refused");
                }
                self.removed("no_eligible", removed);
            }
            Error::Unavailable {
                retry_at, removed, ..
            } => {
                self.bump(match retry_at {
                    Some(_) => "error.unavailable.retry_at",
                    None => "error.unavailable.limits_only",
                });
                self.removed("unavailable", removed);
            }
            _ => self.bump("error.other"),
        }
    }
}

// ---------------------------------------------------------------------------
// Vocabulary of the generated fleets and requests

const MODELS: [&str; 4] = ["gpt-4", "gpt-4o", "claude", "llama"];
const UNKNOWN_MODEL: &str = "no-such-model";
const PROVIDERS: [&str; 3] = ["openai", "azure", "anthropic"];
const TAGS: [&str; 3] = ["a", "b", "canary"];
const VERSIONS: [&str; 5] = ["1.0.0", "1.2.3", "1.10.0", "2.0.0", "2.1.0-beta.1"];
const VERSION_REQS: [&str; 6] = ["^1", ">=1.2.0", "^2", "=2.1.0-beta.1", "<1.0.0", "*"];
const REGIONS: [&str; 2] = ["eu", "us"];
const WINDOWS: [u32; 4] = [4_096, 8_192, 32_768, 128_000];
const TOKENS: [u32; 6] = [100, 2_000, 6_000, 20_000, 60_000, 200_000];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A deployment, built through the builder from random choices. `id` makes
/// its endpoint unique.
fn gen_deployment(g: &mut Gen, model: &str, id: u64, weights: Weights) -> Deployment {
    let provider = if g.chance(70) {
        PROVIDERS[0]
    } else {
        g.pick(&PROVIDERS[1..])
    };
    let mut b = Deployment::builder(provider, model);
    if g.chance(90) {
        b = b.endpoint(&format!(
            "http://10.{}.{}.{}/v1",
            id / 65_536,
            (id / 256) % 256,
            id % 256
        ));
    }
    if g.chance(40) {
        b = b.tag(g.pick(&TAGS));
    }
    if g.chance(40) {
        b = b.version(g.pick(&VERSIONS));
    }
    if g.chance(60) {
        b = b.label("region", g.pick(&REGIONS));
    }
    if g.chance(25) {
        b = b.label("tier", "gold");
    }
    let weight = match (g.below(100), weights) {
        (0..=7, _) => 0,
        (8..=11, Weights::Big) => g.pick(&[1_000_000, 4_000_000_000, u32::MAX]),
        (8..=17, Weights::Light) => 2,
        (_, Weights::Light) => 1,
        (12..=59, _) => 1,
        _ => g.range(2, 10) as u32,
    };
    b = b.weight(weight);
    b = b.priority(match g.below(10) {
        0..=5 => 0,
        6..=8 => 1,
        _ => g.range(2, 5) as u32,
    });
    if g.chance(12) {
        b = b.rpm(g.range(1, 6) as u32);
    }
    if g.chance(10) {
        b = b.tpm(g.range(500, 5_000));
    }
    if g.chance(12) {
        b = b.max_in_flight(g.range(1, 3) as u32);
    }
    if g.chance(30) {
        b = b.context_window(g.pick(&WINDOWS));
    }
    if g.chance(10) {
        b = b.credential("env:API_KEY");
    }
    if g.chance(10) {
        b = b.upstream_model(&format!("{model}-upstream"));
    }
    b.build().expect("generated deployments are valid")
}

/// Which weights deployments get.
#[derive(Clone, Copy, PartialEq)]
enum Weights {
    /// 0, 1 or 2: for hash rings (160 points per member at these weights), whose
    /// building and walking would otherwise dominate the run.
    Light,
    /// 0 to 10.
    Normal,
    /// Also a million, four billion and `u32::MAX`: totals beyond `u32`.
    Big,
}

/// How large a trace's fleet is.
#[derive(Clone, Copy, PartialEq)]
enum Size {
    Small,
    Medium,
    /// One tier beyond the size the selector indexes (4,096 members).
    Huge,
}

fn gen_policy(g: &mut Gen) -> Policy {
    if g.chance(50) {
        Policy::NAME_ENDPOINT
    } else {
        g.pick(Policy::all())
    }
}

/// A registry; every insertion (and its error, if any) is described in `text`.
fn gen_registry(
    g: &mut Gen,
    size: Size,
    weights: Weights,
    next_id: &mut u64,
    text: &mut String,
) -> Registry {
    let policy = gen_policy(g);
    let mut reg = Registry::new(policy);
    let models = match size {
        // Hash rings: fewer models, fewer rings to build.
        Size::Small if weights == Weights::Light => g.range(1, 2) as usize,
        Size::Small => g.range(1, 4) as usize,
        Size::Medium => g.range(1, 2) as usize,
        Size::Huge => 1,
    };
    writeln!(text, "registry {policy}").unwrap();
    for &model in &MODELS[..models] {
        let n = match size {
            Size::Small => g.range(1, 9),
            Size::Medium => g.range(65, 100),
            Size::Huge => g.range(4_097, 4_160),
        };
        for _ in 0..n {
            *next_id += 1;
            let mut d = gen_deployment(g, model, *next_id, weights);
            if size == Size::Huge {
                // One big tier of plain members: the unindexed path.
                d = d
                    .to_builder()
                    .priority(0)
                    .endpoint(&format!("http://h{}/v1", *next_id))
                    .build()
                    .unwrap();
            }
            let line = if g.chance(85) {
                match reg.insert(d) {
                    Ok(key) => format!("insert {key}"),
                    Err(e) => format!("insert error: {e}"),
                }
            } else {
                match reg.upsert(d) {
                    Some(prev) => format!("upsert replaced {prev}"),
                    None => "upsert new".to_owned(),
                }
            };
            if size == Size::Small {
                writeln!(text, "  {line}").unwrap();
            } else {
                writeln!(text, "  {:x}", fnv1a(line.as_bytes())).unwrap();
            }
        }
    }
    if g.chance(5) {
        // A model whose every deployment is drained.
        *next_id += 1;
        let d = Deployment::builder("openai", "drained")
            .endpoint(&format!("http://d{}/v1", *next_id))
            .weight(0)
            .build()
            .unwrap();
        reg.upsert(d);
    }
    writeln!(
        text,
        "  {} deployments, {} models",
        reg.len(),
        reg.models().len()
    )
    .unwrap();
    reg
}

/// A changed copy of `reg`: deployments added, removed, re-weighted, moved
/// between priorities and endpoints, relabelled.
fn mutate(g: &mut Gen, reg: &Registry, weights: Weights, next_id: &mut u64) -> Registry {
    let mut next = reg.clone();
    for _ in 0..g.range(1, 4) {
        let keys: Vec<ModelKey> = next.keys().cloned().collect();
        let models: Vec<String> = next.models().map(str::to_owned).collect();
        let existing = (!keys.is_empty()).then(|| keys[g.index(keys.len())].clone());
        match (g.below(7), existing) {
            (0, _) | (_, None) => {
                *next_id += 1;
                let model = if models.is_empty() || g.chance(10) {
                    g.pick(&MODELS)
                } else {
                    models[g.index(models.len())].as_str()
                }
                .to_owned();
                next.upsert(gen_deployment(g, &model, *next_id, weights));
            }
            (1, Some(k)) => {
                next.remove(&k);
            }
            (2, Some(k)) => {
                let d = next.get(&k).unwrap().to_builder().weight(match g.below(4) {
                    0 => 0,
                    1 if weights == Weights::Big => u32::MAX,
                    _ if weights == Weights::Light => g.range(1, 2) as u32,
                    _ => g.range(1, 10) as u32,
                });
                next.upsert(d.build().unwrap());
            }
            (3, Some(k)) => {
                let d = next
                    .get(&k)
                    .unwrap()
                    .to_builder()
                    .priority(g.range(0, 3) as u32);
                next.upsert(d.build().unwrap());
            }
            (4, Some(k)) => {
                // Another server: under a policy without the endpoint the
                // key stays and the state starts fresh.
                *next_id += 1;
                let d = next.remove(&k).unwrap();
                let d = d
                    .to_builder()
                    .endpoint(&format!("http://moved{}/v1", *next_id))
                    .build()
                    .unwrap();
                next.upsert(d);
            }
            (5, Some(k)) => {
                let d = next
                    .get(&k)
                    .unwrap()
                    .to_builder()
                    .label("region", g.pick(&REGIONS))
                    .rpm(g.range(1, 6) as u32);
                next.upsert(d.build().unwrap());
            }
            (_, Some(_)) => {
                // Nothing changes for this one: diffs and rebuilds of an
                // unchanged deployment keep everything.
            }
        }
    }
    next
}

/// A random request; `desc` says what it asks.
fn gen_request(
    g: &mut Gen,
    reg: &Registry,
    now: u64,
    recent: Option<&ModelKey>,
) -> (Request, String) {
    let models: Vec<&str> = reg.models().collect();
    let model = if models.is_empty() || g.chance(4) {
        UNKNOWN_MODEL
    } else {
        g.pick(&models)
    };
    let mut req = Request::new(model);
    let mut desc = format!("req {model}");
    if g.chance(12) {
        let p = g.pick(&PROVIDERS);
        req = req.provider(p);
        write!(desc, " provider={p}").unwrap();
    }
    if g.chance(18) {
        let r = g.pick(&REGIONS);
        req = req.label("region", r);
        write!(desc, " region={r}").unwrap();
    }
    if g.chance(6) {
        req = req.label("tier", "gold");
        desc.push_str(" tier=gold");
    }
    if g.chance(14) {
        for _ in 0..g.range(1, 2) {
            let t = g.pick(&TAGS);
            req = req.tag(t);
            write!(desc, " tag={t}").unwrap();
        }
        if g.chance(40) {
            req = req.tag_match(TagMatch::All);
            desc.push_str(" tags=all");
        }
    }
    if g.chance(12) {
        let v = g.pick(&VERSION_REQS);
        req = req.version(VersionReq::parse(v).unwrap());
        write!(desc, " version={v}").unwrap();
    }
    if g.chance(8) {
        req = req.version_preference(VersionPreference::Newest);
        desc.push_str(" newest");
    }
    if g.chance(35) {
        let a = format!("user-{}", g.below(24));
        req = req.affinity(&a);
        write!(desc, " affinity={a}").unwrap();
    }
    if g.chance(10) {
        let keys: Vec<&ModelKey> = reg.keys().collect();
        let k = match recent {
            Some(k) if g.chance(50) => k.clone(),
            _ if !keys.is_empty() && g.chance(90) => (g.pick(&keys)).clone(),
            _ => ModelKey::new("openai", "ghost").unwrap(),
        };
        write!(desc, " exclude={k}").unwrap();
        req = req.exclude(k);
    }
    if g.chance(14) {
        let t = g.pick(&TOKENS);
        req = req.tokens(t);
        write!(desc, " tokens={t}").unwrap();
    }
    if g.chance(10) {
        let f = if g.chance(70) && !models.is_empty() {
            g.pick(&models)
        } else {
            UNKNOWN_MODEL
        };
        req = req.fallback(f);
        write!(desc, " fallback={f}").unwrap();
    }
    match g.below(100) {
        0..=79 => {
            req = req.at(ms(now));
            write!(desc, " at={now}").unwrap();
        }
        80..=89 => {
            // Back in time, up to 20 s.
            let t = now.saturating_sub(g.range(1, 20_000));
            req = req.at(ms(t));
            write!(desc, " at={t}(back)").unwrap();
        }
        _ => desc.push_str(" at=latest"),
    }
    (req, desc)
}

/// A random outcome report at `at`; `desc` names it. Counted by kind.
fn gen_report(g: &mut Gen, at: u64, counts: &mut Counts) -> (Report, String) {
    let t = ms(at);
    let (report, desc) = if g.chance(45) {
        let l = g.range(5, 3_000);
        counts.bump("report.success");
        (Report::success(t, ms(l)), format!("success {l}ms"))
    } else {
        let mut kind = g.pick(FailureKind::ALL);
        if let FailureKind::RateLimited { .. } = kind
            && g.chance(50)
        {
            kind = FailureKind::rate_limited(Some(ms(g.range(1, 90_000))));
            counts.bump("report.rate_limited.retry_after");
        }
        if let FailureKind::Overloaded { .. } = kind
            && g.chance(50)
        {
            kind = FailureKind::overloaded(Some(ms(g.range(1, 90_000))));
            counts.bump("report.overloaded.retry_after");
        }
        counts.bump_of("report", kind.as_str());
        let desc = match kind.retry_after() {
            Some(r) => format!("{kind} retry_after={}ms", r.as_millis()),
            None => kind.to_string(),
        };
        if g.chance(30) {
            let l = g.range(1, 40_000);
            let outcome = Outcome::failure(kind, Some(ms(l)));
            (Report::new(t, outcome), format!("{desc} latency={l}ms"))
        } else {
            (Report::failure(t, kind), desc)
        }
    };
    if g.chance(25) {
        let n = g.range(0, 3_000);
        (report.tokens(n), format!("{desc} tokens={n}"))
    } else {
        (report, desc)
    }
}

// ---------------------------------------------------------------------------
// Strategies and health policies

/// A custom strategy that uses every part of the strategy API and records
/// what it sees.
#[derive(Debug)]
struct Probe {
    log: Arc<Mutex<String>>,
    reads_load: bool,
    uses_ring: bool,
}

impl Strategy for Probe {
    fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let mut line = format!(
            "    probe p{} complete={} tier_len={} len={} empty={} total={} affinity={:?}",
            c.priority(),
            c.is_complete(),
            c.tier_len(),
            c.len(),
            c.is_empty(),
            c.total_weight(),
            ctx.affinity()
        );
        for cand in c.iter().take(6) {
            write!(
                line,
                " [{} {} w{} e{} f{} l{:?}]",
                cand.position(),
                cand.key(),
                cand.weight(),
                cand.effective_weight(),
                cand.in_flight(),
                cand.latency().map(|l| l.as_nanos())
            )
            .unwrap();
        }
        let r = ctx.random();
        let len = c.len() as u64;
        let chosen = match r % 7 {
            0 if r.is_multiple_of(3) => None,
            0 | 1 => c.at_weight(ctx.random_below(c.total_weight().saturating_add(2))),
            2 => c.nth((ctx.next_turn() % len.max(1)) as usize),
            3 => match (ctx.affinity_hash(), c.ring()) {
                (Some(h), Some(ring)) => {
                    write!(line, " ring={}", ring.len()).unwrap();
                    ring.successors(h).find_map(|p| c.get(p))
                }
                _ => c.get(ctx.random_below(c.tier_len() as u64 + 1) as usize),
            },
            4 => {
                let mut s = ctx.sampler();
                let a = s.below(len);
                let b = s.next_u64() % len.max(1);
                c.nth(a.max(b) as usize)
            }
            5 => c
                .iter()
                .min_by_key(|x| (x.latency(), x.in_flight(), x.position())),
            _ => c
                .iter()
                .max_by_key(|x| (x.effective_weight(), x.position())),
        };
        writeln!(line, " -> {:?}", chosen.map(|x| x.position())).unwrap();
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&line);
        chosen
    }

    fn name(&self) -> &str {
        "probe"
    }

    fn uses_ring(&self) -> bool {
        self.uses_ring
    }

    fn reads_load(&self) -> bool {
        self.reads_load
    }
}

/// The strategy of a trace: a built-in one or the probe.
#[derive(Clone, Copy)]
enum Choice {
    Builtin(BuiltinStrategy),
    Probe { reads_load: bool, uses_ring: bool },
}

fn strategies() -> Vec<Choice> {
    let mut v: Vec<Choice> = BuiltinStrategy::all()
        .iter()
        .copied()
        .map(Choice::Builtin)
        .collect();
    v.extend([
        Choice::Builtin(ConsistentHash::with_bounded_load(1.25).unwrap().into()),
        Choice::Builtin(ConsistentHash::with_bounded_load(1.0).unwrap().into()),
        Choice::Builtin(PowerOfTwo::new(Load::InFlightPerWeight).into()),
        Choice::Builtin(PowerOfTwo::new(Load::PeakEwma).into()),
        Choice::Builtin(Latency::with_buffer(0.25).unwrap().into()),
        Choice::Probe {
            reads_load: true,
            uses_ring: true,
        },
        Choice::Probe {
            reads_load: false,
            uses_ring: false,
        },
    ]);
    v
}

fn uses_ring(choice: Choice) -> bool {
    match choice {
        Choice::Builtin(b) => b.uses_ring(),
        Choice::Probe { uses_ring, .. } => uses_ring,
    }
}

fn health_policy(g: &mut Gen) -> (HealthPolicy, &'static str) {
    let s = Duration::from_secs;
    match g.below(7) {
        0 => (HealthPolicy::default(), "default"),
        1 => (HealthPolicy::dify(), "dify"),
        2 => (HealthPolicy::litellm(), "litellm"),
        3 => (HealthPolicy::disabled(), "disabled"),
        4 => {
            let mut p = HealthPolicy::default();
            p.ejection = Some({
                let mut e = Ejection::default();
                e.consecutive_failures = 2;
                e.base = s(5);
                e.max = s(20);
                e.max_percent = 50;
                e.interval = s(3);
                e
            });
            p.slow_start = Some({
                let mut s = SlowStart::new(s(20));
                s.aggression = 1.5;
                s.min_percent = 10.0;
                s
            });
            p.unhealthy = Unhealthy::panic_below(50);
            (p, "ejection+slow_start+panic")
        }
        5 => {
            let mut p = HealthPolicy::litellm();
            p.ejection = Some({
                let mut e = Ejection::default();
                e.consecutive_failures = 3;
                e.max_percent = 100;
                e
            });
            p.slow_start = Some({
                let mut s = SlowStart::new(s(60));
                s.aggression = 1.0;
                s.min_percent = 0.0;
                s
            });
            p.unhealthy = Unhealthy::panic_below(100);
            p.cooldowns.failure_rate = Some(FailureRate::new(3, 0.3, s(7)));
            p.failure_penalty = Some(Duration::from_millis(800));
            (p, "litellm+ejection+slow_start+panic100")
        }
        _ => {
            let mut p = HealthPolicy::default();
            p.cooldowns.retry_after = RetryAfter::SetsEnd;
            p.cooldowns.min_group_size = 2;
            p.cooldowns.set_rule(
                FailureKind::BadRequest,
                Some(CooldownRule::new(2, s(10), s(4)).unwrap()),
            );
            p.cooldowns.set_counted(FailureKind::Other, false);
            p.cooldowns.set_rule(
                FailureKind::ServerError,
                Some(CooldownRule::new(1, s(5), s(3)).unwrap()),
            );
            p.ejection = None;
            (p, "custom cooldowns")
        }
    }
}

fn configure<'r>(
    b: SelectorBuilder<'r, Policy>,
    choice: Choice,
    log: &Arc<Mutex<String>>,
) -> SelectorBuilder<'r, Policy> {
    match choice {
        Choice::Builtin(s) => b.strategy(s),
        Choice::Probe {
            reads_load,
            uses_ring,
        } => b.custom_strategy(Box::new(Probe {
            log: Arc::clone(log),
            reads_load,
            uses_ring,
        })),
    }
}

// ---------------------------------------------------------------------------
// Descriptions of results

fn snapshot_line(h: &HealthSnapshot) -> String {
    format!(
        "    {} {} avail={} ej={} cf={} if={} lat={} rpm={} tpm={}",
        h.key,
        h.state,
        h.available_at
            .map_or("-".to_owned(), |t| t.as_nanos().to_string()),
        h.ejections,
        h.consecutive_failures,
        h.in_flight,
        h.latency
            .map_or("-".to_owned(), |t| t.as_nanos().to_string()),
        h.requests_per_minute,
        h.tokens_per_minute
    )
}

fn count_states(health: &[HealthSnapshot], counts: &mut Counts) {
    for h in health {
        counts.bump_of("state", h.state.as_str());
        if h.ejections > 0 {
            counts.bump("state.ejections_nonzero");
        }
        if h.requests_per_minute > 0 {
            counts.bump("state.rpm_nonzero");
        }
        if h.tokens_per_minute > 0 {
            counts.bump("state.tpm_nonzero");
        }
    }
}

fn drain(log: &Arc<Mutex<String>>, text: &mut String) {
    let mut l = log.lock().unwrap_or_else(PoisonError::into_inner);
    text.push_str(&l);
    l.clear();
}

fn pick_line(key: &ModelKey, priority: u32, deployment: &Deployment) -> String {
    format!("{key} p{priority} w{}", deployment.weight())
}

/// The lowest priority of a model's deployments that are not drained.
fn lowest_priority(reg: &Registry, model: &str) -> Option<u32> {
    reg.of_model(model)
        .filter(|(_, d)| d.weight() > 0)
        .map(|(_, d)| d.priority())
        .min()
}

fn explain_into(sel: &Selector, req: &Request, text: &mut String, counts: &mut Counts) {
    match sel.explain(req) {
        Ok(why) => {
            counts.bump("explain");
            let removed = why.removed();
            counts.removed("explain", &removed);
            writeln!(
                text,
                "  explain model={} strategy={} tier={:?} removed=[{removed}] total={}",
                why.model(),
                why.strategy(),
                why.tier(),
                removed.total()
            )
            .unwrap();
            // The display shows each verdict but its picks in flight.
            for (i, v) in why.candidates().iter().enumerate() {
                if v.in_flight() > 0 {
                    counts.bump("explain.in_flight");
                    writeln!(text, "  verdict {i} in_flight={}", v.in_flight()).unwrap();
                }
            }
            if why.candidates().len() <= 64 {
                text.push_str(&why.to_string());
            } else {
                writeln!(text, "  {:x}", fnv1a(why.to_string().as_bytes())).unwrap();
            }
        }
        Err(e) => {
            counts.error(&e);
            writeln!(text, "  explain error: {e}").unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Selector traces

/// A pick held open, with the version it came from.
struct Held<'s> {
    pick: Pick<'s>,
    version: usize,
}

fn selector_trace(index: usize, counts: &mut Counts) -> String {
    let mut g = Gen::new(0xD1FF_0000 ^ (index as u64).wrapping_mul(0x0100_0000_01B3));
    let mut text = String::new();
    let size = if index % 500 == 123 {
        Size::Huge
    } else if index % 20 == 7 {
        Size::Medium
    } else {
        Size::Small
    };
    let all = strategies();
    let mut choice = all[index % all.len()];
    if size == Size::Huge && uses_ring(choice) {
        // A hash ring over thousands of members holds a million points:
        // slow to build in a debug build.
        choice = Choice::Builtin(WeightedRoundRobin::new().into());
    }
    // A hash ring has 160 points per block of 16 units of weight, built
    // again on every rebuild: light weights keep the run short.
    let weights = match (uses_ring(choice), size) {
        (true, _) => Weights::Light,
        (false, Size::Huge) => Weights::Normal,
        (false, _) if g.chance(20) => Weights::Big,
        (false, _) => Weights::Normal,
    };
    let mut next_id = 0;
    let mut reg = gen_registry(&mut g, size, weights, &mut next_id, &mut text);
    let (policy, policy_name) = health_policy(&mut g);
    let panics = matches!(policy.unhealthy, Unhealthy::Panic { .. });
    let seed = g.next();
    let (in_flight, in_flight_name) = if g.chance(30) {
        (InFlight::Uncounted, "uncounted")
    } else {
        (InFlight::Counted, "counted")
    };
    let mut now: u64 = g.range(0, 5_000);
    let log = Arc::new(Mutex::new(String::new()));
    let mut builder = configure(Selector::builder(&reg), choice, &log)
        .seed(seed)
        .health(policy.clone().validated().unwrap())
        .in_flight(in_flight);
    if g.chance(30) {
        builder = builder.latency_decay(ms(g.range(100, 60_000)));
    }
    if g.chance(40) {
        builder = builder.started_at(ms(now.saturating_sub(g.range(0, 10_000))));
    }
    let first = builder.build();
    writeln!(
        text,
        "selector strategy={} health={policy_name} seed={seed} in_flight={in_flight_name} len={} empty={}",
        first.strategy_name(),
        first.len(),
        first.is_empty()
    )
    .unwrap();
    if index.is_multiple_of(100) {
        let mut bad = policy.clone();
        bad.unhealthy = Unhealthy::panic_below(0);
        let err = bad.validated().unwrap_err();
        writeln!(text, "  health error: {err}").unwrap();
        let err = ConsistentHash::with_bounded_load(0.5).unwrap_err();
        writeln!(text, "  strategy error: {err}").unwrap();
        let err = Latency::with_buffer(-1.0).unwrap_err();
        writeln!(text, "  strategy error: {err}").unwrap();
        // The shorthand constructors.
        for s in [
            Selector::new(&reg, RoundRobin),
            Selector::with_seed(&reg, WeightedRandom::new(), seed),
        ] {
            for m in reg.models() {
                match s.select(&Request::new(m)) {
                    Ok(p) => writeln!(text, "  {} {m} -> {}", s.strategy_name(), p.key()).unwrap(),
                    Err(e) => writeln!(text, "  {} {m} -> error: {e}", s.strategy_name()).unwrap(),
                }
            }
        }
    }

    // Versions and extra handles live in cells that outlive every pick.
    let cells: Vec<OnceCell<Selector>> = (0..CELLS).map(|_| OnceCell::new()).collect();
    let _ = cells[0].set(first);
    let mut used = 1;
    let mut current = 0;
    // Handles: (cell, version).
    let mut handles: Vec<(usize, usize)> = vec![(0, 0)];
    let mut held: Vec<Held<'_>> = Vec::new();
    let mut recent: Option<ModelKey> = None;

    let ops = match size {
        Size::Small => g.range(80, 200),
        Size::Medium => g.range(60, 100),
        Size::Huge => 40,
    };
    // Rebuilding a tier of thousands of members (or a ring of a million
    // points) is slow in a debug build.
    let mut rebuilds_left = match size {
        Size::Small if uses_ring(choice) => 4,
        Size::Small => CELLS,
        Size::Medium => 3,
        Size::Huge => 1,
    };
    for op in 0..ops {
        // The clock: mostly small steps, sometimes across cooldowns and
        // rolling minutes.
        now += match g.below(100) {
            0..=59 => g.range(0, 300),
            60..=89 => g.range(300, 3_000),
            90..=97 => g.range(3_000, 40_000),
            _ => g.range(40_000, 130_000),
        };
        let sel = cells[current].get().unwrap();
        write!(text, "{op} t={now} ").unwrap();
        let roll = g.below(100);
        match roll {
            // Select, then hold, complete or drop.
            0..=41 => {
                let (hc, hv) = if handles.len() > 1 && g.chance(15) {
                    handles[g.index(handles.len())]
                } else {
                    (current, current)
                };
                let s = cells[hc].get().unwrap();
                let (req, desc) = gen_request(&mut g, &reg, now, recent.as_ref());
                writeln!(text, "select h{hc}v{hv} {desc}").unwrap();
                let result = s.select(&req);
                drain(&log, &mut text);
                match result {
                    Ok(pick) => {
                        counts.bump("pick");
                        let key = pick.key().clone();
                        writeln!(
                            text,
                            "  -> {} [{}]",
                            pick_line(pick.key(), pick.priority(), pick.deployment()),
                            pick.strategy()
                        )
                        .unwrap();
                        if hc != current {
                            counts.bump("pick.other_handle");
                        }
                        if hv != current {
                            counts.bump("pick.old_version");
                        }
                        if req.is_plain()
                            && lowest_priority(&reg, req.model())
                                .is_some_and(|p| pick.priority() > p)
                        {
                            counts.bump("pick.failover");
                        }
                        if panics && let Some(at) = req.time() {
                            let state = s
                                .health(at)
                                .into_iter()
                                .find(|h| h.key == key)
                                .map(|h| h.state);
                            if matches!(state, Some(State::Cooling | State::Ejected)) {
                                counts.bump("pick.panic_mode");
                                writeln!(text, "  panic pick").unwrap();
                            }
                        }
                        recent = Some(key);
                        match g.below(10) {
                            0..=3 => held.push(Held { pick, version: hv }),
                            4..=7 => {
                                let (report, rdesc) = gen_report(&mut g, now, counts);
                                writeln!(text, "  complete {rdesc}").unwrap();
                                pick.complete(report);
                            }
                            8 => {
                                let l = g.range(1, 2_000);
                                writeln!(text, "  succeed {l}ms").unwrap();
                                pick.succeed(ms(now), ms(l));
                            }
                            _ => {
                                writeln!(text, "  drop").unwrap();
                                drop(pick);
                            }
                        }
                    }
                    Err(e) => {
                        counts.error(&e);
                        writeln!(text, "  -> error: {e}").unwrap();
                    }
                }
                if held.len() > 16 {
                    let h = held.remove(0);
                    writeln!(text, "  release oldest {}", h.pick.key()).unwrap();
                }
            }
            // Complete a held pick.
            42..=53 => {
                if held.is_empty() {
                    writeln!(text, "nothing held").unwrap();
                    continue;
                }
                let h = held.remove(g.index(held.len()));
                let (report, rdesc) = gen_report(&mut g, now, counts);
                writeln!(text, "complete v{} {} {rdesc}", h.version, h.pick.key()).unwrap();
                if h.version != current {
                    counts.bump("complete.old_version");
                }
                h.pick.complete(report);
            }
            // Drop a held pick.
            54..=57 => {
                if held.is_empty() {
                    writeln!(text, "nothing held").unwrap();
                    continue;
                }
                let h = held.remove(g.index(held.len()));
                writeln!(text, "drop v{} {}", h.version, h.pick.key()).unwrap();
            }
            // A report by key (no pick), sometimes for a key the selector
            // does not have.
            58..=65 => {
                let keys: Vec<&ModelKey> = reg.keys().collect();
                let ghost = ModelKey::new("openai", "ghost").unwrap();
                let key = if keys.is_empty() || g.chance(5) {
                    &ghost
                } else {
                    g.pick(&keys)
                };
                let at = if g.chance(5) {
                    now.saturating_sub(g.range(1, 5_000))
                } else {
                    now
                };
                let (report, rdesc) = gen_report(&mut g, at, counts);
                let known = sel.report(key, report);
                if !known {
                    counts.bump("report.unknown_key");
                }
                writeln!(text, "report {key} at={at} {rdesc} -> {known}").unwrap();
            }
            // A burst of failures of one kind on one deployment, or on
            // every deployment of a model: cooling, ejection, panic mode.
            66..=71 => {
                let models: Vec<&str> = reg.models().collect();
                if models.is_empty() {
                    writeln!(text, "no models").unwrap();
                    continue;
                }
                let model = g.pick(&models);
                let mut keys: Vec<&ModelKey> = reg.of_model(model).map(|(k, _)| k).collect();
                if size != Size::Small || g.chance(60) {
                    keys = vec![keys[g.index(keys.len())]];
                }
                let kind = g.pick(&[
                    FailureKind::ServerError,
                    FailureKind::Timeout,
                    FailureKind::ConnectionError,
                    FailureKind::rate_limited(None),
                    FailureKind::AuthenticationError,
                    FailureKind::Other,
                ]);
                let times = g.range(1, 6);
                writeln!(text, "burst {model} {kind} x{times} on {}", keys.len()).unwrap();
                for k in keys {
                    for i in 0..times {
                        counts.bump_of("report", kind.as_str());
                        sel.report(k, Report::failure(ms(now + i), kind));
                    }
                }
                counts.bump("burst");
            }
            // What the filters do.
            72..=75 => {
                let (req, desc) = gen_request(&mut g, &reg, now, recent.as_ref());
                writeln!(text, "explain {desc}").unwrap();
                explain_into(sel, &req, &mut text, counts);
            }
            // An attempt plan: a few attempts, each failing or dropped.
            76..=80 => {
                let (mut req, mut desc) = gen_request(&mut g, &reg, now, recent.as_ref());
                if g.chance(50) {
                    let f = g.pick(&MODELS);
                    req = req.fallback(f);
                    write!(desc, " fallback={f}").unwrap();
                }
                writeln!(text, "plan {desc}").unwrap();
                let mut plan = sel.plan(&req);
                for attempt in 0..g.range(1, 5) {
                    let next = plan.next();
                    drain(&log, &mut text);
                    let Some(pick) = next else {
                        writeln!(text, "  attempt {attempt}: none").unwrap();
                        counts.bump("plan.exhausted");
                        break;
                    };
                    counts.bump("plan.attempt");
                    if pick.deployment().model() != req.model() {
                        counts.bump("plan.fallback_model");
                    }
                    writeln!(
                        text,
                        "  attempt {attempt}: {}",
                        pick_line(pick.key(), pick.priority(), pick.deployment())
                    )
                    .unwrap();
                    if g.chance(60) {
                        let (report, rdesc) = gen_report(&mut g, now, counts);
                        writeln!(text, "    {rdesc}").unwrap();
                        pick.complete(report);
                    }
                }
            }
            // Health snapshot.
            81..=84 => {
                let at = if g.chance(80) {
                    now
                } else {
                    now + g.range(0, 60_000)
                };
                let health = sel.health(ms(at));
                counts.bump("health");
                count_states(&health, counts);
                writeln!(text, "health at={at} n={}", health.len()).unwrap();
                if size == Size::Small {
                    for h in &health {
                        writeln!(text, "{}", snapshot_line(h)).unwrap();
                    }
                } else {
                    let all: String = health.iter().map(snapshot_line).collect();
                    writeln!(text, "  {:x}", fnv1a(all.as_bytes())).unwrap();
                }
            }
            // In-flight counts and latency estimates by key.
            85..=87 => {
                let keys: Vec<&ModelKey> = reg.keys().collect();
                if keys.is_empty() {
                    writeln!(text, "no keys").unwrap();
                    continue;
                }
                let k = g.pick(&keys);
                let (f, l) = (sel.in_flight(k), sel.latency(k));
                if f.is_some_and(|f| f > 0) {
                    counts.bump("in_flight.nonzero");
                }
                writeln!(
                    text,
                    "in_flight {k} {f:?} latency {:?}",
                    l.map(|l| l.as_nanos())
                )
                .unwrap();
            }
            // Another handle of the current version.
            88..=89 => {
                if used == CELLS {
                    writeln!(text, "no more cells").unwrap();
                    continue;
                }
                let _ = cells[used].set(sel.clone());
                handles.push((used, current));
                writeln!(text, "handle h{used}v{current}").unwrap();
                counts.bump("handle");
                used += 1;
            }
            // Rebuild onto a changed registry.
            90..=91 => {
                if used == CELLS || rebuilds_left == 0 {
                    writeln!(text, "no more rebuilds").unwrap();
                    continue;
                }
                rebuilds_left -= 1;
                let next_reg = mutate(&mut g, &reg, weights, &mut next_id);
                let changes = reg.diff(&next_reg);
                let rebuilt = sel.rebuild(&next_reg, ms(now));
                writeln!(
                    text,
                    "rebuild v{used}: {} changes, {} deployments",
                    changes.len(),
                    rebuilt.len()
                )
                .unwrap();
                counts.bump("rebuild");
                if size == Size::Small {
                    for c in &changes {
                        writeln!(text, "  {c}").unwrap();
                    }
                }
                // What carried over.
                let before = sel.health(ms(now));
                let before: HashMap<&ModelKey, &HealthSnapshot> =
                    before.iter().map(|h| (&h.key, h)).collect();
                let after = rebuilt.health(ms(now));
                for a in &after {
                    if let Some(b) = before.get(&a.key) {
                        if a.in_flight > 0 && a.in_flight == b.in_flight {
                            counts.bump("rebuild.kept_in_flight");
                        }
                        if a.latency.is_some() && a.latency == b.latency {
                            counts.bump("rebuild.kept_latency");
                        }
                        if a.state != State::Healthy && a.state == b.state {
                            counts.bump_of("rebuild.kept", a.state.as_str());
                        }
                    } else if a.state == State::SlowStart {
                        counts.bump("rebuild.new_slow_start");
                    }
                }
                if size == Size::Small {
                    for h in &after {
                        writeln!(text, "{}", snapshot_line(h)).unwrap();
                    }
                }
                let _ = cells[used].set(rebuilt);
                handles.push((used, used));
                current = used;
                used += 1;
                reg = next_reg;
            }
            // A plain pick of every model in a row (rotation, limits).
            _ => {
                let models: Vec<String> = reg.models().map(str::to_owned).collect();
                writeln!(text, "sweep").unwrap();
                for m in models {
                    let at = ms(now);
                    let r = sel.select(&Request::new(&m).at(at));
                    drain(&log, &mut text);
                    match r {
                        Ok(p) => {
                            counts.bump("pick");
                            writeln!(
                                text,
                                "  {m} -> {}",
                                pick_line(p.key(), p.priority(), p.deployment())
                            )
                            .unwrap();
                            if g.chance(50) {
                                p.complete(
                                    Report::success(at, ms(g.range(10, 900)))
                                        .tokens(g.range(0, 1_500)),
                                );
                            }
                        }
                        Err(e) => {
                            counts.error(&e);
                            writeln!(text, "  {m} -> error: {e}").unwrap();
                        }
                    }
                }
            }
        }
    }
    // Released last: counts of old versions fall with the new ones.
    let sel = cells[current].get().unwrap();
    drop(held);
    let leftover: u32 = sel.health(ms(now)).iter().map(|h| h.in_flight).sum();
    writeln!(text, "end in_flight={leftover}").unwrap();
    assert_eq!(
        leftover, 0,
        "trace {index}: picks still counted after every one was released"
    );
    text
}

// ---------------------------------------------------------------------------
// Fleet traces

fn fleet_trace(index: usize, counts: &mut Counts) -> String {
    let mut g = Gen::new(0xF1EE_7000 ^ (index as u64).wrapping_mul(0x0100_0000_01B3));
    let mut text = String::new();
    let all = strategies();
    let choice = all[(index / 10) % all.len()];
    let weights = match uses_ring(choice) {
        true => Weights::Light,
        false if g.chance(20) => Weights::Big,
        false => Weights::Normal,
    };
    let mut next_id = 0;
    let reg = gen_registry(&mut g, Size::Small, weights, &mut next_id, &mut text);
    let (policy, policy_name) = health_policy(&mut g);
    let seed = g.next();
    let log = Arc::new(Mutex::new(String::new()));
    let fleet = {
        let log = Arc::clone(&log);
        let policy = policy.clone();
        Fleet::new(reg.clone(), move |b| {
            configure(b, choice, &log)
                .seed(seed)
                .health(policy.validated().unwrap())
        })
    };
    writeln!(
        text,
        "fleet strategy={} health={policy_name} seed={seed}",
        fleet.selector().strategy_name()
    )
    .unwrap();
    let mut handles: Vec<FleetHandle> = Vec::new();
    let mut held: Vec<OwnedPick> = Vec::new();
    let mut stale: Option<modelfleet::Changes> = None;
    let mut now: u64 = g.range(0, 5_000);
    for op in 0..g.range(80, 160) {
        now += match g.below(100) {
            0..=69 => g.range(0, 500),
            70..=94 => g.range(500, 8_000),
            _ => g.range(8_000, 90_000),
        };
        let reg = fleet.registry();
        write!(text, "{op} t={now} ").unwrap();
        match g.below(100) {
            0..=49 => {
                let (req, desc) = gen_request(&mut g, &reg, now, None);
                let via = if handles.is_empty() || g.chance(40) {
                    None
                } else {
                    Some(g.index(handles.len()))
                };
                writeln!(text, "select via {via:?} {desc}").unwrap();
                let result = match via {
                    None => fleet.select(&req),
                    Some(h) => handles[h].select(&req),
                };
                drain(&log, &mut text);
                match result {
                    Ok(pick) => {
                        counts.bump("fleet.pick");
                        if via.is_some() {
                            counts.bump("fleet.pick.handle");
                        }
                        writeln!(
                            text,
                            "  -> {}",
                            pick_line(pick.key(), pick.priority(), pick.deployment())
                        )
                        .unwrap();
                        match g.below(10) {
                            0..=3 => held.push(pick),
                            4..=7 => {
                                let (report, rdesc) = gen_report(&mut g, now, counts);
                                writeln!(text, "  complete {rdesc}").unwrap();
                                pick.complete(report);
                            }
                            8 => pick.succeed(ms(now), ms(g.range(1, 900))),
                            _ => drop(pick),
                        }
                    }
                    Err(e) => {
                        counts.error(&e);
                        counts.bump("fleet.error");
                        writeln!(text, "  -> error: {e}").unwrap();
                    }
                }
                if held.len() > 12 {
                    held.remove(0);
                }
            }
            50..=61 => {
                if held.is_empty() {
                    writeln!(text, "nothing held").unwrap();
                    continue;
                }
                let pick = held.remove(g.index(held.len()));
                let (report, rdesc) = gen_report(&mut g, now, counts);
                writeln!(text, "complete {} {rdesc}", pick.key()).unwrap();
                counts.bump("fleet.complete_held");
                pick.complete(report);
            }
            62..=71 => {
                let keys: Vec<&ModelKey> = reg.keys().collect();
                if keys.is_empty() {
                    writeln!(text, "no keys").unwrap();
                    continue;
                }
                let k = g.pick(&keys);
                let (report, rdesc) = if g.chance(50) {
                    gen_report(&mut g, now, counts)
                } else {
                    let kind = g.pick(&[FailureKind::ServerError, FailureKind::rate_limited(None)]);
                    (Report::failure(ms(now), kind), kind.to_string())
                };
                let known = fleet.report(k, report);
                writeln!(text, "report {k} {rdesc} -> {known}").unwrap();
            }
            72..=77 => {
                let health = fleet.health(ms(now));
                counts.bump("fleet.health");
                count_states(&health, counts);
                writeln!(text, "health n={}", health.len()).unwrap();
                for h in &health {
                    writeln!(text, "{}", snapshot_line(h)).unwrap();
                }
            }
            78..=82 => {
                let (req, desc) = gen_request(&mut g, &reg, now, None);
                writeln!(text, "explain {desc}").unwrap();
                explain_into(&fleet.selector(), &req, &mut text, counts);
            }
            83..=86 => {
                let (req, desc) = gen_request(&mut g, &reg, now, None);
                writeln!(text, "plan {desc}").unwrap();
                let selector = fleet.selector();
                let keys: Vec<String> = selector
                    .plan(&req)
                    .take(3)
                    .map(|p| p.key().to_string())
                    .collect();
                drain(&log, &mut text);
                writeln!(text, "  {keys:?}").unwrap();
            }
            87..=90 => {
                if handles.len() < 3 {
                    handles.push(fleet.handle());
                    counts.bump("fleet.handle");
                }
                writeln!(text, "handles {}", handles.len()).unwrap();
            }
            91..=94 => {
                let next = mutate(&mut g, &reg, weights, &mut next_id);
                let changes = fleet.install(next, ms(now));
                counts.bump("fleet.install");
                writeln!(text, "install: {changes}").unwrap();
                stale = Some(changes);
            }
            95..=97 => {
                let next = mutate(&mut g, &reg, weights, &mut next_id);
                let changes = reg.diff(&next);
                let result = fleet.apply(&changes, ms(now));
                counts.bump("fleet.apply");
                let shown = match &result {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => e.to_string(),
                };
                writeln!(text, "apply {} changes: {shown}", changes.len()).unwrap();
                assert!(result.is_ok(), "trace {index}: a fresh diff applies");
                // Changes carry no credential: kept keys keep the fleet's,
                // added ones arrive without one.
                let mut want = Registry::new(*next.policy());
                for (k, d) in next.iter() {
                    let d = d.without_credential();
                    want.upsert(match reg.get(k).and_then(Deployment::credential) {
                        Some(c) => d.to_builder().credential(c.expose()).build().unwrap(),
                        None => d,
                    });
                }
                assert!(
                    fleet.registry() == want,
                    "trace {index}: apply reaches the new registry"
                );
                stale = Some(changes);
            }
            _ => {
                // A diff applied a second time: usually it cannot.
                let Some(changes) = stale.take() else {
                    writeln!(text, "no stale diff").unwrap();
                    continue;
                };
                match fleet.apply(&changes, ms(now)) {
                    Ok(()) => writeln!(text, "stale apply ok").unwrap(),
                    Err(e) => {
                        counts.bump("fleet.apply_error");
                        writeln!(text, "stale apply error: {e}").unwrap();
                    }
                }
            }
        }
    }
    drop(held);
    let leftover: u32 = fleet.health(ms(now)).iter().map(|h| h.in_flight).sum();
    writeln!(text, "end in_flight={leftover}").unwrap();
    assert_eq!(
        leftover, 0,
        "trace {index}: fleet picks still counted after every one was released"
    );
    text
}

// ---------------------------------------------------------------------------
// The test

fn trace(index: usize, counts: &mut Counts) -> String {
    if index % 10 == 9 {
        fleet_trace(index, counts)
    } else {
        selector_trace(index, counts)
    }
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/differential.txt")
}

const HEADER: &str = "\
# Digests of the traces of tests/differential.rs: `index fnv1a64` per trace.
# Every seeded pick sequence, error message, explanation and health snapshot
# those traces produce is hashed here; a change to any of them changes a line.
# Re-bless only for an intended change of results:
#   MODELFLEET_BLESS=1 cargo test --all-features --test differential
";

#[test]
fn traces_match_the_fixture() {
    let mut counts = Counts::default();
    let mut digests = Vec::with_capacity(TRACES);
    for i in 0..TRACES {
        let text = trace(i, &mut counts);
        digests.push(fnv1a(text.as_bytes()));
    }
    if let Ok(i) = std::env::var("MODELFLEET_TRACE") {
        let i: usize = i.parse().expect("MODELFLEET_TRACE is a trace index");
        println!("{}", trace(i, &mut Counts::default()));
    }

    let mut actual = String::from(HEADER);
    for (i, d) in digests.iter().enumerate() {
        writeln!(actual, "{i} {d:016x}").unwrap();
    }
    let path = fixture_path();
    if std::env::var_os("MODELFLEET_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        eprintln!("wrote {}", path.display());
    } else {
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with MODELFLEET_BLESS=1)", path.display()));
        let parse = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        };
        let (want, got) = (parse(&expected), parse(&actual));
        if want != got {
            let first = (0..want.len().max(got.len()))
                .find(|&i| want.get(i) != got.get(i))
                .unwrap();
            let differing = (0..want.len().max(got.len()))
                .filter(|&i| want.get(i) != got.get(i))
                .count();
            let text = trace(first, &mut Counts::default());
            panic!(
                "{differing} of {} trace digests differ from {}; the first is trace {first} \
                 (expected {:?}, got {:?}). Its text now:\n{text}",
                want.len(),
                path.display(),
                want.get(first),
                got.get(first)
            );
        }
    }

    sanity(&counts);
}

/// Every count the traces are meant to reach, and fails on any zero.
fn sanity(counts: &Counts) {
    let mut required: Vec<String> = [
        "pick",
        "pick.other_handle",
        "pick.old_version",
        "pick.failover",
        "pick.panic_mode",
        "complete.old_version",
        "error.unknown_model",
        "error.no_eligible",
        "error.no_eligible.strategy_refused",
        "error.unavailable.retry_at",
        "error.unavailable.limits_only",
        "report.success",
        "report.rate_limited.retry_after",
        "report.overloaded.retry_after",
        "report.unknown_key",
        "burst",
        "explain",
        "explain.in_flight",
        "plan.attempt",
        "plan.exhausted",
        "plan.fallback_model",
        "health",
        "state.healthy",
        "state.cooling",
        "state.ejected",
        "state.slow_start",
        "state.ejections_nonzero",
        "state.rpm_nonzero",
        "state.tpm_nonzero",
        "in_flight.nonzero",
        "handle",
        "rebuild",
        "rebuild.kept_in_flight",
        "rebuild.kept_latency",
        "rebuild.kept.cooling",
        "rebuild.kept.ejected",
        "rebuild.new_slow_start",
        "fleet.pick",
        "fleet.pick.handle",
        "fleet.error",
        "fleet.complete_held",
        "fleet.health",
        "fleet.handle",
        "fleet.install",
        "fleet.apply",
        "fleet.apply_error",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for &kind in FailureKind::ALL {
        required.push(format!("report.{}", kind.as_str()));
    }
    for &reason in Reason::ALL {
        // Health and limits make a model unavailable; filters make it
        // ineligible. Every reason must show in some explanation.
        required.push(format!("explain.{}", reason.as_str()));
        if reason.is_transient() {
            required.push(format!("unavailable.{}", reason.as_str()));
        } else {
            required.push(format!("no_eligible.{}", reason.as_str()));
        }
    }
    let named = counts.named();
    let mut report = String::new();
    for (k, v) in &named {
        writeln!(report, "  {k}: {v}").unwrap();
    }
    eprintln!("differential sanity counts:\n{report}");
    let missing: Vec<&String> = required
        .iter()
        .filter(|k| !named.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "the traces never reached: {missing:?}\ncounts:\n{report}"
    );
}
