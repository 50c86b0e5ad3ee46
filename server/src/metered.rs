//! Providers as `/metrics` sees them: every request to the telephony and
//! messaging providers counted, with its errors, whichever provider it is.

use crate::metrics::provider_request;
use crate::providers::callbacks::ProviderCallbacks;
use crate::providers::{
    AttemptRef, BoxFuture, DirectDialRequest, Lookup, Message, Messaging, MessagingError, PlaceCall, Placed,
    Sent, Telephony, TelephonyError,
};
use std::sync::Arc;

pub struct MeteredTelephony(pub Arc<dyn Telephony>);

impl Telephony for MeteredTelephony {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move {
            let r = self.0.place(req).await;
            provider_request(self.0.name(), "place", r.is_ok());
            r
        })
    }

    fn hang_up(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<(), TelephonyError>> {
        let attempt = attempt.clone();
        Box::pin(async move {
            let r = self.0.hang_up(&attempt).await;
            provider_request(self.0.name(), "hang_up", r.is_ok());
            r
        })
    }

    fn lookup(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<Lookup, TelephonyError>> {
        let attempt = attempt.clone();
        Box::pin(async move {
            let r = self.0.lookup(&attempt).await;
            provider_request(self.0.name(), "lookup", r.is_ok());
            r
        })
    }

    fn callbacks(&self) -> Option<&dyn ProviderCallbacks> {
        self.0.callbacks()
    }

    fn supports_direct_dial(&self) -> bool {
        self.0.supports_direct_dial()
    }

    fn dial_direct(&self, req: DirectDialRequest) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move {
            let r = self.0.dial_direct(req).await;
            provider_request(self.0.name(), "dial_direct", r.is_ok());
            r
        })
    }
}

pub struct MeteredMessaging(pub Arc<dyn Messaging>);

impl Messaging for MeteredMessaging {
    fn name(&self) -> &'static str {
        self.0.name()
    }

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
            provider_request(self.0.name(), "delivered", r.is_ok());
            r
        })
    }

    fn callbacks(&self) -> Option<&dyn ProviderCallbacks> {
        self.0.callbacks()
    }
}
