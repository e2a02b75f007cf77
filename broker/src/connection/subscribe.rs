//! SUBSCRIBE and UNSUBSCRIBE at the edge.
//!
//! Each filter is validated and authorized here. Accepted filters go to the router one per
//! SUBSCRIBE packet (so each gets its own retained snapshot); refused ones get a failure
//! code without reaching it, and the client's SUBACK is assembled from both once the
//! router has answered, followed by the retained messages. The edge answers UNSUBSCRIBE
//! itself: rumqttd sends nothing for an unknown filter and one UNSUBACK per filter.

use std::collections::VecDeque;

use rumqttd::protocol::{
    Filter, Packet, RetainForwardRule, Subscribe, SubscribeProperties, SubscribeReasonCode,
    Unsubscribe,
};

use super::outbox::{EdgeMsg, OutboxGuard};
use super::session::{Close, Conn};
use crate::metrics::Metrics;
use crate::retained::RetainedMessage;
use crate::state::{Effect, Item};
use crate::subs::{SubOpts, Subscriptions};
use crate::topic::{parse_shared, validate_filter};
use crate::types::{Protocol, QoS};
use crate::wire::encode::{self, reason};

/// A filter waiting for the router's answer.
pub(crate) struct Slot {
    index: usize,
    subscription_id: Option<usize>,
    retained: Vec<RetainedMessage>,
    granted: QoS,
}

/// A client SUBACK being assembled.
pub(crate) struct PendingSub {
    codes: Vec<u8>,
    waiting: VecDeque<Slot>,
    done: Vec<Slot>,
}

/// Where a retained snapshot returned by `BrokerState::submit` belongs.
pub(super) struct SnapshotTarget {
    pkid: u16,
    index: usize,
}

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
            let opts = SubOpts {
                qos: QoS::from_rumqttd(filter.qos),
                shared: group.clone(),
                subscription_id,
            };
            let new = self.subs.insert(&filter.path, opts);
            let wants_retained = group.is_none()
                && match filter.retain_forward_rule {
                    RetainForwardRule::OnEverySubscribe => true,
                    RetainForwardRule::OnNewSubscribe => new,
                    RetainForwardRule::Never => false,
                };
            if group.is_none() {
                self.gaps.add(&filter.path);
            }
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
                granted: QoS::from_rumqttd(filter.qos),
            });
            let packet = Packet::Subscribe(
                Subscribe {
                    pkid: sub.pkid,
                    filters: vec![filter],
                },
                props.clone(),
            );
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
            return; // an internal re-subscribe (session restore)
        }
        let Some(queue) = self.pending_subacks.get_mut(&pkid) else {
            tracing::debug!(pkid, "SUBACK from the router for an unknown packet id");
            return;
        };
        let Some(pending) = queue.front_mut() else {
            return;
        };
        if let Some(mut slot) = pending.waiting.pop_front() {
            let code = codes
                .first()
                .map_or(reason::UNSPECIFIED_ERROR, |c| code_of(*c));
            pending.codes[slot.index] = if self.proto == Protocol::V5 || code < 0x80 {
                code
            } else {
                reason::V311_SUBSCRIBE_FAILURE
            };
            if code < 0x80 {
                slot.granted = QoS::from_u8(code).unwrap_or(slot.granted);
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
                let qos = r.message.qos.min(slot.granted);
                out.deliver(EdgeMsg {
                    message: r.message,
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
            if self.subs.remove(&filter).is_some() {
                self.gaps.remove(&filter);
                codes.push(reason::SUCCESS);
                known.push(filter);
            } else {
                codes.push(reason::NO_SUBSCRIPTION_EXISTED);
            }
        }
        if !known.is_empty() {
            self.swallow_unsubacks += known.len();
            items.push(Item::plain(Packet::Unsubscribe(
                Unsubscribe {
                    pkid: unsub.pkid,
                    filters: known,
                },
                None,
            )));
        }
        let proto = self.proto;
        self.outbox
            .lock()
            .control(|b| encode::unsuback(proto, unsub.pkid, &codes, b));
    }
}

/// Router SUBSCRIBE packets that re-register a restored session's filters.
pub(super) fn resubscribe_items(subs: &Subscriptions) -> Vec<Item> {
    subs.iter()
        .map(|(filter, opts)| {
            let props = opts.subscription_id.map(|id| SubscribeProperties {
                id: Some(id),
                user_properties: Vec::new(),
            });
            Item::plain(Packet::Subscribe(
                Subscribe {
                    pkid: 0,
                    filters: vec![Filter {
                        path: filter.clone(),
                        qos: opts.qos.to_rumqttd(),
                        nolocal: false,
                        preserve_retain: false,
                        retain_forward_rule: RetainForwardRule::Never,
                    }],
                },
                props,
            ))
        })
        .collect()
}

fn code_of(c: SubscribeReasonCode) -> u8 {
    match c {
        SubscribeReasonCode::QoS0 => 0,
        SubscribeReasonCode::QoS1 => 1,
        SubscribeReasonCode::QoS2 => 2,
        SubscribeReasonCode::Success(q) => q as u8,
        SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
        SubscribeReasonCode::ImplementationSpecific => 0x83,
        SubscribeReasonCode::NotAuthorized => 0x87,
        SubscribeReasonCode::TopicFilterInvalid => 0x8f,
        SubscribeReasonCode::PkidInUse => 0x91,
        SubscribeReasonCode::QuotaExceeded => 0x97,
        SubscribeReasonCode::SharedSubscriptionsNotSupported => 0x9e,
        SubscribeReasonCode::SubscriptionIdNotSupported => 0xa1,
        SubscribeReasonCode::WildcardSubscriptionsNotSupported => 0xa2,
    }
}
