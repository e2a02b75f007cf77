//! SUBSCRIBE and UNSUBSCRIBE at the edge.
//!
//! Each filter is validated and authorized here. Accepted filters go to the router at QoS
//! 0 (the edge delivers QoS 1/2 itself), one per SUBSCRIBE packet so each gets its own
//! retained snapshot; refused ones get a failure code without reaching it. The client's
//! SUBACK is assembled once the router has answered, followed by the retained messages.
//! The edge answers UNSUBSCRIBE itself: rumqttd sends nothing for an unknown filter and one
//! UNSUBACK per filter otherwise.

use std::collections::VecDeque;

use rumqttd::protocol::{
    Packet, RetainForwardRule, Subscribe, SubscribeProperties, SubscribeReasonCode, Unsubscribe,
};

use super::conn::{Close, Conn};
use super::outbox::{EdgeMsg, OutboxGuard};
use super::suback::{PendingSub, Slot, SnapshotTarget};
use crate::metrics::Metrics;
use crate::retained::RetainedMessage;
use crate::router::router_subscribe;
use crate::state::{Effect, Item};
use crate::subs::{router_filter, SubOpts, Subscriptions};
use crate::topic::{parse_shared, validate_filter};
use crate::types::{Protocol, QoS};
use crate::wire::encode::{self, reason};

impl Conn {
    fn failure(&self, v5: u8) -> u8 {
        if self.proto == Protocol::V5 {
            v5
        } else {
            reason::V311_SUBSCRIBE_FAILURE
        }
    }

    pub(super) fn on_subscribe(
        &mut self,
        sub: Subscribe,
        props: Option<SubscribeProperties>,
        items: &mut Vec<Item>,
        targets: &mut Vec<SnapshotTarget>,
    ) -> Result<(), Close> {
        if sub.pkid == 0 {
            return Err(Close::violation(
                reason::PROTOCOL_ERROR,
                "SUBSCRIBE with packet id 0",
            ));
        }
        let subscription_id = props.as_ref().and_then(|p| p.id);
        if subscription_id == Some(0) {
            return Err(Close::violation(
                reason::PROTOCOL_ERROR,
                "subscription identifier 0",
            ));
        }
        let mut pending = PendingSub {
            codes: vec![0; sub.filters.len()],
            waiting: VecDeque::new(),
            done: Vec::new(),
        };
        for (index, filter) in sub.filters.into_iter().enumerate() {
            let (group, inner) = match parse_shared(&filter.path) {
                Some(Ok((group, inner))) => (Some(group.to_string()), inner.to_string()),
                Some(Err(e)) => {
                    pending.codes[index] = self.refuse_filter(&filter.path, e);
                    continue;
                }
                None => (None, filter.path.clone()),
            };
            if let Err(e) = validate_filter(&inner) {
                pending.codes[index] = self.refuse_filter(&filter.path, e);
                continue;
            }
            if inner.starts_with('$') {
                pending.codes[index] = self.refuse_filter(&filter.path, "'$' topics are reserved");
                continue;
            }
            if !self.st.hooks.authorize_subscribe(&self.info, &inner) {
                Metrics::inc(&self.st.metrics.not_authorized);
                tracing::info!(filter = %filter.path, "subscription not authorized");
                pending.codes[index] = self.failure(reason::NOT_AUTHORIZED);
                continue;
            }
            let qos = QoS::from_rumqttd(filter.qos);
            let opts = SubOpts {
                qos,
                shared: group.clone(),
                router_filter: router_filter(group.as_deref(), &inner),
                inner: inner.clone(),
                subscription_id,
            };
            let packet = router_subscribe(sub.pkid, &opts);
            self.filters.add(&inner, qos, group.is_some());
            let new = self.subs.insert(&filter.path, opts);
            let wants_retained = group.is_none()
                && match filter.retain_forward_rule {
                    RetainForwardRule::OnEverySubscribe => true,
                    RetainForwardRule::OnNewSubscribe => new,
                    RetainForwardRule::Never => false,
                };
            let effect = if wants_retained {
                targets.push(SnapshotTarget {
                    pkid: sub.pkid,
                    index,
                });
                Effect::Snapshot(inner)
            } else {
                Effect::None
            };
            pending.waiting.push_back(Slot {
                index,
                subscription_id,
                retained: Vec::new(),
                granted: qos,
            });
            items.push(Item { packet, effect });
        }
        if pending.waiting.is_empty() {
            let proto = self.proto;
            self.outbox
                .lock()
                .control(|b| encode::suback(proto, sub.pkid, &pending.codes, b));
        } else {
            self.pending_subacks
                .entry(sub.pkid)
                .or_default()
                .push_back(pending);
        }
        Ok(())
    }

    fn refuse_filter(&self, filter: &str, why: &str) -> u8 {
        tracing::info!(filter, "invalid subscription: {why}");
        self.failure(reason::TOPIC_FILTER_INVALID)
    }

    /// Attaches retained snapshots to the filters that asked for them.
    pub(super) fn attach_snapshots(
        &mut self,
        targets: Vec<SnapshotTarget>,
        snapshots: Vec<Vec<RetainedMessage>>,
    ) {
        for (target, snapshot) in targets.into_iter().zip(snapshots) {
            let slot = self
                .pending_subacks
                .get_mut(&target.pkid)
                .and_then(|q| q.back_mut())
                .and_then(|p| p.waiting.iter_mut().find(|s| s.index == target.index));
            if let Some(slot) = slot {
                slot.retained = snapshot;
            }
        }
    }

    /// The router answered one filter of a SUBSCRIBE.
    pub(super) fn on_router_suback(
        &mut self,
        out: &mut OutboxGuard<'_>,
        pkid: u16,
        codes: &[SubscribeReasonCode],
    ) {
        if pkid == 0 {
            return; // an internal re-subscribe
        }
        let failure = self.failure(reason::UNSPECIFIED_ERROR);
        let Some(queue) = self.pending_subacks.get_mut(&pkid) else {
            tracing::debug!(pkid, "SUBACK from the router for an unknown packet id");
            return;
        };
        let Some(pending) = queue.front_mut() else {
            return;
        };
        if let Some(slot) = pending.waiting.pop_front() {
            let refused = codes.first().is_none_or(|c| code_of(*c) >= 0x80);
            if refused {
                pending.codes[slot.index] = failure;
            } else {
                pending.codes[slot.index] = slot.granted as u8;
                pending.done.push(slot);
            }
        }
        if !pending.waiting.is_empty() {
            return;
        }
        let Some(pending) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.pending_subacks.remove(&pkid);
        }
        let proto = self.proto;
        out.control(|b| encode::suback(proto, pkid, &pending.codes, b));
        for slot in pending.done {
            for r in slot.retained {
                if !self.may_deliver(r.message.topic.as_bytes()) {
                    continue;
                }
                let qos = r.message.qos.min(slot.granted);
                out.deliver(EdgeMsg {
                    topic: r.message.topic.into(),
                    payload: r.message.payload,
                    properties: r.message.properties,
                    qos,
                    retain: true,
                    expiry: r.remaining_expiry,
                    subscription_ids: slot.subscription_id.into_iter().collect(),
                });
            }
        }
    }

    pub(super) fn on_unsubscribe(&mut self, unsub: Unsubscribe, items: &mut Vec<Item>) {
        let mut codes = Vec::with_capacity(unsub.filters.len());
        let mut known = Vec::new();
        for filter in unsub.filters {
            if let Some(opts) = self.subs.remove(&filter) {
                self.filters.remove(&opts.inner, opts.shared.is_some());
                codes.push(reason::SUCCESS);
                known.push(opts.router_filter);
            } else {
                codes.push(reason::NO_SUBSCRIPTION_EXISTED);
            }
        }
        if !known.is_empty() {
            items.push(Item::plain(Packet::Unsubscribe(
                Unsubscribe {
                    pkid: unsub.pkid,
                    filters: known,
                },
                None,
            )));
            // rumqttd removes the client from *every* shared group on any UNSUBSCRIBE;
            // re-register the shared subscriptions it still has.
            items.extend(resubscribe_items(&self.subs, true));
        }
        let proto = self.proto;
        self.outbox
            .lock()
            .control(|b| encode::unsuback(proto, unsub.pkid, &codes, b));
    }
}

/// Router SUBSCRIBE packets (packet id 0, their SUBACK is ignored) that re-register
/// filters: all of a restored session's, or only the shared ones.
pub(crate) fn resubscribe_items(subs: &Subscriptions, shared_only: bool) -> Vec<Item> {
    subs.iter()
        .filter(|(_, o)| !shared_only || o.shared.is_some())
        .map(|(_, opts)| Item::plain(router_subscribe(0, opts)))
        .collect()
}

fn code_of(c: SubscribeReasonCode) -> u8 {
    match c {
        SubscribeReasonCode::QoS0 => 0,
        SubscribeReasonCode::QoS1 => 1,
        SubscribeReasonCode::QoS2 => 2,
        SubscribeReasonCode::Success(q) => q as u8,
        _ => 0x80,
    }
}
