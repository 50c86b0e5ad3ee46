//! uniffi bindings over the Callahead courier client core: the only crate
//! that knows about Kotlin, Swift and Python. It translates, nothing more:
//! mirror types (`From` conversions), one exported object, one foreign
//! listener, one error enum. Every rule lives in `callahead-core`.

mod client;
mod error;
mod listener;
mod types;

pub use client::CourierClient;
pub use error::CallaheadError;
pub use listener::CourierListener;
pub use types::*;

uniffi::setup_scaffolding!("callahead");
