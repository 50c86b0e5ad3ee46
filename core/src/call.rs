//! A smart call's life, as pure rules: statuses, outcomes, what a key press
//! means, and how one provider event moves a call. The server's orchestrator
//! applies these inside its transactions; the client uses the same types to
//! show them. Nothing here does I/O.
//!
//! Two lessons from peers' bug trackers shape this module:
//! * provider callbacks arrive late, twice and out of order: a call's status
//!   only moves forward, and an event for an earlier phase is ignored;
//! * a provider error is not an outcome: an attempt's [`AttemptResult`] keeps
//!   "failed" apart from "no answer", and only the state machine decides the
//!   call's [`Outcome`] when attempts run out.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a smart call is. `Scheduled` covers both "waiting for the first
/// attempt" and "waiting to retry" (see `attempts_made`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Scheduled,
    Dialing,
    Ringing,
    Answered,
    Finished,
    Cancelled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 6] = [
        CallStatus::Scheduled,
        CallStatus::Dialing,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Finished,
        CallStatus::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, CallStatus::Finished | CallStatus::Cancelled)
    }

    /// Active calls count against the per-courier cap.
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Scheduled => "scheduled",
            CallStatus::Dialing => "dialing",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Finished => "finished",
            CallStatus::Cancelled => "cancelled",
        }
    }

    /// Order within one attempt; used to refuse backward moves.
    fn phase_rank(self) -> u8 {
        match self {
            CallStatus::Scheduled => 0,
            CallStatus::Dialing => 1,
            CallStatus::Ringing => 2,
            CallStatus::Answered => 3,
            CallStatus::Finished | CallStatus::Cancelled => 4,
        }
    }
}

/// What a finished smart call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Confirmed,
    RescheduleRequested,
    Declined,
    WantsCourier,
    /// Every attempt ended without a key press (no answer, busy, voicemail,
    /// hung up without choosing).
    NoAnswer,
    /// The last attempt failed on the provider's side (not the customer's).
    Failed,
    /// The delivery window passed before calling hours allowed a call.
    OutsideCallingHours,
    /// The last attempt was cut by a server stop (a crash or a restart), not
    /// by the customer or the provider: nobody knows what the customer heard.
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Confirmed,
        Outcome::RescheduleRequested,
        Outcome::Declined,
        Outcome::WantsCourier,
        Outcome::NoAnswer,
        Outcome::Failed,
        Outcome::OutsideCallingHours,
        Outcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::RescheduleRequested => "reschedule_requested",
            Outcome::Declined => "declined",
            Outcome::WantsCourier => "wants_courier",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
            Outcome::OutsideCallingHours => "outside_calling_hours",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// True when the customer actively answered (a key press proves a human).
    pub fn is_reached(self) -> bool {
        !matches!(
            self,
            Outcome::NoAnswer | Outcome::Failed | Outcome::OutsideCallingHours | Outcome::Interrupted
        )
    }
}

/// A keypad digit (`0`-`9`, `*`, `#`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct Key(char);

impl Key {
    pub fn new(c: char) -> Option<Key> {
        (c.is_ascii_digit() || c == '*' || c == '#').then_some(Key(c))
    }
    pub fn as_char(self) -> char {
        self.0
    }
    /// The IVR key map: 1 confirm, 2 reschedule, 3 decline, 0 talk to the
    /// courier. Any other key replays the menu.
    pub fn outcome(self) -> Option<Outcome> {
        match self.0 {
            '1' => Some(Outcome::Confirmed),
            '2' => Some(Outcome::RescheduleRequested),
            '3' => Some(Outcome::Declined),
            '0' => Some(Outcome::WantsCourier),
            _ => None,
        }
    }
    /// The key a customer presses to choose `outcome`, if one exists.
    pub fn for_outcome(outcome: Outcome) -> Option<Key> {
        match outcome {
            Outcome::Confirmed => Some(Key('1')),
            Outcome::RescheduleRequested => Some(Key('2')),
            Outcome::Declined => Some(Key('3')),
            Outcome::WantsCourier => Some(Key('0')),
            Outcome::NoAnswer | Outcome::Failed | Outcome::OutsideCallingHours | Outcome::Interrupted => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for Key {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Key::new(c).ok_or_else(|| format!("not a keypad key: {s:?}")),
            _ => Err(format!("a key is one character, got {s:?}")),
        }
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.0.to_string()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The customer answered and pressed a mapped key.
    Completed,
    /// Answered, heard the message, hung up without choosing.
    NoInput,
    /// Picked up but hung up before hearing `min_heard_secs` of the
    /// message: not an answer (the policy's definition), retried.
    HungUpEarly,
    NoAnswer,
    Busy,
    /// Reached a voicemail: not "answered".
    Voicemail,
    /// The provider could not place or carry the call.
    Failed,
    /// The smart call was cancelled while this attempt ran.
    Cancelled,
    /// The server stopped while the attempt ran and the provider no longer
    /// knows it; it counts as an attempt so nobody is called twice for it,
    /// but it is the server's fault, not the provider's (`Failed`) nor the
    /// customer's (`NoAnswer`).
    Interrupted,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Completed => "completed",
            AttemptResult::NoInput => "no_input",
            AttemptResult::HungUpEarly => "hung_up_early",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Busy => "busy",
            AttemptResult::Voicemail => "voicemail",
            AttemptResult::Failed => "failed",
            AttemptResult::Cancelled => "cancelled",
            AttemptResult::Interrupted => "interrupted",
        }
    }
}

macro_rules! str_enum_from_str {
    ($t:ty) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.to_owned()))
                    .map_err(|_| format!("unknown {}: {s:?}", stringify!($t)))
            }
        }
    };
}
str_enum_from_str!(CallStatus);
str_enum_from_str!(Outcome);
str_enum_from_str!(AttemptResult);

/// What a telephony provider reports about one attempt. `Ended` is the final
/// callback and carries the summary (answered? key?), because real providers
/// send it even when an intermediate callback was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderEvent {
    Ringing,
    Answered {
        voicemail: bool,
    },
    KeyPressed {
        key: Key,
    },
    /// After "talk to the courier": whether the provider connected the
    /// customer to the courier's phone (false: the courier was busy or did
    /// not pick up, and the customer was told they will be called back).
    Bridged {
        connected: bool,
    },
    Ended {
        result: EndReason,
        answered: bool,
        key: Option<Key>,
        /// Seconds from the answer to the end, as the provider measured
        /// them (`None`: not reported; the orchestrator then measures from
        /// its own answer record).
        #[serde(default)]
        talk_secs: Option<u32>,
    },
}

/// The provider's view of why a call ended, before our rules interpret it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    HungUp,
    NoAnswer,
    Busy,
    Voicemail,
    Failed,
}

/// The call as the transition function needs to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallCursor {
    pub status: CallStatus,
    /// Number of the attempt in progress, or of the last one (0 = none yet).
    pub attempt: u32,
    pub max_attempts: u32,
    /// The policy's "answered": heard at least this many seconds.
    pub min_heard_secs: u32,
}

/// The attempt an event is about, as recorded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptCursor {
    pub ringing: bool,
    pub answered: bool,
    pub key: Option<Key>,
    pub ended: bool,
}

/// What to do with one provider event. The orchestrator writes exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Late, duplicate or out-of-order: record nothing.
    Ignore(&'static str),
    /// Record on the attempt; move the call to `status` if `Some`.
    Ringing {
        call_status: Option<CallStatus>,
    },
    Answered {
        call_status: Option<CallStatus>,
    },
    /// A key was pressed. `outcome` finishes the call now (a key press
    /// proves a human), unless the call is already terminal.
    KeyPressed {
        key: Key,
        outcome: Option<Outcome>,
    },
    /// The customer was put through to the courier, or could not be.
    Bridged {
        connected: bool,
    },
    /// The attempt ended; `then` says what the call does next.
    AttemptEnded {
        result: AttemptResult,
        key: Option<Key>,
        then: AfterAttempt,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// The call was already decided (key pressed, or cancelled).
    Nothing,
    /// Schedule attempt `attempt + 1` after the policy's spacing.
    Retry,
    /// Schedule attempt `attempt + 1` promptly: the previous one was cut by
    /// the server itself, so the customer has no reason to be left alone
    /// for the whole spacing.
    RetrySoon,
    Finish(Outcome),
}

/// The one transition function for provider events.
pub fn on_provider_event(
    call: CallCursor,
    event_attempt: u32,
    attempt: AttemptCursor,
    event: &ProviderEvent,
) -> Transition {
    if attempt.ended {
        return Transition::Ignore("attempt already ended");
    }
    // Events about an older attempt can only close that attempt's record.
    let current = event_attempt == call.attempt && !call.status.is_terminal();
    let move_to =
        |target: CallStatus| (current && target.phase_rank() > call.status.phase_rank()).then_some(target);
    match event {
        ProviderEvent::Ringing => {
            if attempt.ringing || attempt.answered {
                Transition::Ignore("ringing after ringing or answer")
            } else {
                Transition::Ringing { call_status: move_to(CallStatus::Ringing) }
            }
        }
        ProviderEvent::Answered { voicemail } => {
            if attempt.answered {
                Transition::Ignore("answered twice")
            } else if *voicemail {
                // A machine is not an answer; wait for the provider's end.
                Transition::Ignore("voicemail pickup is not an answer")
            } else {
                Transition::Answered { call_status: move_to(CallStatus::Answered) }
            }
        }
        ProviderEvent::KeyPressed { key } => {
            if attempt.key.is_some() {
                return Transition::Ignore("a choice was already recorded");
            }
            match key.outcome() {
                None => Transition::Ignore("unmapped key; the menu repeats"),
                Some(outcome) => Transition::KeyPressed { key: *key, outcome: current.then_some(outcome) },
            }
        }
        ProviderEvent::Bridged { connected } => {
            if attempt.key.and_then(Key::outcome) == Some(Outcome::WantsCourier) {
                Transition::Bridged { connected: *connected }
            } else {
                Transition::Ignore("a bridge without a request to talk to the courier")
            }
        }
        ProviderEvent::Ended { result, answered, key, talk_secs } => {
            let key = attempt.key.or(key.filter(|k| k.outcome().is_some()));
            // Unknown talk time: the provider said "answered", trust it.
            let heard = talk_secs.is_none_or(|t| t >= call.min_heard_secs);
            let result = match (result, key) {
                (_, Some(_)) => AttemptResult::Completed,
                (EndReason::HungUp, None) if (*answered || attempt.answered) && heard => {
                    AttemptResult::NoInput
                }
                (EndReason::HungUp, None) if *answered || attempt.answered => AttemptResult::HungUpEarly,
                (EndReason::HungUp, None) => AttemptResult::NoAnswer,
                (EndReason::NoAnswer, None) => AttemptResult::NoAnswer,
                (EndReason::Busy, None) => AttemptResult::Busy,
                (EndReason::Voicemail, None) => AttemptResult::Voicemail,
                (EndReason::Failed, None) => AttemptResult::Failed,
            };
            let then = if !current {
                AfterAttempt::Nothing
            } else if let Some(outcome) = key.and_then(Key::outcome) {
                // The key event itself was lost; the summary still decides.
                AfterAttempt::Finish(outcome)
            } else if call.attempt >= call.max_attempts {
                AfterAttempt::Finish(if result == AttemptResult::Failed {
                    Outcome::Failed
                } else {
                    Outcome::NoAnswer
                })
            } else {
                AfterAttempt::Retry
            };
            Transition::AttemptEnded { result, key, then }
        }
    }
}

/// What happens when an attempt is found interrupted (server restart, the
/// provider lost it): it counts, so the customer is never called twice for it
/// (docs/adr/0002), and the policy's attempts are never exceeded; but the
/// next attempt comes promptly, and a call whose last attempt was cut ends
/// as [`Outcome::Interrupted`], never blaming the provider or the customer.
pub fn after_interrupted(call: CallCursor) -> AfterAttempt {
    if call.status.is_terminal() {
        AfterAttempt::Nothing
    } else if call.attempt >= call.max_attempts {
        AfterAttempt::Finish(Outcome::Interrupted)
    } else {
        AfterAttempt::RetrySoon
    }
}

/// How an attempt left open by a stopped server is closed when its call was
/// already decided (a key press finished the call while the goodbye played,
/// or the call was cancelled): by what was recorded, never as a new choice.
pub fn closing_result(call_status: CallStatus, attempt: AttemptCursor) -> AttemptResult {
    if attempt.key.and_then(Key::outcome).is_some() {
        AttemptResult::Completed
    } else if call_status == CallStatus::Cancelled {
        AttemptResult::Cancelled
    } else {
        AttemptResult::Interrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(status: CallStatus, attempt: u32) -> CallCursor {
        CallCursor { status, attempt, max_attempts: 3, min_heard_secs: 5 }
    }
    fn key(c: char) -> Key {
        Key::new(c).expect("valid key")
    }
    fn ended(result: EndReason, answered: bool, key: Option<Key>) -> ProviderEvent {
        ProviderEvent::Ended { result, answered, key, talk_secs: None }
    }

    #[test]
    fn a_key_press_finishes_the_call_with_its_outcome() {
        let t = on_provider_event(
            call(CallStatus::Answered, 1),
            1,
            AttemptCursor { ringing: true, answered: true, ..Default::default() },
            &ProviderEvent::KeyPressed { key: key('2') },
        );
        assert_eq!(t, Transition::KeyPressed { key: key('2'), outcome: Some(Outcome::RescheduleRequested) });
    }

    #[test]
    fn a_bridge_is_recorded_only_after_the_customer_asked_for_the_courier() {
        let answered = AttemptCursor { ringing: true, answered: true, ..Default::default() };
        let asked = AttemptCursor { key: Some(key('0')), ..answered };
        let bridged = ProviderEvent::Bridged { connected: true };
        let t = on_provider_event(call(CallStatus::Finished, 1), 1, asked, &bridged);
        assert_eq!(t, Transition::Bridged { connected: true });
        let confirmed = AttemptCursor { key: Some(key('1')), ..answered };
        assert!(matches!(
            on_provider_event(call(CallStatus::Finished, 1), 1, confirmed, &bridged),
            Transition::Ignore(_)
        ));
        let ended = AttemptCursor { ended: true, ..asked };
        assert!(matches!(
            on_provider_event(call(CallStatus::Finished, 1), 1, ended, &bridged),
            Transition::Ignore(_)
        ));
    }

    #[test]
    fn unmapped_keys_are_ignored_and_the_menu_repeats() {
        let t = on_provider_event(
            call(CallStatus::Answered, 1),
            1,
            AttemptCursor::default(),
            &ProviderEvent::KeyPressed { key: key('7') },
        );
        assert!(matches!(t, Transition::Ignore(_)));
    }

    #[test]
    fn status_never_moves_backward() {
        let t = on_provider_event(
            call(CallStatus::Answered, 1),
            1,
            AttemptCursor { ringing: false, answered: true, ..Default::default() },
            &ProviderEvent::Ringing,
        );
        assert!(matches!(t, Transition::Ignore(_)));
        // A late ringing for the current attempt after the call finished
        // changes nothing on the call.
        let t = on_provider_event(
            call(CallStatus::Finished, 1),
            1,
            AttemptCursor::default(),
            &ProviderEvent::Ringing,
        );
        assert_eq!(t, Transition::Ringing { call_status: None });
    }

    #[test]
    fn late_completed_does_not_override_a_decided_call() {
        // The call finished on key '3'; the hang-up afterwards closes the
        // attempt record and nothing else.
        let t = on_provider_event(
            call(CallStatus::Finished, 2),
            2,
            AttemptCursor { ringing: true, answered: true, key: Some(key('3')), ended: false },
            &ended(EndReason::HungUp, true, None),
        );
        assert_eq!(
            t,
            Transition::AttemptEnded {
                result: AttemptResult::Completed,
                key: Some(key('3')),
                then: AfterAttempt::Nothing
            }
        );
    }

    #[test]
    fn duplicate_end_is_ignored() {
        let t = on_provider_event(
            call(CallStatus::Scheduled, 1),
            1,
            AttemptCursor { ended: true, ..Default::default() },
            &ended(EndReason::NoAnswer, false, None),
        );
        assert!(matches!(t, Transition::Ignore(_)));
    }

    #[test]
    fn no_answer_retries_until_the_last_attempt_then_finishes() {
        for (n, then) in
            [(1, AfterAttempt::Retry), (2, AfterAttempt::Retry), (3, AfterAttempt::Finish(Outcome::NoAnswer))]
        {
            let t = on_provider_event(
                call(CallStatus::Ringing, n),
                n,
                AttemptCursor { ringing: true, ..Default::default() },
                &ended(EndReason::NoAnswer, false, None),
            );
            assert_eq!(t, Transition::AttemptEnded { result: AttemptResult::NoAnswer, key: None, then });
        }
    }

    #[test]
    fn provider_failure_is_kept_apart_from_no_answer() {
        let t = on_provider_event(
            call(CallStatus::Dialing, 3),
            3,
            AttemptCursor::default(),
            &ended(EndReason::Failed, false, None),
        );
        assert_eq!(
            t,
            Transition::AttemptEnded {
                result: AttemptResult::Failed,
                key: None,
                then: AfterAttempt::Finish(Outcome::Failed)
            }
        );
    }

    #[test]
    fn voicemail_is_not_an_answer() {
        let t = on_provider_event(
            call(CallStatus::Ringing, 1),
            1,
            AttemptCursor { ringing: true, ..Default::default() },
            &ProviderEvent::Answered { voicemail: true },
        );
        assert!(matches!(t, Transition::Ignore(_)));
        let t = on_provider_event(
            call(CallStatus::Ringing, 1),
            1,
            AttemptCursor { ringing: true, ..Default::default() },
            &ended(EndReason::Voicemail, false, None),
        );
        assert_eq!(
            t,
            Transition::AttemptEnded {
                result: AttemptResult::Voicemail,
                key: None,
                then: AfterAttempt::Retry
            }
        );
    }

    #[test]
    fn a_lost_key_event_is_recovered_from_the_final_summary() {
        let t = on_provider_event(
            call(CallStatus::Answered, 1),
            1,
            AttemptCursor { ringing: true, answered: true, ..Default::default() },
            &ended(EndReason::HungUp, true, Some(key('1'))),
        );
        assert_eq!(
            t,
            Transition::AttemptEnded {
                result: AttemptResult::Completed,
                key: Some(key('1')),
                then: AfterAttempt::Finish(Outcome::Confirmed)
            }
        );
    }

    #[test]
    fn events_for_an_older_attempt_never_move_the_call() {
        let t = on_provider_event(
            call(CallStatus::Dialing, 2),
            1,
            AttemptCursor::default(),
            &ProviderEvent::KeyPressed { key: key('1') },
        );
        assert_eq!(t, Transition::KeyPressed { key: key('1'), outcome: None });
    }

    #[test]
    fn answered_without_a_choice_is_no_input() {
        let t = on_provider_event(
            call(CallStatus::Answered, 1),
            1,
            AttemptCursor { ringing: true, answered: true, ..Default::default() },
            &ended(EndReason::HungUp, true, None),
        );
        assert_eq!(
            t,
            Transition::AttemptEnded { result: AttemptResult::NoInput, key: None, then: AfterAttempt::Retry }
        );
    }

    #[test]
    fn hanging_up_before_hearing_the_message_is_not_an_answer() {
        let answered = AttemptCursor { ringing: true, answered: true, ..Default::default() };
        let hung_up = |talk_secs| ProviderEvent::Ended {
            result: EndReason::HungUp,
            answered: true,
            key: None,
            talk_secs: Some(talk_secs),
        };
        let result = |event: &ProviderEvent| match on_provider_event(
            call(CallStatus::Answered, 3),
            3,
            answered,
            event,
        ) {
            Transition::AttemptEnded { result, then, .. } => (result, then),
            other => panic!("unexpected {other:?}"),
        };
        // The last attempt: too short is "no answer", never "reached".
        assert_eq!(
            result(&hung_up(4)),
            (AttemptResult::HungUpEarly, AfterAttempt::Finish(Outcome::NoAnswer))
        );
        assert_eq!(result(&hung_up(5)), (AttemptResult::NoInput, AfterAttempt::Finish(Outcome::NoAnswer)));
        let early = on_provider_event(call(CallStatus::Answered, 1), 1, answered, &hung_up(1));
        assert_eq!(
            early,
            Transition::AttemptEnded {
                result: AttemptResult::HungUpEarly,
                key: None,
                then: AfterAttempt::Retry
            }
        );
        // A key press proves a human heard enough, however fast.
        let pressed = AttemptCursor { key: Some(key('1')), ..answered };
        let fast = on_provider_event(call(CallStatus::Answered, 1), 1, pressed, &hung_up(1));
        assert!(matches!(fast, Transition::AttemptEnded { result: AttemptResult::Completed, .. }));
    }

    #[test]
    fn interrupted_attempts_count_are_retried_soon_and_never_blame_the_provider() {
        assert_eq!(after_interrupted(call(CallStatus::Dialing, 1)), AfterAttempt::RetrySoon);
        assert_eq!(
            after_interrupted(call(CallStatus::Ringing, 3)),
            AfterAttempt::Finish(Outcome::Interrupted)
        );
        assert_eq!(after_interrupted(call(CallStatus::Finished, 2)), AfterAttempt::Nothing);
        assert!(!Outcome::Interrupted.is_reached());
    }

    #[test]
    fn an_attempt_left_open_after_a_decided_call_closes_by_what_was_recorded() {
        let pressed = AttemptCursor { ringing: true, answered: true, key: Some(key('2')), ended: false };
        assert_eq!(closing_result(CallStatus::Finished, pressed), AttemptResult::Completed);
        let answered = AttemptCursor { key: None, ..pressed };
        assert_eq!(closing_result(CallStatus::Cancelled, answered), AttemptResult::Cancelled);
        assert_eq!(closing_result(CallStatus::Finished, answered), AttemptResult::Interrupted);
    }

    #[test]
    fn enums_round_trip_as_snake_case_strings() {
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse::<CallStatus>(), Ok(s));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert_eq!(serde_json::to_string(&key('0')).ok().as_deref(), Some("\"0\""));
        assert!(serde_json::from_str::<Key>("\"12\"").is_err());
    }
}
