//! Wills: published by the edge when a client ends abnormally, at once or after its MQTT 5
//! will delay (cancelled if the client comes back first), stamped like any publish.

use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::Touched;
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::router::publication::Publication;
use crate::state::BrokerState;
use crate::types::Message;

/// Publishes a will now, or after its MQTT 5 will delay unless the client reconnects.
/// `origin` is the will's session (for no-local).
pub(crate) fn publish_will(
    st: &Arc<BrokerState>,
    client: &ClientInfo,
    origin: u64,
    will: Message,
    delay: u32,
) {
    if delay == 0 {
        send_will(st, client, origin, will);
        return;
    }
    let st2 = st.clone();
    let client2 = client.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        st2.sessions.delayed_will_done(&client2.session_key());
        send_will(&st2, &client2, origin, will);
    });
    st.sessions
        .schedule_will(&client.session_key(), task.abort_handle());
}

fn send_will(st: &BrokerState, client: &ClientInfo, origin: u64, mut will: Message) {
    st.stamp_message(client, &mut will);
    let client_id = client.client_id.as_str();
    tracing::info!(client_id, topic = %will.topic, "publishing will");
    Metrics::inc(&st.metrics.wills_published);
    let published = st.publish(
        Publication::new(will, origin),
        client_id,
        &mut Touched::default(),
    );
    if published.is_err() {
        tracing::warn!(
            client_id,
            "will delivered, but not stored as retained (over a retained-message limit)"
        );
    }
}
