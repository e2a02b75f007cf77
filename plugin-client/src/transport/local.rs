//! The in-process transport: a local client of the embedded broker. Same messages, same
//! rules, no TCP. The will (`offline` status) is published by the broker if the client is
//! dropped without `disconnect`.

use hcore_broker::{
    BrokerHandle, LocalClient, LocalOptions, Message as BrokerMessage, Properties, QoS,
};

use super::{next_session, Event, Liveness, Message, Outgoing, Sink};
use crate::error::ClientError;
use crate::protocol::PluginStatus;

pub(super) struct LocalLink {
    client: LocalClient,
}

impl LocalLink {
    pub async fn connect(
        broker: &BrokerHandle,
        id: &str,
        liveness: Option<Liveness>,
        sink: Sink,
    ) -> Result<LocalLink, ClientError> {
        let session = next_session(0);
        let will = liveness.map(|l| {
            BrokerMessage::new(l.status_topic, PluginStatus::offline(session).to_bytes())
                .retained(true)
                .with_qos(QoS::AtLeastOnce)
        });
        let message_sink = sink.clone();
        let options = LocalOptions {
            will,
            username: None,
            // Messages are handed over in line on the publisher's task: no hop per message.
            sink: Some(std::sync::Arc::new(move |m| {
                message_sink(Event::Message(message(m)))
            })),
        };
        let (client, mut receiver) = broker
            .local_client(id, options)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        sink(Event::Connected { session });
        // With a sink the receiver only reports the end of the client.
        tokio::spawn(async move {
            while receiver.recv().await.is_some() {}
            sink(Event::Closed);
        });
        Ok(LocalLink { client })
    }

    pub async fn publish(&self, out: Outgoing) -> Result<(), ClientError> {
        self.client
            .publish(broker_message(out))
            .await
            .map_err(broker_error)
    }

    pub fn try_publish(&self, out: Outgoing) -> Result<(), Outgoing> {
        let (topic, payload) = (out.topic.clone(), out.payload.clone());
        self.client
            .try_publish(broker_message(out.clone()))
            .map_err(|_| Outgoing {
                topic,
                payload,
                ..out
            })
    }

    pub async fn subscribe(&self, filter: &str) -> Result<(), ClientError> {
        match self.client.subscribe(filter, QoS::AtLeastOnce).await {
            Ok(_) => Ok(()),
            Err(
                e @ (hcore_broker::BrokerError::NotAuthorized(_)
                | hcore_broker::BrokerError::Invalid { .. }),
            ) => Err(ClientError::Refused {
                filter: filter.to_string(),
                reason: e.to_string(),
            }),
            Err(e) => Err(broker_error(e)),
        }
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.client.unsubscribe(filter).await.map_err(broker_error)
    }

    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.client.disconnect().await.map_err(broker_error)
    }
}

fn broker_message(out: Outgoing) -> BrokerMessage {
    let m = BrokerMessage::new(out.topic, out.payload)
        .retained(out.retain)
        .with_qos(QoS::from_u8(out.qos).unwrap_or(QoS::AtLeastOnce));
    match out.correlation {
        Some(c) => m.with_properties(Properties {
            correlation_data: Some(c),
            ..Default::default()
        }),
        None => m,
    }
}

fn broker_error(e: hcore_broker::BrokerError) -> ClientError {
    match e {
        hcore_broker::BrokerError::Closed => ClientError::Closed,
        other => ClientError::Transport(other.to_string()),
    }
}

fn message(m: BrokerMessage) -> Message {
    let (response_topic, correlation, user_properties) = match m.properties {
        Some(p) => (p.response_topic, p.correlation_data, p.user_properties),
        None => (None, None, Vec::new()),
    };
    Message {
        topic: m.topic,
        payload: m.payload,
        retain: m.retain,
        response_topic,
        correlation,
        user_properties,
    }
}
