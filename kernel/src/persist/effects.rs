//! What a durable state change publishes: the retained record on `<root>/state/<key>`
//! (empty when deleted) and the `state_changed` event.

use hcore_client::protocol::{Envelope, StateRecord, Topics};
use hcore_client::Outgoing;
use serde_json::json;

use crate::out::retained;
use crate::policy::KERNEL_ID;
use crate::state::Origin;

/// The retained record of a key (an empty payload deletes it).
pub(super) fn record(topics: &Topics, key: &str, record: Option<&StateRecord>) -> Outgoing {
    let payload = record
        .map(|r| serde_json::to_vec(r).unwrap_or_default())
        .unwrap_or_default();
    retained(topics.state(key), payload)
}

/// `<root>/event/kernel/state_changed/<key>`: published by the kernel (its envelope's
/// `source`), with who made the change in `data.source` and what caused it as `parent`.
pub(super) fn state_changed(
    topics: &Topics,
    key: &str,
    old: Option<&StateRecord>,
    new: Option<&StateRecord>,
    origin: &Origin,
) -> Outgoing {
    let version = new.or(old).map_or(0, |r| r.version);
    let data = json!({
        "key": key,
        "old": old.map(|r| &r.value),
        "new": new.map(|r| &r.value),
        "version": version,
        "source": origin.source,
    });
    let mut envelope = Envelope::new(KERNEL_ID, origin.parent.clone(), data);
    if let Some(r) = new {
        // The event and the record share the change's context id.
        envelope.id = r.context.id.clone();
    }
    Outgoing {
        topic: topics.state_changed(key),
        payload: serde_json::to_vec(&envelope).unwrap_or_default().into(),
        qos: 1,
        retain: false,
        correlation: None,
    }
}
