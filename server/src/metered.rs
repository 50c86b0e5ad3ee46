//! Providers as `/metrics` sees them: every request to the telephony and
//! messaging providers counted, with its errors, whichever provider it is.

use crate::messaging::{Message, Messaging, MessagingError, Sent};
use crate::metrics::provider_request;
use crate::telephony::{BoxFuture, PlaceCall, Telephony, TelephonyError};
use std::sync::Arc;

pub struct MeteredTelephony(pub Arc<dyn Telephony>);

impl Telephony for MeteredTelephony {
    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<(), TelephonyError>> {
        Box::pin(async move {
            let r = self.0.place(req).await;
            provider_request("telephony", "place", r.is_ok());
            r
        })
    }

    fn hang_up(&self, attempt_key: &str) -> BoxFuture<'_, Result<(), TelephonyError>> {
        let key = attempt_key.to_owned();
        Box::pin(async move {
            let r = self.0.hang_up(&key).await;
            provider_request("telephony", "hang_up", r.is_ok());
            r
        })
    }

    fn is_live(&self, attempt_key: &str) -> BoxFuture<'_, Result<bool, TelephonyError>> {
        let key = attempt_key.to_owned();
        Box::pin(async move {
            let r = self.0.is_live(&key).await;
            provider_request("telephony", "is_live", r.is_ok());
            r
        })
    }
}

pub struct MeteredMessaging(pub Arc<dyn Messaging>);

impl Messaging for MeteredMessaging {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<Sent, MessagingError>> {
        Box::pin(async move {
            let channel = message.channel;
            let r = self.0.send(message).await;
            // "Not registered" is an answer, not a provider failure.
            let ok = r.is_ok() || matches!(r, Err(MessagingError::NotRegistered(_)));
            provider_request(channel.as_str(), "send", ok);
            r
        })
    }

    fn delivered(&self, idempotency_key: &str) -> BoxFuture<'_, Result<bool, MessagingError>> {
        let key = idempotency_key.to_owned();
        Box::pin(async move {
            let r = self.0.delivered(&key).await;
            provider_request("messaging", "delivered", r.is_ok());
            r
        })
    }
}
