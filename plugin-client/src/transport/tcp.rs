//! The TCP transport: rumqttc's MQTT 5 client (or its 3.1.1 one, `mqtt.rs`) with
//! TCP_NODELAY, polled by its own task, reconnecting with a capped exponential backoff.
//! Every (re)connect gets a new session number and a matching `offline` will, and is
//! reported as `Event::Connected` so the client re-subscribes, re-provides and
//! re-announces (the broker starts a clean session).
//!
//! The version: the URL's `?version=5` or `?version=3.1.1`, or else MQTT 5, falling back
//! to 3.1.1 when the broker does not complete an MQTT 5 handshake (NATS closes the
//! connection; mosquitto 1.x answers in 3.1.1) but accepts a 3.1.1 one. A log line says
//! which version is in use and why.

use std::time::Duration;

use super::mqtt::{self, Mqtt, MqttVersion, Polled, Poller};
use super::{next_session, Event, Liveness, Outgoing, Sink, TlsOptions};
use crate::error::ClientError;
use crate::protocol::PluginStatus;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `mqtts://`: TLS with these files.
    pub tls: Option<TlsOptions>,
    /// The MQTT version (`?version=`); `None`: 5, or 3.1.1 if the broker refuses 5.
    pub version: Option<MqttVersion>,
}

impl TcpOptions {
    /// Parses `mqtt://[user[:password]@]host[:port]` (or `host:port`, or `host`; default
    /// port 1883) and `mqtts://...` (TLS, default port 8883, trusting the system's CAs
    /// unless the query names files: `?ca=/etc/hcore/ca.pem&cert=..&key=..`). User name
    /// and password are percent-decoded. `?keep_alive=N`: seconds, 5 to 65535 (default 30);
    /// `?version=5|3.1.1`.
    pub fn from_url(url: &str) -> Result<TcpOptions, ClientError> {
        let bad = |why: &str| ClientError::Connect(format!("broker URL {url:?}: {why}"));
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("mqtt://{url}")
        };
        let parsed = url::Url::parse(&full).map_err(|e| bad(&e.to_string()))?;
        let mut tls = match parsed.scheme() {
            "mqtt" => None,
            "mqtts" => Some(TlsOptions::default()),
            _ => return Err(bad("the scheme must be mqtt:// or mqtts://")),
        };
        let mut version = None;
        let mut keep_alive = Duration::from_secs(30);
        for (name, value) in parsed.query_pairs() {
            if name == "keep_alive" {
                let secs = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (5..=65_535).contains(s))
                    .ok_or_else(|| bad("keep_alive is seconds, 5 to 65535"))?;
                keep_alive = Duration::from_secs(secs);
                continue;
            }
            if name == "version" {
                version = Some(match value.as_ref() {
                    "5" => MqttVersion::V5,
                    "3.1.1" | "4" => MqttVersion::V311,
                    other => {
                        return Err(bad(&format!("unknown MQTT version {other:?} (5, 3.1.1)")))
                    }
                });
                continue;
            }
            let Some(t) = tls.as_mut() else {
                return Err(bad("TLS files (?ca=, ?cert=, ?key=) need mqtts://"));
            };
            let slot = match name.as_ref() {
                "ca" => &mut t.ca,
                "cert" => &mut t.cert,
                "key" => &mut t.key,
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?} (version, keep_alive; ca, cert, key)"
                    )))
                }
            };
            *slot = Some(value.into_owned().into());
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let username = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(decode);
        let password = parsed.password().map(decode);
        Ok(TcpOptions {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: parsed
                .port()
                .unwrap_or(if tls.is_some() { 8883 } else { 1883 }),
            keep_alive,
            username,
            password,
            tls,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{MqttVersion, TcpOptions};

    #[test]
    fn urls_with_and_without_credentials() {
        let o = TcpOptions::from_url("mqtt://pi-lamp:s%40cret+1@hub.local:1884").unwrap();
        assert_eq!(
            (
                o.host.as_str(),
                o.port,
                o.username.as_deref(),
                o.password.as_deref()
            ),
            ("hub.local", 1884, Some("pi-lamp"), Some("s@cret+1"))
        );
        let o = TcpOptions::from_url("127.0.0.1").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.username),
            ("127.0.0.1", 1883, None)
        );
        let o = TcpOptions::from_url("[::1]:1883").unwrap();
        assert_eq!(o.host, "::1");
        assert!(TcpOptions::from_url("http://x").is_err());
        assert!(TcpOptions::from_url("mqtt://:1883").is_err());
    }

    #[test]
    fn mqtts_urls_name_their_tls_files() {
        let o = TcpOptions::from_url("mqtts://hub.local?ca=/etc/hcore/ca.pem").unwrap();
        assert_eq!(o.port, 8883);
        let tls = o.tls.unwrap();
        assert_eq!(tls.ca.unwrap().to_str(), Some("/etc/hcore/ca.pem"));
        assert_eq!((tls.cert, tls.key), (None, None));
        assert!(TcpOptions::from_url("mqtt://hub?ca=/x").is_err());
        assert!(TcpOptions::from_url("mqtts://hub?cafile=/x").is_err());
        assert!(TcpOptions::from_url("mqtt://hub").unwrap().tls.is_none());
        let o = TcpOptions::from_url("mqtt://hub?version=3.1.1").unwrap();
        assert_eq!(o.version, Some(MqttVersion::V311));
        assert!(TcpOptions::from_url("mqtt://hub?version=6").is_err());
        let o = TcpOptions::from_url("mqtt://hub?keep_alive=5").unwrap();
        assert_eq!(o.keep_alive.as_secs(), 5);
        assert!(TcpOptions::from_url("mqtt://hub?keep_alive=1").is_err());
    }
}

pub(super) struct TcpLink {
    client: Mqtt,
    /// The version in use.
    pub(super) version: MqttVersion,
    /// SUBACKs arrive in the order the SUBSCRIBEs were sent: a subscriber takes a ticket
    /// when it sends and waits until that many SUBACKs have arrived.
    subscribes: tokio::sync::Mutex<()>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    subacks: tokio::sync::watch::Receiver<u64>,
    /// Refusals by SUBACK number, taken by the subscriber waiting for that SUBACK.
    refusals: std::sync::Arc<std::sync::Mutex<Refusals>>,
    task: tokio::task::JoinHandle<()>,
    /// Set by `disconnect`: the event loop stops instead of reconnecting.
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The first connection: its client, event loop and version.
async fn first_connection(
    id: &str,
    opts: &TcpOptions,
    liveness: Option<&Liveness>,
    session: u64,
) -> Result<(Mqtt, Poller, MqttVersion), ClientError> {
    let scheme = if opts.tls.is_some() { "mqtts" } else { "mqtt" };
    let target = format!("{scheme}://{}:{}", opts.host, opts.port);
    let versions: &[MqttVersion] = match opts.version {
        Some(v) => &[v][..],
        None => &[MqttVersion::V5, MqttVersion::V311][..],
    };
    let mut failures = Vec::new();
    for &version in versions {
        let (client, mut poller) = mqtt::open(id, opts, version)?;
        set_will(&mut poller, liveness, session);
        let outcome = loop {
            match poller.poll().await {
                Ok(Polled::ConnAck) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => {
                match (opts.version, failures.first()) {
                    (Some(_), _) => {
                        tracing::info!(%version, "connected to {target} (set in the URL)")
                    }
                    (None, None) => tracing::debug!(%version, "connected to {target}"),
                    (None, Some(why)) => tracing::warn!(
                        %version,
                        "{target} did not complete an MQTT 5 handshake ({why}); using MQTT 3.1.1 (no MQTT 5 properties)"
                    ),
                }
                return Ok((client, poller, version));
            }
            // A refusal in the broker's own MQTT 5 CONNACK (bad password, ...) is final.
            Err(e)
                if version == MqttVersion::V5 && e.contains("Connection refused, return code") =>
            {
                return Err(ClientError::Connect(format!(
                    "cannot connect to {target}: {e}"
                )));
            }
            Err(e) => failures.push(format!("{version}: {e}")),
        }
    }
    Err(ClientError::Connect(format!(
        "cannot connect to {target}: {}",
        failures.join("; ")
    )))
}

impl TcpLink {
    /// Connects and waits for the first CONNACK (a refusal or an unreachable broker is an
    /// error here; later disconnections are retried forever).
    pub async fn connect(
        id: &str,
        opts: &TcpOptions,
        liveness: Option<Liveness>,
        sink: Sink,
    ) -> Result<TcpLink, ClientError> {
        let mut session = next_session(0);
        let (client, mut poller, version) =
            first_connection(id, opts, liveness.as_ref(), session).await?;
        sink(Event::Connected { session });
        let (suback_tx, subacks) = tokio::sync::watch::channel(0u64);
        let refusals = std::sync::Arc::new(std::sync::Mutex::new(Refusals::default()));
        let refused = refusals.clone();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent_by_us = sent.clone();
        let closing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = closing.clone();
        let task = tokio::spawn(async move {
            let mut backoff = BACKOFF_FIRST;
            let mut connected = true;
            loop {
                match poller.poll().await {
                    // Messages are handed over in line: no task hop per message.
                    Ok(Polled::Message(m)) => sink(Event::Message(m)),
                    Ok(Polled::ConnAck) => {
                        backoff = BACKOFF_FIRST;
                        connected = true;
                        // SUBSCRIBEs lost with the old connection will never be acked;
                        // the client subscribes everything again now.
                        let sent = sent_by_us.load(std::sync::atomic::Ordering::SeqCst);
                        suback_tx.send_modify(|n| *n = (*n).max(sent));
                        sink(Event::Connected { session });
                    }
                    Ok(Polled::SubAck(refusal)) => {
                        suback_tx.send_modify(|n| {
                            *n += 1;
                            if let Some(code) = refusal {
                                refused
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(*n, code);
                            }
                        });
                    }
                    Ok(Polled::Other) => {}
                    Err(_) if stop.load(std::sync::atomic::Ordering::SeqCst) => {
                        sink(Event::Closed);
                        break;
                    }
                    Err(e) => {
                        if std::mem::take(&mut connected) {
                            tracing::warn!(error = %e, "broker connection lost; reconnecting");
                            sink(Event::Lost);
                        } else {
                            tracing::debug!(error = %e, retry_in = ?backoff, "reconnect failed");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        session = next_session(session);
                        set_will(&mut poller, liveness.as_ref(), session);
                    }
                }
            }
        });
        Ok(TcpLink {
            client,
            version,
            subscribes: tokio::sync::Mutex::new(()),
            sent,
            subacks,
            refusals,
            task,
            closing,
        })
    }

    pub async fn publish(&self, out: Outgoing) -> Result<(), ClientError> {
        self.client.publish(out).await
    }

    pub fn try_publish(&self, out: Outgoing) -> Result<(), Outgoing> {
        self.client.try_publish(out)
    }

    /// Subscribes and waits (at most 10 s) for the broker's SUBACK, so that messages
    /// published after this returns are delivered.
    pub async fn subscribe(&self, filter: &str, q: u8) -> Result<(), ClientError> {
        let ticket = {
            let _order = self.subscribes.lock().await;
            self.client.subscribe(filter, q).await?;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
        };
        let mut acks = self.subacks.clone();
        let acked =
            tokio::time::timeout(Duration::from_secs(10), acks.wait_for(|n| *n >= ticket)).await;
        if acked.is_err() {
            tracing::warn!(filter, "no SUBACK within 10 s; continuing");
        }
        let refused = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(ticket);
        match refused {
            Some(reason) => Err(ClientError::Refused {
                filter: filter.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.client.unsubscribe(filter).await
    }

    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let result = self.client.disconnect().await;
        // Let the event loop send the DISCONNECT, then stop it.
        for _ in 0..50 {
            if self.task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.task.abort();
        result
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SUBACK refusals not yet taken by their subscriber; bounded (a subscriber that gave up
/// waiting never takes its entry, so the oldest are forgotten).
#[derive(Default)]
struct Refusals(std::collections::BTreeMap<u64, String>);

impl Refusals {
    fn insert(&mut self, ticket: u64, reason: String) {
        self.0.insert(ticket, reason);
        while self.0.len() > 64 {
            self.0.pop_first();
        }
    }

    fn take(&mut self, ticket: u64) -> Option<String> {
        self.0.remove(&ticket)
    }
}

fn set_will(poller: &mut Poller, liveness: Option<&Liveness>, session: u64) {
    if let Some(l) = liveness {
        poller.set_will(
            &l.status_topic,
            PluginStatus::offline(session).to_bytes().into(),
        );
    }
}
