//! SUBSCRIBE and UNSUBSCRIBE.
//!
//! Each filter is validated, authorized and counted against `max_subscriptions`; refused
//! ones get a failure code, the others are registered with their MQTT 5 options. The
//! SUBACK goes out before the retained messages of the new subscriptions, which come
//! before any live message on them (the endpoint holds live deliveries meanwhile).

use rumqttd::protocol::{RetainForwardRule, Subscribe, SubscribeProperties, Unsubscribe};

use super::conn::{Close, Conn};
use crate::endpoint::Touched;
use crate::metrics::Metrics;
use crate::router::subscription::{Filter, RetainHandling, SubOptions};
use crate::topic::{parse_filter, FilterError};
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
        touched: &mut Touched,
    ) -> Result<(), Close> {
        if sub.pkid == 0 {
            return Err(Close::violation(
                reason::PROTOCOL_ERROR,
                "SUBSCRIBE with packet id 0",
            ));
        }
        let id = props.as_ref().and_then(|p| p.id);
        if id == Some(0) {
            return Err(Close::violation(
                reason::PROTOCOL_ERROR,
                "subscription identifier 0",
            ));
        }
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        self.endpoint.hold();
        for f in sub.filters {
            let code = match self.checked_filter(&f.path) {
                Err(code) => code,
                Ok(filter) if filter.group.is_some() && f.nolocal => {
                    self.endpoint.release(retained, touched);
                    return Err(Close::violation(
                        reason::PROTOCOL_ERROR,
                        "no-local on a shared subscription",
                    ));
                }
                Ok(filter) => {
                    let opts = SubOptions {
                        qos: QoS::from_rumqttd(f.qos),
                        no_local: f.nolocal,
                        retain_as_published: f.preserve_retain,
                        retain_handling: match f.retain_forward_rule {
                            RetainForwardRule::OnEverySubscribe => RetainHandling::OnSubscribe,
                            RetainForwardRule::OnNewSubscribe => RetainHandling::OnNewSubscribe,
                            RetainForwardRule::Never => RetainHandling::Never,
                        },
                        id,
                    };
                    let granted = opts.qos as u8;
                    let (_, snapshot) = self.st.subscribe(&self.session, &filter, opts);
                    retained.extend(snapshot);
                    granted
                }
            };
            codes.push(code);
        }
        let proto = self.proto;
        self.outbox
            .control(|b| encode::suback(proto, sub.pkid, &codes, b));
        self.endpoint.release(retained, touched);
        Ok(())
    }

    /// The filter, or the SUBACK code that refuses it.
    fn checked_filter(&self, written: &str) -> Result<Filter, u8> {
        let filter = parse_filter(written, &self.st.config).map_err(|e| {
            tracing::info!(filter = %format_args!("{:.100}", written), "invalid subscription: {e}");
            self.failure(match e {
                FilterError::Invalid(_) => reason::TOPIC_FILTER_INVALID,
                FilterError::Reserved => reason::TOPIC_FILTER_INVALID,
            })
        })?;
        if !self.st.hooks.authorize_subscribe(&self.info, &filter.inner) {
            Metrics::inc(&self.st.metrics.not_authorized);
            tracing::info!(filter = %written, "subscription not authorized");
            return Err(self.failure(reason::NOT_AUTHORIZED));
        }
        let (count, exists) = self.session.lock().sub_count(written);
        if !exists && count >= self.st.config.max_subscriptions_per_client {
            Metrics::inc(&self.st.metrics.limit_subscriptions);
            tracing::info!(filter = %written, "subscription refused: max_subscriptions_per_client reached");
            return Err(self.failure(reason::QUOTA_EXCEEDED));
        }
        Ok(filter)
    }

    pub(super) fn on_unsubscribe(&mut self, unsub: Unsubscribe) {
        let codes: Vec<u8> = unsub
            .filters
            .iter()
            .map(|f| {
                if self.st.unsubscribe(&self.session, f) {
                    reason::SUCCESS
                } else {
                    reason::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        let proto = self.proto;
        self.outbox
            .control(|b| encode::unsuback(proto, unsub.pkid, &codes, b));
    }
}
