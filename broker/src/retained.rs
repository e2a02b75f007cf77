//! Retained messages, kept by the edge rather than by rumqttd's router.
//!
//! rumqttd deletes a retained message on any empty publish (retained or not) and expires
//! messages early. The edge keeps the store itself: a retained publish with a payload
//! replaces the topic's message, an empty *retained* publish deletes it, and nothing else
//! touches it. Messages reach the router with the retain flag cleared, so the router never
//! stores anything; the edge delivers stored messages when a subscription is made.

use std::collections::HashMap;
use std::time::Instant;

use crate::topic::matches;
use crate::types::Message;

struct Entry {
    message: Message,
    stored: Instant,
}

/// A stored message with the time it has left (MQTT 5 message expiry), if it expires.
#[derive(Debug, Clone)]
pub(crate) struct RetainedMessage {
    pub message: Message,
    pub remaining_expiry: Option<u32>,
}

/// Topic -> retained message.
#[derive(Default)]
pub(crate) struct RetainedStore {
    entries: HashMap<String, Entry>,
}

impl RetainedStore {
    /// Applies a publish that has the retain flag set.
    pub fn apply(&mut self, message: &Message) {
        debug_assert!(message.retain);
        if message.payload.is_empty() {
            self.entries.remove(&message.topic);
        } else {
            self.entries.insert(
                message.topic.clone(),
                Entry {
                    message: message.clone(),
                    stored: Instant::now(),
                },
            );
        }
    }

    /// Every unexpired message whose topic matches `filter`; expired ones are removed.
    pub fn matching(&mut self, filter: &str) -> Vec<RetainedMessage> {
        let now = Instant::now();
        let mut out = Vec::new();
        self.entries.retain(|topic, entry| {
            let expiry = entry
                .message
                .properties
                .as_ref()
                .and_then(|p| p.message_expiry_interval);
            let remaining_expiry = match expiry {
                Some(secs) => {
                    let age = now.duration_since(entry.stored).as_secs();
                    match u64::from(secs).checked_sub(age) {
                        Some(left) if left > 0 => Some(left as u32),
                        _ => return false,
                    }
                }
                None => None,
            };
            if matches(filter, topic) {
                out.push(RetainedMessage {
                    message: entry.message.clone(),
                    remaining_expiry,
                });
            }
            true
        });
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_retained_deletes_only_its_topic() {
        let mut s = RetainedStore::default();
        s.apply(&Message::new("a/1", "x").retained(true));
        s.apply(&Message::new("a/2", "y").retained(true));
        assert_eq!(s.matching("a/+").len(), 2);
        s.apply(&Message::new("a/1", "").retained(true));
        let left = s.matching("a/#");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].message.topic, "a/2");
    }

    #[test]
    fn expired_messages_are_not_delivered() {
        let mut s = RetainedStore::default();
        let props = crate::types::Properties {
            message_expiry_interval: Some(0),
            ..Default::default()
        };
        s.apply(&Message::new("t", "x").retained(true).with_properties(props));
        assert!(s.matching("t").is_empty());
        assert_eq!(s.len(), 0);
    }
}
