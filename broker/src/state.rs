//! State shared by every connection of one broker: config, hooks, counters, the router,
//! retained messages and sessions, and the three operations everything else is built on:
//! publish, subscribe, unsubscribe.
//!
//! Retained-store updates and target lookups happen under one lock, and so do a new
//! subscription's registration and its retained snapshot, so a subscriber sees every
//! retained message either in its snapshot or live, never neither. (The subscriber's
//! endpoint holds live deliveries while its snapshot is handed over, so never both out of
//! order either.) Lock order: retained store, then router index; session and endpoint
//! locks are taken only after both are released.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rumqttd::protocol::PublishProperties;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::endpoint::Touched;
use crate::hooks::{ClientInfo, Hooks, PublishInfo};
use crate::metrics::Metrics;
use crate::reclaim::Reclaim;
use crate::retained::{Refused, RetainedLimits, RetainedStore};
use crate::router::publication::{Delivery, Publication};
use crate::router::subscription::{Filter, RetainHandling, SubOptions};
use crate::router::{Router, Sub};
use crate::sessions::{Session, Sessions};
use crate::tasks::TaskCounter;
use crate::types::Message;

pub(crate) struct BrokerState {
    pub config: BrokerConfig,
    pub hooks: Arc<dyn Hooks>,
    pub metrics: Arc<Metrics>,
    pub router: Router,
    retained: Mutex<RetainedStore>,
    pub sessions: Sessions,
    pub reclaim: Reclaim,
    pub tasks: Arc<TaskCounter>,
    pub shutdown: watch::Receiver<bool>,
    pub started: Instant,
    next_session: AtomicU64,
}

impl BrokerState {
    pub fn new(
        config: BrokerConfig,
        hooks: Arc<dyn Hooks>,
        shutdown: watch::Receiver<bool>,
    ) -> BrokerState {
        let limits = RetainedLimits {
            max_messages: config.max_retained_messages,
            max_bytes: config.max_retained_bytes,
            max_bytes_per_client: config.max_retained_bytes_per_client,
        };
        BrokerState {
            config,
            hooks,
            metrics: Arc::new(Metrics::default()),
            router: Router::default(),
            retained: Mutex::new(RetainedStore::new(limits)),
            sessions: Sessions::default(),
            reclaim: Reclaim::default(),
            tasks: Arc::new(TaskCounter::default()),
            shutdown,
            started: Instant::now(),
            next_session: AtomicU64::new(1),
        }
    }

    /// A session id never used before in this process.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub fn retained(&self) -> MutexGuard<'_, RetainedStore> {
        self.retained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes a publication to every subscriber; a retained one is stored first (by
    /// `owner`, for its quota). Err: delivered live, but not stored.
    pub fn publish(
        &self,
        p: Arc<Publication>,
        owner: &str,
        touched: &mut Touched,
    ) -> Result<usize, Refused> {
        let (targets, stored) = if p.message.retain {
            let mut store = self.retained();
            let stored = store.apply(&p, owner);
            (self.router.targets(&p.message.topic), stored)
        } else {
            (self.router.targets(&p.message.topic), Ok(()))
        };
        if let Err(why) = stored {
            Metrics::inc(&self.metrics.retained_refused);
            tracing::debug!(topic = %p.message.topic, ?why, "retained message not stored");
        }
        let n = self
            .router
            .deliver(&p, targets, &*self.hooks, &self.metrics, touched);
        if n == 0 {
            Metrics::inc(&self.metrics.publishes_unrouted);
        }
        stored.map(|()| n)
    }

    /// Subscribes `session` to `filter`; returns whether the subscription is new and the
    /// retained messages it must get first (the caller holds the session's endpoint while
    /// it registers and hands them over).
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &Filter,
        opts: SubOptions,
    ) -> (bool, Vec<Delivery>) {
        let sub = Sub {
            session: session.clone(),
            opts: opts.clone(),
        };
        let (new, snapshot) = {
            let mut store = self.retained();
            let new = self
                .router
                .subscribe(sub, &filter.inner, filter.group.as_deref());
            let wants = filter.group.is_none()
                && match opts.retain_handling {
                    RetainHandling::OnSubscribe => true,
                    RetainHandling::OnNewSubscribe => new,
                    RetainHandling::Never => false,
                };
            let snapshot = if wants {
                store.matching(&filter.inner)
            } else {
                Vec::new()
            };
            (new, snapshot)
        };
        session.lock().add_sub(filter.clone(), opts.clone());
        let info = session.lock().info.clone();
        let retained = snapshot
            .into_iter()
            .filter(|p| self.hooks.authorize_delivery(&info, &p.message.topic))
            .map(|p| Delivery {
                qos: p.message.qos.min(opts.qos),
                retain: true,
                subscription_ids: opts.id.into_iter().collect(),
                publication: p,
            })
            .collect();
        (new, retained)
    }

    /// Registers a subscription restored from disk (no retained messages: the client is
    /// away).
    pub fn restore_subscription(&self, session: &Arc<Session>, filter: Filter, opts: SubOptions) {
        let sub = Sub {
            session: session.clone(),
            opts: opts.clone(),
        };
        self.router
            .subscribe(sub, &filter.inner, filter.group.as_deref());
        session.lock().add_sub(filter, opts);
    }

    /// Removes a subscription; false if the session had none with this filter.
    pub fn unsubscribe(&self, session: &Arc<Session>, written: &str) -> bool {
        let removed = session.lock().remove_sub(written);
        let Some(filter) = removed else {
            return false;
        };
        self.router
            .unsubscribe(session.id, &filter.inner, filter.group.as_deref());
        true
    }

    /// A client went away: its clean session ends, and persistent sessions beyond
    /// `max_persistent_sessions` (the ones away longest) end with it.
    pub fn close_session(&self, session: &Arc<Session>) {
        let (ended, evicted) = self
            .sessions
            .close(session, self.config.max_persistent_sessions);
        if evicted > 0 {
            // Logged (once per upkeep tick) by `upkeep`.
            self.metrics
                .sessions_evicted
                .fetch_add(evicted as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for s in ended {
            self.end_session(&s);
        }
    }

    /// May `client` publish to `topic` (retained, if `retain`)? Never to `$` topics; else
    /// the hooks decide.
    pub fn may_publish(&self, client: &ClientInfo, publish: &PublishInfo<'_>) -> bool {
        !publish.topic.starts_with('$')
            && self.hooks.authorize_publish(client, publish)
            && (!publish.retain || self.hooks.authorize_retain(client, publish.topic))
    }

    /// `may_publish` for a whole message (wills, in-process publishes).
    pub fn may_publish_message(&self, client: &ClientInfo, m: &Message) -> bool {
        self.may_publish(client, &PublishInfo::of(m))
    }

    /// Removes every subscription of a session that ended.
    pub fn end_session(&self, session: &Arc<Session>) {
        let subs = session.lock().take_subs();
        for f in subs {
            self.router
                .unsubscribe(session.id, &f.inner, f.group.as_deref());
        }
        self.reclaim.note();
    }

    /// Records the hooks' stamps (identity, role) in a publish's user properties, removing
    /// any property of the same name the publisher sent.
    pub fn stamp(&self, client: &ClientInfo, topic: &str, props: &mut Option<PublishProperties>) {
        self.hooks.stamps(client, topic, &mut |name, value| {
            let p = props.get_or_insert_with(PublishProperties::default);
            p.user_properties.retain(|(k, _)| k != name);
            p.user_properties
                .push((name.to_string(), value.to_string()));
        });
    }

    /// `stamp` for a message built in process.
    pub fn stamp_message(&self, client: &ClientInfo, message: &mut Message) {
        let props = &mut message.properties;
        self.hooks
            .stamps(client, &message.topic, &mut |name, value| {
                props
                    .get_or_insert_with(Default::default)
                    .set_user_property(name, value);
            });
    }

    /// Number of retained messages stored.
    pub fn retained_count(&self) -> usize {
        self.retained().len()
    }
}
