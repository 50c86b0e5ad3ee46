//! The embedded telephony provider (docs/architecture.md §4): a seeded, time-scaled
//! simulation of customers picking up (or not) and pressing keys. The demo,
//! the end-to-end tests and the load generator all run on it, so it behaves
//! like a provider would: idempotent on the attempt key, one task per attempt,
//! reports numbered per attempt and always closed by exactly one `Ended`.
//!
//! Determinism: what a customer does is drawn from an RNG seeded by
//! `(config.seed, attempt_key)` only, never from a shared RNG, so the same
//! seed gives the same outcomes whatever order tasks happen to run in. (The
//! stream of `StdRng` is stable for a given `rand` version, which the lock
//! file pins.)
//!
//! Time: every wait goes through the injected clock, so a `ScaledClock` plays
//! a morning in a minute and a `ManualClock` drives an attempt step by step.
//! Each attempt keeps its own timeline (placement time + durations) instead of
//! "now + duration" at every step, so coarse clock steps do not stretch it.

mod messaging;

pub use messaging::{Reach, SimMessaging, SimMessagingConfig};

use crate::providers::{
    AttemptRef, BoxFuture, Lookup, PlaceCall, Placed, ProviderReport, Telephony, TelephonyError,
};
use callahead_core::call::{EndReason, Key, ProviderEvent};
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::CallId;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

/// The key an "invalid then valid" customer presses first: unmapped, so the
/// core ignores it and the menu repeats.
const INVALID_KEY: char = '9';
/// Seconds from the last key press (or the end of the message) to hang-up:
/// the robot's "thank you" and the customer putting the phone down.
const HANG_UP_SECS: (u32, u32) = (1, 3);
/// Seconds between the invalid key and the valid one: the menu is replayed.
const MENU_REPEAT_SECS: (u32, u32) = (3, 8);
/// A provider failure is reported after a short setup delay.
const FAIL_SECS: (u32, u32) = (1, 3);
/// A busy line is known almost at once, without ringing.
const BUSY_SECS: (u32, u32) = (1, 3);

/// Relative weights of what an answering customer does. They need not sum to
/// one; a negative or non-finite weight counts as zero.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceWeights {
    /// Presses 1.
    pub confirm: f64,
    /// Presses 2.
    pub reschedule: f64,
    /// Presses 3.
    pub decline: f64,
    /// Presses 0 (wants to talk to the courier).
    pub courier: f64,
    /// Listens, then hangs up without pressing anything.
    pub no_input: f64,
    /// Presses an unmapped key first, then (after the menu repeats) a mapped
    /// one chosen with the four weights above.
    pub invalid_key_then_valid: f64,
}

impl Default for ChoiceWeights {
    /// Most customers simply confirm; the rest spread over the other choices.
    fn default() -> Self {
        Self {
            confirm: 0.62,
            reschedule: 0.12,
            decline: 0.06,
            courier: 0.08,
            no_input: 0.08,
            invalid_key_then_valid: 0.04,
        }
    }
}

/// A scripted customer, by phone number (`SimConfig::overrides`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers (within the ring timeout) and presses `key` after the message,
    /// or hangs up without a key when `None`.
    Answer {
        key: Option<Key>,
    },
    /// Answers in time, then hangs up after `secs` without pressing a key
    /// (tests of "heard at least N seconds").
    HangsUpAfter {
        secs: u32,
    },
    /// Lets it ring until the provider's ring timeout.
    NoAnswer,
    Busy,
    Voicemail,
    /// The provider fails to carry the call.
    Fail,
    /// The seeded random customer, as if there were no override.
    Random,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// P(the customer picks up), among calls the provider carries.
    pub answer_rate: f64,
    /// Of the non-answers, the share that are busy.
    pub busy_rate: f64,
    /// Of the non-answers, the share that reach voicemail.
    pub voicemail_rate: f64,
    /// P(provider failure).
    pub fail_rate: f64,
    pub choice_weights: ChoiceWeights,
    /// Min, max seconds ringing before the customer (or voicemail) picks up.
    /// A random customer slower than the request's ring timeout misses the
    /// call, as a real one would.
    pub ring_secs: (u32, u32),
    /// Min, max seconds between the answer and the key press or hang-up (the
    /// message being read). Also the length of a voicemail recording.
    pub talk_secs: (u32, u32),
    /// Scripted customers by E.164 phone number, for tests and demos.
    pub overrides: HashMap<String, Behaviour>,
    /// Where to append the provider's call detail records, one JSON line
    /// when an attempt is accepted and one when it ends, as a real
    /// provider's CDR export would show them. It outlives the process, so a
    /// test that kills the server can count what the "provider" really did.
    pub cdr: Option<std::path::PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            answer_rate: 0.8,
            busy_rate: 0.15,
            voicemail_rate: 0.35,
            fail_rate: 0.01,
            choice_weights: ChoiceWeights::default(),
            ring_secs: (3, 20),
            talk_secs: (12, 30),
            overrides: HashMap::new(),
            cdr: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    #[error("{name} must be a probability in [0, 1], got {value}")]
    Rate { name: &'static str, value: f64 },
    #[error("busy_rate + voicemail_rate must not exceed 1, got {0}")]
    NonAnswerShares(f64),
    #[error("choice weight {name} must be finite and not negative, got {value}")]
    Weight { name: &'static str, value: f64 },
    #[error("{name} must be (min, max) with min <= max, got ({min}, {max})")]
    Range { name: &'static str, min: u32, max: u32 },
}

impl SimConfig {
    /// Checks the values a user typed (CLI, config file). `Simulator::new`
    /// does not require it: it clamps whatever it is given, so a bad value
    /// degrades the simulation instead of crashing the server.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        for (name, value) in [
            ("answer_rate", self.answer_rate),
            ("busy_rate", self.busy_rate),
            ("voicemail_rate", self.voicemail_rate),
            ("fail_rate", self.fail_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimConfigError::Rate { name, value });
            }
        }
        let shares = self.busy_rate + self.voicemail_rate;
        if shares > 1.0 {
            return Err(SimConfigError::NonAnswerShares(shares));
        }
        let w = &self.choice_weights;
        for (name, value) in [
            ("confirm", w.confirm),
            ("reschedule", w.reschedule),
            ("decline", w.decline),
            ("courier", w.courier),
            ("no_input", w.no_input),
            ("invalid_key_then_valid", w.invalid_key_then_valid),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(SimConfigError::Weight { name, value });
            }
        }
        for (name, (min, max)) in [("ring_secs", self.ring_secs), ("talk_secs", self.talk_secs)] {
            if min > max {
                return Err(SimConfigError::Range { name, min, max });
            }
        }
        Ok(())
    }
}

/// Counts of what the simulator reported, for the demo and the load generator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Distinct attempts placed (duplicates are not counted).
    pub placed: u64,
    /// Attempts a human answered (voicemail excluded).
    pub answered: u64,
    /// Attempts ended with `EndReason::NoAnswer` (including hang-ups before an answer).
    pub no_answer: u64,
    pub busy: u64,
    pub voicemail: u64,
    pub failed: u64,
    /// Attempts ended with `EndReason::HungUp` (answered, with or without a key).
    pub hung_up: u64,
    /// Attempts ended early by `Telephony::hang_up`.
    pub cancelled: u64,
    /// Attempts still running.
    pub live: u64,
    /// Every key press reported, unmapped ones included, by key.
    pub keys: BTreeMap<char, u64>,
}

/// The embedded telephony provider. Cheap to share: `new` returns an `Arc`.
pub struct Simulator {
    shared: Arc<Shared>,
}

struct Shared {
    cdr: Option<Mutex<std::fs::File>>,
    config: SimConfig,
    clock: SharedClock,
    reports: mpsc::Sender<ProviderReport>,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Default)]
struct State {
    placed: Vec<Arc<str>>,
    seen: HashSet<Arc<str>>,
    /// Attempts whose task has not emitted `Ended` yet. The value is the
    /// hang-up signal; `None` once `hang_up` has used it.
    live: HashMap<Arc<str>, Option<oneshot::Sender<()>>>,
    duplicates: u64,
    /// Couriers' phones now talking to a customer: a second customer asking
    /// for the same courier finds them busy.
    bridged: HashSet<String>,
}

#[derive(Default)]
struct Counters {
    placed: AtomicU64,
    answered: AtomicU64,
    no_answer: AtomicU64,
    busy: AtomicU64,
    voicemail: AtomicU64,
    failed: AtomicU64,
    hung_up: AtomicU64,
    cancelled: AtomicU64,
    /// Indexed by `key_index`: '0'..='9', '*', '#'.
    keys: [AtomicU64; 12],
}

fn key_index(key: Key) -> usize {
    match key.as_char() {
        c @ '0'..='9' => c as usize - '0' as usize,
        '*' => 10,
        _ => 11,
    }
}

const KEY_CHARS: [char; 12] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#'];

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Shared {
    /// Appends one CDR line (one `write`, so lines never interleave).
    fn record(&self, line: serde_json::Value) {
        use std::io::Write;
        let Some(file) = &self.cdr else { return };
        let mut text = line.to_string();
        text.push('\n');
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "simulator: cannot write a CDR line");
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent at each step
        // (single inserts/removes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Simulator {
    pub fn new(config: SimConfig, clock: SharedClock, reports: mpsc::Sender<ProviderReport>) -> Arc<Self> {
        let cdr = config.cdr.as_deref().and_then(|path| {
            match std::fs::OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => Some(Mutex::new(f)),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "simulator: cannot open the CDR file");
                    None
                }
            }
        });
        Arc::new(Self {
            shared: Arc::new(Shared {
                cdr,
                config: normalized(config),
                clock,
                reports,
                state: Mutex::new(State::default()),
                counters: Counters::default(),
            }),
        })
    }

    /// Every attempt key ever placed, in placement order (a duplicate
    /// `place()` with the same key is not recorded again and does not ring again).
    pub fn placed(&self) -> Vec<String> {
        self.shared.state().placed.iter().map(|k| k.to_string()).collect()
    }

    /// How many `place()` calls arrived with an attempt key already placed.
    pub fn duplicate_places(&self) -> u64 {
        self.shared.state().duplicates
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let keys = KEY_CHARS
            .iter()
            .zip(c.keys.iter())
            .filter(|(_, n)| get(n) > 0)
            .map(|(ch, n)| (*ch, get(n)))
            .collect();
        SimStats {
            placed: get(&c.placed),
            answered: get(&c.answered),
            no_answer: get(&c.no_answer),
            busy: get(&c.busy),
            voicemail: get(&c.voicemail),
            failed: get(&c.failed),
            hung_up: get(&c.hung_up),
            cancelled: get(&c.cancelled),
            live: self.shared.state().live.len() as u64,
            keys,
        }
    }

    fn place_now(&self, req: PlaceCall) -> Result<Placed, TelephonyError> {
        let shared = &self.shared;
        if shared.reports.is_closed() {
            return Err(TelephonyError::Unavailable("simulator report channel is closed".into()));
        }
        let (hang_up_tx, hang_up_rx) = oneshot::channel();
        let key: Arc<str> = Arc::from(req.attempt_key.as_str());
        {
            // Check and insert under one lock so two concurrent retries of the
            // same attempt cannot both ring the customer.
            let mut state = shared.state();
            if state.seen.contains(&key) {
                state.duplicates += 1;
                tracing::debug!(attempt_key = %key, "simulator: duplicate place ignored");
                return Ok(Placed { reference: key.to_string(), control_url: None });
            }
            state.seen.insert(key.clone());
            state.placed.push(key.clone());
            state.live.insert(key.clone(), Some(hang_up_tx));
        }
        shared.record(serde_json::json!({
            "record": "placed", "attempt_key": &*key, "to": req.to, "at": shared.clock.now(),
        }));
        bump(&shared.counters.placed);

        let behaviour = shared.config.overrides.get(&req.to).cloned().unwrap_or(Behaviour::Random);
        let mut rng = StdRng::seed_from_u64(attempt_seed(shared.config.seed, &key));
        let plan = Plan::draw(&shared.config, &behaviour, req.ring_timeout_secs, &mut rng);
        tracing::debug!(attempt_key = %key, ?plan, "simulator: attempt placed");

        let attempt = AttemptTask {
            shared: shared.clone(),
            key,
            call_id: req.call_id,
            attempt: req.attempt,
            seq: 0,
            // The timeline starts when the provider accepted the call, not
            // when the task first runs.
            at: shared.clock.now(),
            answered_at: None,
            answered: false,
            voicemail: false,
            key_pressed: None,
            bridge_to: req.bridge_to,
            hang_up: hang_up_rx,
        };
        let placed = Placed { reference: attempt.key.to_string(), control_url: None };
        tokio::spawn(attempt.run(plan));
        Ok(placed)
    }
}

impl Telephony for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move { self.place_now(req) })
    }

    fn hang_up(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<(), TelephonyError>> {
        let attempt_key = attempt.attempt_key.clone();
        Box::pin(async move {
            let signal = self.shared.state().live.get_mut(attempt_key.as_str()).and_then(Option::take);
            if let Some(signal) = signal {
                // The task may be finishing on its own right now; then its
                // normal `Ended` stands and the signal is simply not needed.
                let _ = signal.send(());
            }
            Ok(())
        })
    }

    fn lookup(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<Lookup, TelephonyError>> {
        // Only what this process placed: after a restart every earlier
        // attempt is unknown, as its customer's simulated call died with it.
        let key = attempt.attempt_key.clone();
        Box::pin(async move {
            let live = self.shared.state().live.contains_key(key.as_str());
            Ok(if live {
                Lookup::Live(Placed { reference: key, control_url: None })
            } else {
                Lookup::NotFound
            })
        })
    }
}

/// Clamps a configuration into something the draw can always use.
fn normalized(mut c: SimConfig) -> SimConfig {
    let unit = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    c.answer_rate = unit(c.answer_rate);
    c.fail_rate = unit(c.fail_rate);
    c.busy_rate = unit(c.busy_rate);
    c.voicemail_rate = unit(c.voicemail_rate).min(1.0 - c.busy_rate);
    let weight = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let w = &mut c.choice_weights;
    for v in [
        &mut w.confirm,
        &mut w.reschedule,
        &mut w.decline,
        &mut w.courier,
        &mut w.no_input,
        &mut w.invalid_key_then_valid,
    ] {
        *v = weight(*v);
    }
    let ordered = |(a, b): (u32, u32)| (a.min(b), a.max(b));
    c.ring_secs = ordered(c.ring_secs);
    c.talk_secs = ordered(c.talk_secs);
    c
}

/// Mixes the seed and the attempt key into one RNG seed. FNV-1a and
/// SplitMix64 are spelled out (rather than `DefaultHasher`) because their
/// output is fixed forever, so a seed means the same run on every toolchain.
fn attempt_seed(seed: u64, attempt_key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in attempt_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(seed ^ splitmix64(h))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn secs_in(rng: &mut StdRng, (min, max): (u32, u32)) -> u32 {
    rng.random_range(min..=max)
}

/// What one attempt will do, decided up front so the task itself draws
/// nothing and holds only a few words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Fail { after: u32 },
    Busy { after: u32 },
    NoAnswer { timeout: u32 },
    Voicemail { ring: u32, recording: u32 },
    Answer { ring: u32, talk: u32, first: Option<Key>, second: Option<(u32, Key)>, hang_up_after: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Key(Key),
    NoInput,
    InvalidThenValid(Key),
}

impl Plan {
    fn draw(config: &SimConfig, behaviour: &Behaviour, ring_timeout: u32, rng: &mut StdRng) -> Plan {
        // Every draw happens in the same order whatever the behaviour, so an
        // override changes only the one attempt it scripts.
        let fail = rng.random::<f64>();
        let answer = rng.random::<f64>();
        let kind = rng.random::<f64>();
        let choice = draw_choice(&config.choice_weights, rng);
        let ring = secs_in(rng, config.ring_secs);
        let talk = secs_in(rng, config.talk_secs);
        let hang_up_after = secs_in(rng, HANG_UP_SECS);
        let menu_repeat = secs_in(rng, MENU_REPEAT_SECS);
        let fail_after = secs_in(rng, FAIL_SECS);
        let busy_after = secs_in(rng, BUSY_SECS);

        // A scripted customer picks up in time, whatever the configured ring range.
        let in_time = ring.min(ring_timeout.saturating_sub(1));
        let answer_plan = |ring: u32, choice: Choice| {
            let (first, second) = match choice {
                Choice::Key(k) => (Some(k), None),
                Choice::NoInput => (None, None),
                Choice::InvalidThenValid(k) => (Key::new(INVALID_KEY), Some((menu_repeat, k))),
            };
            Plan::Answer { ring, talk, first, second, hang_up_after }
        };
        match behaviour {
            Behaviour::Answer { key } => answer_plan(in_time, key.map_or(Choice::NoInput, Choice::Key)),
            Behaviour::HangsUpAfter { secs } => {
                Plan::Answer { ring: in_time, talk: *secs, first: None, second: None, hang_up_after: 0 }
            }
            Behaviour::NoAnswer => Plan::NoAnswer { timeout: ring_timeout },
            Behaviour::Busy => Plan::Busy { after: busy_after },
            Behaviour::Voicemail => Plan::Voicemail { ring: in_time, recording: talk },
            Behaviour::Fail => Plan::Fail { after: fail_after },
            Behaviour::Random => {
                if fail < config.fail_rate {
                    Plan::Fail { after: fail_after }
                } else if answer < config.answer_rate {
                    if ring < ring_timeout {
                        answer_plan(ring, choice)
                    } else {
                        // The customer would have picked up, but the provider gave up first.
                        Plan::NoAnswer { timeout: ring_timeout }
                    }
                } else if kind < config.busy_rate {
                    Plan::Busy { after: busy_after }
                } else if kind < config.busy_rate + config.voicemail_rate && ring < ring_timeout {
                    Plan::Voicemail { ring, recording: talk }
                } else {
                    Plan::NoAnswer { timeout: ring_timeout }
                }
            }
        }
    }
}

fn draw_choice(w: &ChoiceWeights, rng: &mut StdRng) -> Choice {
    let keyed = [(w.confirm, '1'), (w.reschedule, '2'), (w.decline, '3'), (w.courier, '0')];
    let keys_total: f64 = keyed.iter().map(|(w, _)| w).sum();
    // `x` in [0, keys_total): walk the cumulative weights.
    let key_at = |mut x: f64| {
        let c = keyed
            .iter()
            .find(|(weight, _)| {
                let hit = x < *weight;
                x -= weight;
                hit
            })
            .map(|(_, c)| *c)
            // Rounding at the top end, or no key weights at all.
            .unwrap_or('1');
        Key::new(c)
    };
    // Both draws always happen so the stream stays aligned across configs.
    let u = rng.random::<f64>();
    let v = rng.random::<f64>();
    let total = keys_total + w.no_input + w.invalid_key_then_valid;
    let x = u * total;
    let chosen = if total <= 0.0 {
        None
    } else if x < keys_total {
        key_at(x).map(Choice::Key)
    } else if x < keys_total + w.no_input {
        None
    } else {
        key_at(v * keys_total).map(Choice::InvalidThenValid)
    };
    chosen.unwrap_or(Choice::NoInput)
}

/// Why an attempt stopped before its plan ran out.
enum Stop {
    HungUp,
    ChannelClosed,
}

/// One attempt in flight: its identity, its timeline and what happened so far.
struct AttemptTask {
    shared: Arc<Shared>,
    key: Arc<str>,
    call_id: CallId,
    attempt: u32,
    seq: u32,
    /// Domain time the plan has reached: each step waits until `at + secs`.
    at: DateTime<Utc>,
    /// When the customer picked up: the `Ended` summary reports the talk time.
    answered_at: Option<DateTime<Utc>>,
    answered: bool,
    voicemail: bool,
    /// The mapped key pressed, for the `Ended` summary.
    key_pressed: Option<Key>,
    /// Where "talk to the courier" transfers the customer.
    bridge_to: Option<String>,
    hang_up: oneshot::Receiver<()>,
}

struct End {
    result: EndReason,
    answered: bool,
    key: Option<Key>,
}

impl AttemptTask {
    async fn run(mut self, plan: Plan) {
        match self.play(plan).await {
            Ok(end) => self.finish(end, false).await,
            Err(Stop::HungUp) => {
                let end = if self.answered {
                    End { result: EndReason::HungUp, answered: true, key: self.key_pressed }
                } else if self.voicemail {
                    End { result: EndReason::Voicemail, answered: false, key: None }
                } else {
                    End { result: EndReason::NoAnswer, answered: false, key: None }
                };
                self.finish(end, true).await
            }
            Err(Stop::ChannelClosed) => self.forget(),
        }
    }

    async fn play(&mut self, plan: Plan) -> Result<End, Stop> {
        let end = |result, answered, key| End { result, answered, key };
        match plan {
            Plan::Fail { after } => {
                self.wait(after).await?;
                Ok(end(EndReason::Failed, false, None))
            }
            Plan::Busy { after } => {
                self.wait(after).await?;
                Ok(end(EndReason::Busy, false, None))
            }
            Plan::NoAnswer { timeout } => {
                self.emit(ProviderEvent::Ringing).await?;
                self.wait(timeout).await?;
                Ok(end(EndReason::NoAnswer, false, None))
            }
            Plan::Voicemail { ring, recording } => {
                self.emit(ProviderEvent::Ringing).await?;
                self.wait(ring).await?;
                self.voicemail = true;
                self.emit(ProviderEvent::Answered { voicemail: true }).await?;
                self.wait(recording).await?;
                Ok(end(EndReason::Voicemail, false, None))
            }
            Plan::Answer { ring, talk, first, second, hang_up_after } => {
                self.emit(ProviderEvent::Ringing).await?;
                self.wait(ring).await?;
                self.answered = true;
                self.answered_at = Some(self.at);
                bump(&self.shared.counters.answered);
                self.emit(ProviderEvent::Answered { voicemail: false }).await?;
                self.wait(talk).await?;
                if let Some(key) = first {
                    self.press(key).await?;
                    self.bridge(key, talk).await?;
                }
                if let Some((after, key)) = second {
                    self.wait(after).await?;
                    self.press(key).await?;
                    self.bridge(key, talk).await?;
                }
                self.wait(hang_up_after).await?;
                Ok(end(EndReason::HungUp, true, self.key_pressed))
            }
        }
    }

    async fn press(&mut self, key: Key) -> Result<(), Stop> {
        // Only the first mapped key decides, as in the core's rules.
        if key.outcome().is_some() && self.key_pressed.is_none() {
            self.key_pressed = Some(key);
        }
        bump(&self.shared.counters.keys[key_index(key)]);
        self.emit(ProviderEvent::KeyPressed { key }).await
    }

    /// After the customer chose the courier: put them through if the
    /// courier is free, and let them talk for `talk` seconds.
    async fn bridge(&mut self, key: Key, talk: u32) -> Result<(), Stop> {
        let wants_courier = key.outcome() == Some(callahead_core::Outcome::WantsCourier);
        let Some(courier) = self.bridge_to.clone().filter(|_| wants_courier && self.key_pressed == Some(key))
        else {
            return Ok(());
        };
        let connected = self.shared.state().bridged.insert(courier.clone());
        let talked = match self.emit(ProviderEvent::Bridged { connected }).await {
            Ok(()) if connected => self.wait(talk).await,
            other => other,
        };
        if connected {
            self.shared.state().bridged.remove(&courier);
        }
        talked
    }

    /// Waits `secs` more on the attempt's timeline, unless hung up first.
    async fn wait(&mut self, secs: u32) -> Result<(), Stop> {
        self.at += Duration::seconds(i64::from(secs));
        let sleep = self.shared.clock.sleep_until(self.at);
        tokio::select! {
            biased;
            // Either the signal or its sender being dropped means "stop": the
            // sender lives in the live map until this task removes it.
            _ = &mut self.hang_up => Err(Stop::HungUp),
            () = sleep => Ok(()),
        }
    }

    /// Numbers the next report. Takes the fields it needs rather than `self`
    /// because the caller holds a send permit borrowed from `self.shared`.
    fn report(
        seq: &mut u32,
        call_id: CallId,
        attempt: u32,
        clock: &SharedClock,
        event: ProviderEvent,
    ) -> ProviderReport {
        *seq += 1;
        ProviderReport {
            call_id,
            attempt,
            provider_seq: Some(*seq),
            event,
            at: clock.now(),
            wall_ms: wall_ms(),
        }
    }

    async fn emit(&mut self, event: ProviderEvent) -> Result<(), Stop> {
        let permit = self.shared.reports.reserve().await.map_err(|_| Stop::ChannelClosed)?;
        permit.send(Self::report(&mut self.seq, self.call_id, self.attempt, &self.shared.clock, event));
        Ok(())
    }

    async fn finish(&mut self, end: End, cancelled: bool) {
        // Reserve first, then leave the live map and send with no await in
        // between: whoever receives `Ended` already sees `is_live == false`.
        let Ok(permit) = self.shared.reports.reserve().await else {
            self.forget();
            return;
        };
        let c = &self.shared.counters;
        bump(match end.result {
            EndReason::HungUp => &c.hung_up,
            EndReason::NoAnswer => &c.no_answer,
            EndReason::Busy => &c.busy,
            EndReason::Voicemail => &c.voicemail,
            EndReason::Failed => &c.failed,
        });
        if cancelled {
            bump(&c.cancelled);
        }
        self.forget();
        // A hang-up mid-plan ends now, not where the plan had got to.
        let ended_at = if cancelled { self.shared.clock.now().min(self.at) } else { self.at };
        let talk_secs = self
            .answered_at
            .filter(|_| end.answered)
            .map(|a| u32::try_from((ended_at - a).num_seconds()).unwrap_or(0));
        self.shared.record(serde_json::json!({
            "record": "ended", "attempt_key": &*self.key, "result": end.result, "answered": end.answered,
            "key": end.key, "talk_secs": talk_secs, "at": ended_at,
        }));
        let event =
            ProviderEvent::Ended { result: end.result, answered: end.answered, key: end.key, talk_secs };
        permit.send(Self::report(&mut self.seq, self.call_id, self.attempt, &self.shared.clock, event));
    }

    fn forget(&self) {
        self.shared.state().live.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Script;
    use callahead_core::clock::ManualClock;
    use chrono::TimeZone;

    const RING_TIMEOUT: u32 = 45;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).single().expect("valid start time")
    }

    fn key(c: char) -> Key {
        Key::new(c).expect("valid key")
    }

    fn request(call: i64, to: &str) -> PlaceCall {
        PlaceCall {
            attempt_key: PlaceCall::attempt_key(CallId(call), 1),
            call_id: CallId(call),
            attempt: 1,
            to: to.to_owned(),
            script: Script {
                text: "Your parcel arrives at 10:30.".into(),
                no_input: "We did not hear you.".into(),
                goodbye: "Goodbye!".into(),
                language: "en".into(),
                keys: Vec::new(),
            },
            bridge_to: None,
            ring_timeout_secs: RING_TIMEOUT,
            courier_id: callahead_core::CourierId(1),
            machine_detection: false,
            callback_secret: String::new(),
        }
    }

    fn aref(key: &str) -> AttemptRef {
        AttemptRef { attempt_key: key.into(), placed: None, to: String::new(), placed_at: start() }
    }

    impl Simulator {
        async fn is_live(&self, key: &str) -> Result<bool, TelephonyError> {
            Ok(matches!(self.lookup(&aref(key)).await?, Lookup::Live(_)))
        }
    }

    /// A simulator on a `ManualClock`, with the reports received so far.
    struct Harness {
        clock: ManualClock,
        sim: Arc<Simulator>,
        rx: mpsc::Receiver<ProviderReport>,
        got: Vec<ProviderReport>,
    }

    impl Harness {
        fn new(config: SimConfig) -> Self {
            let clock = ManualClock::new(start());
            // Large enough that no attempt task ever waits on the channel.
            let (tx, rx) = mpsc::channel(1 << 16);
            let sim = Simulator::new(config, Arc::new(clock.clone()), tx);
            Self { clock, sim, rx, got: Vec::new() }
        }

        async fn place(&self, req: PlaceCall) {
            self.sim.place(req).await.expect("simulator accepts the call");
        }

        /// Lets every woken attempt task run, then collects what they sent.
        async fn settle(&mut self) {
            for _ in 0..16 {
                tokio::task::yield_now().await;
            }
            while let Ok(report) = self.rx.try_recv() {
                self.got.push(report);
            }
        }

        /// Advances the clock in `step_secs` steps until `done` holds for the
        /// reports so far; false if it still does not after `max_steps`.
        async fn run_until(
            &mut self,
            step_secs: i64,
            max_steps: usize,
            done: impl Fn(&[ProviderReport]) -> bool,
        ) -> bool {
            self.settle().await;
            for _ in 0..max_steps {
                if done(&self.got) {
                    return true;
                }
                self.clock.advance(Duration::seconds(step_secs));
                self.settle().await;
            }
            done(&self.got)
        }

        async fn run_until_ended(&mut self, attempts: usize) {
            let ended = self
                .run_until(1, 100_000, |got| {
                    got.iter().filter(|r| matches!(r.event, ProviderEvent::Ended { .. })).count() >= attempts
                })
                .await;
            assert!(ended, "all {attempts} attempts ended");
        }

        fn of(&self, call: i64) -> Vec<ProviderReport> {
            self.got.iter().filter(|r| r.call_id == CallId(call)).cloned().collect()
        }

        /// The call's events, talk time left out (its own test checks it).
        fn events(&self, call: i64) -> Vec<ProviderEvent> {
            let strip = |e| match e {
                ProviderEvent::Ended { result, answered, key, .. } => {
                    ProviderEvent::Ended { result, answered, key, talk_secs: None }
                }
                other => other,
            };
            self.of(call).into_iter().map(|r| strip(r.event)).collect()
        }
    }

    fn by_attempt(reports: &[ProviderReport]) -> BTreeMap<(CallId, u32), Vec<ProviderReport>> {
        let mut map: BTreeMap<(CallId, u32), Vec<ProviderReport>> = BTreeMap::new();
        for r in reports {
            map.entry((r.call_id, r.attempt)).or_default().push(r.clone());
        }
        map
    }

    /// provider_seq runs 1..n in arrival order and exactly one `Ended` closes it.
    fn assert_well_formed(reports: &[ProviderReport]) {
        for ((call, attempt), rs) in by_attempt(reports) {
            let seqs: Vec<u32> = rs.iter().map(|r| r.provider_seq.unwrap_or(0)).collect();
            let expected: Vec<u32> = (1..=rs.len() as u32).collect();
            assert_eq!(seqs, expected, "provider_seq of call {call} attempt {attempt}");
            let ends = rs.iter().filter(|r| matches!(r.event, ProviderEvent::Ended { .. })).count();
            assert_eq!(ends, 1, "one Ended for call {call} attempt {attempt}");
            assert!(matches!(rs.last().map(|r| &r.event), Some(ProviderEvent::Ended { .. })));
            assert!(rs.windows(2).all(|w| w[0].at <= w[1].at), "time moves forward");
        }
    }

    /// Per attempt: (seq, event, domain seconds from the start) — what a
    /// reproducible run must repeat exactly.
    type Fingerprint = BTreeMap<(CallId, u32), Vec<(u32, ProviderEvent, i64)>>;

    fn fingerprint(h: &Harness) -> Fingerprint {
        by_attempt(&h.got)
            .into_iter()
            .map(|(k, rs)| {
                let rs = rs
                    .into_iter()
                    .map(|r| (r.provider_seq.unwrap_or(0), r.event, (r.at - start()).num_seconds()));
                (k, rs.collect())
            })
            .collect()
    }

    async fn run_random(config: SimConfig, calls: impl Iterator<Item = i64>) -> Harness {
        let mut h = Harness::new(config);
        let mut n = 0;
        for call in calls {
            h.place(request(call, &format!("+3361234{call:04}"))).await;
            n += 1;
        }
        h.run_until_ended(n).await;
        h
    }

    #[tokio::test]
    async fn same_seed_same_reports_whatever_the_placement_order() {
        let config = SimConfig { seed: 7, ..SimConfig::default() };
        let forward = run_random(config.clone(), 1..=200).await;
        let backward = run_random(config, (1..=200).rev()).await;
        assert_well_formed(&forward.got);
        assert_eq!(fingerprint(&forward), fingerprint(&backward));
        assert_eq!(forward.sim.stats(), backward.sim.stats());
    }

    #[tokio::test]
    async fn different_seeds_give_different_customers() {
        let a = run_random(SimConfig { seed: 1, ..SimConfig::default() }, 1..=100).await;
        let b = run_random(SimConfig { seed: 2, ..SimConfig::default() }, 1..=100).await;
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[tokio::test]
    async fn observed_rates_follow_the_config() {
        const N: usize = 2_000;
        let weights = ChoiceWeights {
            confirm: 0.5,
            reschedule: 0.2,
            decline: 0.1,
            courier: 0.1,
            no_input: 0.05,
            invalid_key_then_valid: 0.05,
        };
        let config = SimConfig {
            seed: 2026,
            answer_rate: 0.7,
            busy_rate: 0.2,
            voicemail_rate: 0.3,
            fail_rate: 0.02,
            choice_weights: weights.clone(),
            // Everyone who wants to answer fits in the ring timeout.
            ring_secs: (2, RING_TIMEOUT - 5),
            ..SimConfig::default()
        };
        let mut h = Harness::new(config);
        for call in 1..=N as i64 {
            h.place(request(call, &format!("+3361{call:07}"))).await;
        }
        // Coarse steps: the attempts keep their own timelines.
        let all_ended = h
            .run_until(7, 1_000, |got| {
                got.iter().filter(|r| matches!(r.event, ProviderEvent::Ended { .. })).count() >= N
            })
            .await;
        assert!(all_ended);
        assert_well_formed(&h.got);

        let s = h.sim.stats();
        let n = N as f64;
        // Tolerances are about four standard deviations of each proportion.
        let close = |what: &str, observed: f64, expected: f64, tol: f64| {
            assert!(
                (observed - expected).abs() <= tol,
                "{what}: observed {observed:.3}, expected {expected:.3}"
            );
        };
        assert_eq!(s.placed, N as u64);
        assert_eq!(s.live, 0);
        assert_eq!(s.hung_up + s.no_answer + s.busy + s.voicemail + s.failed, N as u64);
        close("fail rate", s.failed as f64 / n, 0.02, 0.0125);
        let carried = (N as u64 - s.failed) as f64;
        close("answer rate", s.answered as f64 / carried, 0.7, 0.04);
        let missed = carried - s.answered as f64;
        close("busy share", s.busy as f64 / missed, 0.2, 0.065);
        close("voicemail share", s.voicemail as f64 / missed, 0.3, 0.075);
        assert_eq!(s.answered, s.hung_up);

        let answered = s.answered as f64;
        let pressed = |c: char| s.keys.get(&c).copied().unwrap_or(0) as f64;
        close("invalid first", pressed('9') / answered, 0.05, 0.025);
        // Mapped keys come from direct choices plus the second press of the
        // "invalid then valid" customers, who pick with the same key weights.
        for (c, w) in [('1', 0.5), ('2', 0.2), ('3', 0.1), ('0', 0.1)] {
            close(&format!("key {c}"), pressed(c) / answered, w * (1.0 + 0.05 / 0.9), 0.055);
        }
        let no_key = h
            .got
            .iter()
            .filter(|r| matches!(r.event, ProviderEvent::Ended { answered: true, key: None, .. }))
            .count() as f64;
        close("no input", no_key / answered, 0.05, 0.025);
    }

    fn scripted(overrides: &[(&str, Behaviour)]) -> SimConfig {
        SimConfig {
            overrides: overrides.iter().map(|(phone, b)| ((*phone).to_owned(), b.clone())).collect(),
            ..SimConfig::default()
        }
    }

    fn ended(result: EndReason, answered: bool, key: Option<Key>) -> ProviderEvent {
        ProviderEvent::Ended { result, answered, key, talk_secs: None }
    }

    #[tokio::test]
    async fn the_talk_time_runs_from_the_answer_to_the_end() {
        let mut h = Harness::new(scripted(&[
            ("+33600000001", Behaviour::HangsUpAfter { secs: 2 }),
            ("+33600000002", Behaviour::Answer { key: Some(key('1')) }),
            ("+33600000003", Behaviour::Voicemail),
        ]));
        for call in 1..=3 {
            h.place(request(call, &format!("+3360000000{call}"))).await;
        }
        h.run_until_ended(3).await;
        let talk = |call: i64| {
            let rs = h.of(call);
            let answered = rs.iter().find(|r| r.event == ProviderEvent::Answered { voicemail: false });
            let Some(ProviderReport { event: ProviderEvent::Ended { talk_secs, .. }, at, .. }) = rs.last()
            else {
                panic!("call {call} ended");
            };
            (*talk_secs, answered.map(|a| u32::try_from((*at - a.at).num_seconds()).expect("forward")))
        };
        assert_eq!(talk(1), (Some(2), Some(2)), "hung up 2 s after answering, without a key");
        let (reported, measured) = talk(2);
        assert!(reported.is_some() && reported == measured, "{reported:?} vs {measured:?}");
        assert_eq!(talk(3), (None, None), "a voicemail is no answer: no talk time");
    }

    #[tokio::test]
    async fn scripted_customers_do_what_their_override_says() {
        let mut h = Harness::new(scripted(&[
            ("+33600000001", Behaviour::NoAnswer),
            ("+33600000002", Behaviour::Busy),
            ("+33600000003", Behaviour::Voicemail),
            ("+33600000004", Behaviour::Fail),
            ("+33600000005", Behaviour::Answer { key: Some(key('2')) }),
            ("+33600000006", Behaviour::Answer { key: None }),
            ("+33600000007", Behaviour::Answer { key: Some(key('7')) }),
        ]));
        for call in 1..=7 {
            h.place(request(call, &format!("+3360000000{call}"))).await;
        }
        h.run_until_ended(7).await;
        assert_well_formed(&h.got);

        let no_answer = h.of(1);
        assert_eq!(h.events(1), vec![ProviderEvent::Ringing, ended(EndReason::NoAnswer, false, None)]);
        assert_eq!(no_answer[0].at, start(), "rings as soon as it is placed");
        assert_eq!(no_answer[1].at - no_answer[0].at, Duration::seconds(i64::from(RING_TIMEOUT)));

        assert_eq!(h.events(2), vec![ended(EndReason::Busy, false, None)]);
        assert_eq!(
            h.events(3),
            vec![
                ProviderEvent::Ringing,
                ProviderEvent::Answered { voicemail: true },
                ended(EndReason::Voicemail, false, None)
            ]
        );
        assert_eq!(h.events(4), vec![ended(EndReason::Failed, false, None)]);
        let answered = [ProviderEvent::Ringing, ProviderEvent::Answered { voicemail: false }];
        let with = |tail: &[ProviderEvent]| [&answered[..], tail].concat();
        assert_eq!(
            h.events(5),
            with(&[
                ProviderEvent::KeyPressed { key: key('2') },
                ended(EndReason::HungUp, true, Some(key('2')))
            ])
        );
        assert_eq!(h.events(6), with(&[ended(EndReason::HungUp, true, None)]));
        // An unmapped key is reported but is no choice.
        assert_eq!(
            h.events(7),
            with(&[ProviderEvent::KeyPressed { key: key('7') }, ended(EndReason::HungUp, true, None)])
        );

        let s = h.sim.stats();
        assert_eq!(
            (s.placed, s.answered, s.no_answer, s.busy, s.voicemail, s.failed, s.hung_up),
            (7, 3, 1, 1, 1, 1, 3)
        );
        assert_eq!(s.keys, BTreeMap::from([('2', 1), ('7', 1)]));
    }

    #[tokio::test]
    async fn scripted_answer_picks_up_within_a_short_ring_timeout() {
        let mut config = scripted(&[("+33600000001", Behaviour::Answer { key: Some(key('1')) })]);
        config.ring_secs = (30, 30);
        let mut h = Harness::new(config);
        h.place(PlaceCall { ring_timeout_secs: 10, ..request(1, "+33600000001") }).await;
        h.run_until_ended(1).await;
        let rs = h.of(1);
        assert_eq!(rs[1].event, ProviderEvent::Answered { voicemail: false });
        assert!(rs[1].at - rs[0].at < Duration::seconds(10));
    }

    #[tokio::test]
    async fn a_random_override_is_the_seeded_customer() {
        let plain = run_random(SimConfig::default(), 1..=20).await;
        let overridden = {
            let phones: Vec<String> = (1..=20).map(|call| format!("+3361234{call:04}")).collect();
            let overrides: Vec<(&str, Behaviour)> =
                phones.iter().map(|p| (p.as_str(), Behaviour::Random)).collect();
            run_random(scripted(&overrides), 1..=20).await
        };
        assert_eq!(fingerprint(&plain), fingerprint(&overridden));
    }

    #[tokio::test]
    async fn an_invalid_key_is_followed_by_a_valid_one() {
        let config = SimConfig {
            answer_rate: 1.0,
            fail_rate: 0.0,
            ring_secs: (5, 5),
            choice_weights: ChoiceWeights {
                confirm: 0.0,
                reschedule: 0.0,
                decline: 1.0,
                courier: 0.0,
                no_input: 0.0,
                invalid_key_then_valid: 1.0,
            },
            ..SimConfig::default()
        };
        let h = run_random(config, 1..=40).await;
        assert_well_formed(&h.got);
        let mut retried = 0;
        for call in 1..=40 {
            let events = h.events(call);
            let presses: Vec<Key> = events
                .iter()
                .filter_map(|e| match e {
                    ProviderEvent::KeyPressed { key } => Some(*key),
                    _ => None,
                })
                .collect();
            if presses == [key(INVALID_KEY), key('3')] {
                retried += 1;
                let pressed_at: Vec<DateTime<Utc>> = h
                    .of(call)
                    .iter()
                    .filter(|r| matches!(r.event, ProviderEvent::KeyPressed { .. }))
                    .map(|r| r.at)
                    .collect();
                assert!(pressed_at[1] - pressed_at[0] >= Duration::seconds(i64::from(MENU_REPEAT_SECS.0)));
            } else {
                assert_eq!(presses, [key('3')]);
            }
            assert_eq!(events.last(), Some(&ended(EndReason::HungUp, true, Some(key('3')))));
        }
        assert!((10..=30).contains(&retried), "about half retried, got {retried}");
    }

    #[tokio::test]
    async fn placing_an_attempt_twice_rings_once() {
        let mut h = Harness::new(scripted(&[("+33600000001", Behaviour::NoAnswer)]));
        h.place(request(1, "+33600000001")).await;
        h.settle().await;
        h.place(request(1, "+33600000001")).await;
        h.run_until_ended(1).await;
        // Even after it ended, the same attempt key never rings again.
        h.place(request(1, "+33600000001")).await;
        h.clock.advance(Duration::seconds(i64::from(RING_TIMEOUT) * 2));
        h.settle().await;

        assert_eq!(h.sim.placed(), vec![PlaceCall::attempt_key(CallId(1), 1)]);
        assert_eq!(h.sim.duplicate_places(), 2);
        assert_eq!(h.events(1), vec![ProviderEvent::Ringing, ended(EndReason::NoAnswer, false, None)]);
        assert_eq!(h.sim.stats().placed, 1);
    }

    #[tokio::test]
    async fn hang_up_ends_an_attempt_early_with_what_happened_so_far() {
        let mut h = Harness::new(scripted(&[
            ("+33600000001", Behaviour::Answer { key: Some(key('1')) }),
            ("+33600000002", Behaviour::NoAnswer),
        ]));
        let talking = request(1, "+33600000001");
        let ringing = request(2, "+33600000002");
        h.place(talking.clone()).await;
        h.place(ringing.clone()).await;
        let answered = h
            .run_until(1, 1_000, |got| {
                got.iter().any(|r| r.event == ProviderEvent::Answered { voicemail: false })
            })
            .await;
        assert!(answered);
        assert!(h.sim.is_live(&talking.attempt_key).await.expect("is_live"));

        h.sim.hang_up(&aref(&talking.attempt_key)).await.expect("hang up");
        h.sim.hang_up(&aref(&ringing.attempt_key)).await.expect("hang up");
        h.sim.hang_up(&aref("call-999-1")).await.expect("unknown keys are fine");
        h.settle().await;

        assert_eq!(
            h.events(1),
            vec![
                ProviderEvent::Ringing,
                ProviderEvent::Answered { voicemail: false },
                ended(EndReason::HungUp, true, None)
            ]
        );
        assert_eq!(h.events(2), vec![ProviderEvent::Ringing, ended(EndReason::NoAnswer, false, None)]);
        // Ended at the moment of the hang-up, long before the ring timeout.
        assert!(h.of(2)[1].at - start() < Duration::seconds(i64::from(RING_TIMEOUT)));
        for req in [&talking, &ringing] {
            assert!(!h.sim.is_live(&req.attempt_key).await.expect("is_live"));
        }

        // Nothing more arrives, however long we wait.
        h.clock.advance(Duration::hours(1));
        h.settle().await;
        assert_well_formed(&h.got);
        assert_eq!(h.got.len(), 5);
        let s = h.sim.stats();
        assert_eq!((s.cancelled, s.hung_up, s.no_answer, s.live), (2, 1, 1, 0));
    }

    #[tokio::test]
    async fn is_live_until_the_ended_report() {
        let mut h = Harness::new(scripted(&[("+33600000001", Behaviour::Voicemail)]));
        let req = request(1, "+33600000001");
        assert!(!h.sim.is_live(&req.attempt_key).await.expect("is_live"), "not placed yet");
        h.place(req.clone()).await;
        let mut saw_live = false;
        for _ in 0..1_000 {
            h.clock.advance(Duration::seconds(1));
            h.settle().await;
            let ended = h.got.iter().any(|r| matches!(r.event, ProviderEvent::Ended { .. }));
            let live = h.sim.is_live(&req.attempt_key).await.expect("is_live");
            assert_eq!(live, !ended, "live exactly until Ended was received");
            saw_live |= live;
            if ended {
                break;
            }
        }
        assert!(saw_live);
        assert!(!h.sim.is_live(&req.attempt_key).await.expect("is_live"));
    }

    #[tokio::test]
    async fn a_closed_report_channel_ends_attempts_quietly() {
        let h = Harness::new(scripted(&[("+33600000001", Behaviour::Answer { key: Some(key('1')) })]));
        let req = request(1, "+33600000001");
        h.place(req.clone()).await;
        let Harness { clock, sim, rx, .. } = h;
        drop(rx);
        // The task notices at its next report, once the customer answers.
        let mut steps = 0;
        while sim.is_live(&req.attempt_key).await.expect("is_live") {
            steps += 1;
            assert!(steps < 1_000, "the attempt task ended");
            clock.advance(Duration::seconds(1));
            for _ in 0..16 {
                tokio::task::yield_now().await;
            }
        }
        assert!(matches!(sim.place(request(2, "+33600000002")).await, Err(TelephonyError::Unavailable(_))));
        assert_eq!(sim.placed().len(), 1);
    }

    #[cfg(feature = "demo")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_a_fast_scaled_clock() {
        use callahead_core::clock::ScaledClock;
        const N: i64 = 300;
        // A morning of calls in well under a second of real time.
        let clock = Arc::new(ScaledClock::new(start(), 20_000.0));
        let (tx, mut rx) = mpsc::channel(1 << 12);
        let sim = Simulator::new(SimConfig::default(), clock, tx);
        for call in 1..=N {
            sim.place(request(call, &format!("+3361{call:07}"))).await.expect("placed");
        }
        let mut got = Vec::new();
        let mut ended = 0;
        while ended < N {
            // Generous bound: a lost report must fail the test, not hang it.
            let report = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
                .await
                .expect("reports keep coming")
                .expect("channel open");
            ended += i64::from(matches!(report.event, ProviderEvent::Ended { .. }));
            got.push(report);
        }
        assert_well_formed(&got);
        let s = sim.stats();
        assert_eq!((s.placed, s.live), (N as u64, 0));
        assert!(s.answered > 0);
    }
}
