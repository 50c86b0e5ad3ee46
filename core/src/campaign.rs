//! Campaigns and order-event triggers (issue #5): what a CRM sets up so
//! customers are reminded without anyone retyping data. A campaign is a
//! sequence of steps (an SMS with a link, a robot call, a hand-over to an
//! operator), each some time after the previous one; a customer who reacts
//! at any step (uses the link, or answers a call with a choice) leaves it.
//! A trigger rule enrolls the order's stop in a campaign when the CRM posts
//! an order event of its type, and ends that enrollment when one of its
//! `cancel_on` types arrives ("3 days after the invoice, still unpaid" is a
//! campaign whose first step waits 3 days, cancelled on `invoice_paid`).

use crate::ids::StopId;
use crate::validate::{self, FieldError};
use crate::wire::{ErrorCode, PolicyOverride};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

pub const MAX_STEPS: usize = 10;
/// The longest wait before a step: a month.
pub const MAX_STEP_DELAY_SECS: u32 = 31 * 24 * 3600;

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
// Strict here as well as at the server's extractor: an internally tagged
// enum is buffered before it is read, which hides unknown fields from it.
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepAction {
    /// An SMS with a link where the customer confirms the delivery window,
    /// picks another one or a pickup point.
    Sms,
    /// A smart call (the depot's message and key map), with its own attempt
    /// policy where given ("3 attempts, 15 minutes apart").
    Call {
        #[serde(default)]
        policy: Option<PolicyOverride>,
    },
    /// Hand the customer over to a human: the run ends in the depot's
    /// operator queue.
    Operator,
}

impl StepAction {
    pub fn name(self) -> &'static str {
        match self {
            StepAction::Sms => "sms",
            StepAction::Call { .. } => "call",
            StepAction::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CampaignStep {
    /// Seconds after the previous step (after enrollment, for the first).
    pub after_secs: u32,
    pub action: StepAction,
}

/// `POST /v1/depots/{depot_id}/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateCampaign {
    pub name: String,
    pub steps: Vec<CampaignStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Campaign {
    pub id: i64,
    pub depot_id: crate::DepotId,
    pub name: String,
    pub steps: Vec<CampaignStep>,
    pub created_at: DateTime<Utc>,
}

/// Where one customer (stop) is in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for its next step.
    Active,
    /// The customer reacted (used the link, or chose on a call): left.
    Reacted,
    /// Every step done without a reaction.
    Completed,
    /// Ended at an operator step: a human takes over.
    HandedOver,
    /// A `cancel_on` order event arrived (the invoice was paid…).
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::Reacted => "reacted",
            RunState::Completed => "completed",
            RunState::HandedOver => "handed_over",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        [RunState::Active, RunState::Reacted, RunState::Completed, RunState::HandedOver, RunState::Cancelled]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CampaignRun {
    pub id: i64,
    pub campaign_id: i64,
    pub stop_id: StopId,
    pub state: RunState,
    /// Index of the next step to take (= steps taken so far).
    pub next_step: u32,
    /// When the next step is due (`None` once the run ended).
    pub next_at: Option<DateTime<Utc>>,
    pub enrolled_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /v1/depots/{depot_id}/campaigns/{campaign_id}/runs`: enroll stops
/// by hand (triggers do it from order events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Enroll {
    pub stop_ids: Vec<StopId>,
}

/// `POST /v1/depots/{depot_id}/trigger-rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateTriggerRule {
    /// The order event type that enrolls the stop (`out_for_delivery`).
    pub event_type: String,
    pub campaign_id: i64,
    /// Order event types that end the enrollment (`invoice_paid`).
    #[serde(default)]
    pub cancel_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TriggerRule {
    pub id: i64,
    pub depot_id: crate::DepotId,
    pub event_type: String,
    pub campaign_id: i64,
    pub cancel_on: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/depots/{depot_id}/order-events`: something happened to an
/// order in the CRM. The order is the stop imported with this `external_id`
/// on the route of `date`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderEventInput {
    /// A retry with the same key returns the first answer.
    pub idempotency_key: String,
    pub event_type: String,
    pub external_id: String,
    pub date: NaiveDate,
    /// When it happened in the CRM (default: when received).
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderEventResult {
    pub id: i64,
    pub stop_id: StopId,
    /// Runs this event started.
    pub enrolled: Vec<i64>,
    /// Runs this event ended (`cancel_on`).
    pub cancelled: Vec<i64>,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { code: ErrorCode::ValidationFailed, field: field.into(), message: message.into() }
}

/// Event types are the CRM's words, kept machine-friendly.
pub fn check_event_type(field: &str, t: &str) -> Result<(), FieldError> {
    let ok = (1..=64).contains(&t.len())
        && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(bad(field, format!("{t:?}: 1 to 64 lowercase letters, digits or '_' (like out_for_delivery)")))
    }
}

impl CreateCampaign {
    pub fn check(&self) -> Result<(), FieldError> {
        validate::non_empty("name", &self.name, 200)?;
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(bad("steps", format!("1 to {MAX_STEPS} steps")));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.after_secs > MAX_STEP_DELAY_SECS {
                return Err(bad(format!("steps[{i}].after_secs"), "at most 31 days"));
            }
            if s.action == StepAction::Operator && i + 1 != self.steps.len() {
                return Err(bad(
                    format!("steps[{i}].action"),
                    "an operator step ends the campaign: make it the last step",
                ));
            }
        }
        Ok(())
    }
}

impl CreateTriggerRule {
    pub fn check(&self) -> Result<(), FieldError> {
        check_event_type("event_type", &self.event_type)?;
        for (i, t) in self.cancel_on.iter().enumerate() {
            check_event_type(&format!("cancel_on[{i}]"), t)?;
            if *t == self.event_type {
                return Err(bad(format!("cancel_on[{i}]"), "cannot cancel on the event that enrolls"));
            }
        }
        Ok(())
    }
}

impl OrderEventInput {
    pub fn check(&self) -> Result<(), FieldError> {
        validate::idempotency_key(&self.idempotency_key)?;
        check_event_type("event_type", &self.event_type)?;
        validate::non_empty("external_id", &self.external_id, 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(after_secs: u32, action: StepAction) -> CampaignStep {
        CampaignStep { after_secs, action }
    }

    #[test]
    fn the_two_step_campaign_reads_from_json() {
        let json = r#"{"name": "SMS, then call", "steps": [
            {"after_secs": 0, "action": {"type": "sms"}},
            {"after_secs": 86400, "action": {"type": "call", "policy": {"max_attempts": 3, "retry_spacing_secs": 900}}},
            {"after_secs": 3600, "action": {"type": "operator"}}]}"#;
        let c: CreateCampaign = serde_json::from_str(json).expect("parses");
        assert!(c.check().is_ok());
        let StepAction::Call { policy: Some(p) } = c.steps[1].action else { panic!("a call step") };
        assert_eq!((p.max_attempts, p.retry_spacing_secs), (Some(3), Some(900)));
    }

    #[test]
    fn bad_campaigns_name_the_step_at_fault() {
        let field = |steps: Vec<CampaignStep>| {
            CreateCampaign { name: "x".into(), steps }.check().expect_err("refused").field
        };
        assert_eq!(field(vec![]), "steps");
        assert_eq!(field(vec![step(MAX_STEP_DELAY_SECS + 1, StepAction::Sms)]), "steps[0].after_secs");
        assert_eq!(field(vec![step(0, StepAction::Operator), step(0, StepAction::Sms)]), "steps[0].action");
    }

    #[test]
    fn event_types_are_snake_case_and_a_rule_cannot_cancel_itself() {
        assert!(check_event_type("t", "invoice_unpaid_3d").is_ok());
        for bad in ["", "Out For Delivery", "a-b", &"x".repeat(65)] {
            assert!(check_event_type("t", bad).is_err(), "{bad:?}");
        }
        let rule = CreateTriggerRule { event_type: "a".into(), campaign_id: 1, cancel_on: vec!["a".into()] };
        assert_eq!(rule.check().expect_err("refused").field, "cancel_on[0]");
    }
}
