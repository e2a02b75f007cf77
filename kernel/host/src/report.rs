//! The host's report on its plugins: retained on `<root>/plugin/<host>/hosted`, published
//! whenever a plugin's state changes (changes in between coalesce) and on every connect
//! (with the new session, so the hub does not take it for a stale one).

use hcore_client::protocol::commands::HostedReport;
use hcore_client::{Client, Outgoing};
use tokio::sync::watch;

use crate::supervisor::Supervised;

/// The report as it stands.
pub fn current(client: &Client, plugins: &[Supervised]) -> HostedReport {
    HostedReport {
        session: client.session(),
        plugins: plugins.iter().map(Supervised::view).collect(),
    }
}

/// Publishes the report (retained, QoS 1); waits while the connection is down.
pub async fn publish(client: &Client, plugins: &[Supervised]) {
    let report = current(client, plugins);
    let payload = serde_json::to_vec(&report).unwrap_or_default();
    let out = Outgoing {
        topic: client.topics().plugin_hosted(client.id()),
        payload: payload.into(),
        qos: 1,
        retain: true,
        correlation: None,
    };
    if let Err(e) = client.publish_message(out).await {
        tracing::warn!("cannot publish the plugins report: {e}");
    }
}

/// Publishes the report after every change until `changed`'s sender is gone.
pub async fn follow(client: Client, plugins: Vec<Supervised>, mut changed: watch::Receiver<()>) {
    while changed.changed().await.is_ok() {
        publish(&client, &plugins).await;
    }
}
