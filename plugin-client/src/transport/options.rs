//! Where a TCP client connects: one broker URL parsed into `TcpOptions`
//! (`mqtt[s]://[user[:password]@]host[:port][?version=&keep_alive=&ca=&cert=&key=]`), or
//! several, comma-separated, for the nodes of a cluster (`split_urls`).

use std::time::Duration;

use super::mqtt::MqttVersion;
use super::TlsOptions;
use crate::error::ClientError;

/// Most broker URLs one client takes.
pub const MAX_BROKERS: usize = 16;

/// The URLs in a comma-separated list of cluster nodes. A comma splits only where a
/// new `mqtt://` or `mqtts://` URL begins, so one in a password needs no escaping.
pub fn split_urls(urls: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in urls.match_indices(',') {
        let rest = &urls[i + 1..];
        if rest.trim_start().starts_with("mqtt://") || rest.trim_start().starts_with("mqtts://") {
            out.push(urls[start..i].trim());
            start = i + 1;
        }
    }
    out.push(urls[start..].trim());
    out
}

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
    /// These options with the credentials and TLS files given beside the URL, which win
    /// over the URL's; a client certificate without a user name logs in as `id` (its CN).
    pub fn with_login(
        mut self,
        username: Option<&str>,
        password: Option<&str>,
        files: &TlsOptions,
        id: &str,
    ) -> TcpOptions {
        if username.is_some() {
            self.username = username.map(str::to_string);
            self.password = password.map(str::to_string);
        }
        if let Some(tls) = &mut self.tls {
            let o = files.clone();
            tls.ca = o.ca.or(tls.ca.take());
            tls.cert = o.cert.or(tls.cert.take());
            tls.key = o.key.or(tls.key.take());
            if tls.cert.is_some() && self.username.is_none() {
                self.username = Some(id.to_string());
            }
        }
        self
    }

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
    use super::{split_urls, MqttVersion, TcpOptions};

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
    fn cluster_nodes_are_comma_separated_urls() {
        assert_eq!(
            split_urls("mqtt://u:p,w@n1:1883, mqtt://n2:1883,mqtts://n3"),
            ["mqtt://u:p,w@n1:1883", "mqtt://n2:1883", "mqtts://n3"]
        );
        assert_eq!(split_urls("hub.local:1883"), ["hub.local:1883"]);
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
