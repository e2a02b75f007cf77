//! hcore's plugin host: a small agent for a Raspberry Pi (or any machine on the LAN)
//! that runs the plugins listed in its config file as processes, restarts them by their
//! policy with a capped backoff, keeps their last output lines, and lets the hub manage
//! them: it connects to the hub with its own identity, reports its plugins retained on
//! `<root>/plugin/<host>/hosted`, and serves `<host>.start|stop|restart|logs|list` for
//! the kernel, which passes `plugins.*` commands on. Built on the SDK alone.
//!
//! Each plugin connects to the hub itself, with its own credential (the host hands it
//! `HCORE_URL`, `HCORE_ID`, `HCORE_USERNAME`, `HCORE_PASSWORD`), so it is an ordinary
//! plugin on the bus: its own status, will, services and grants.

mod backoff;
mod child;
pub mod config;
mod error;
mod report;
mod service;
mod supervisor;

use std::future::Future;
use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use tokio::sync::watch;

pub use backoff::Restart;
pub use config::HostConfig;
pub use error::HostError;
use supervisor::{Program, Supervised};

/// Longest wait between attempts to reach the hub at start.
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs the host until `shutdown` resolves; then stops every plugin (SIGTERM, then
/// SIGKILL after the stop timeout), reports them stopped and goes offline.
pub async fn run(config: HostConfig, shutdown: impl Future<Output = ()>) -> Result<(), HostError> {
    tokio::pin!(shutdown);
    let (changed, watcher) = watch::channel(());
    let client = tokio::select! {
        c = connect(&config, changed.clone()) => c?,
        _ = &mut shutdown => return Ok(()),
    };
    tracing::info!(
        identity = client.id(),
        plugins = config.plugins.len(),
        "connected to the hub"
    );
    let plugins: Vec<Supervised> = config
        .plugins
        .iter()
        .map(|p| Supervised::start(program(&config, p), changed.clone()))
        .collect();
    service::provide(&client, plugins.clone()).await?;
    report::publish(&client, &plugins).await;
    let reporter = tokio::spawn(report::follow(client.clone(), plugins.clone(), watcher));
    shutdown.await;
    tracing::info!("stopping: SIGTERM to every plugin");
    let stops = plugins.iter().map(|p| {
        let p = p.clone();
        tokio::spawn(async move { p.stop_program().await })
    });
    for stop in stops.collect::<Vec<_>>() {
        let _ = stop.await;
    }
    reporter.abort();
    report::publish(&client, &plugins).await;
    client.shutdown().await?;
    Ok(())
}

/// Connects to the hub, retrying with a backoff while it cannot be reached (a Pi often
/// boots before the hub); a refused login is final.
async fn connect(config: &HostConfig, changed: watch::Sender<()>) -> Result<Client, HostError> {
    let url = each_url(&config.host.broker, |node| {
        with_keep_alive(node, config.host.keep_alive_secs)
    });
    let mut wait = Duration::from_secs(1);
    loop {
        let mut options = ClientOptions::new(
            config
                .host
                .id
                .clone()
                .unwrap_or_else(|| config.identity().to_string()),
        );
        options.username = config.host.username.clone();
        options.password = config.host.password.clone();
        let changed = changed.clone();
        // Every connect republishes the report with the new session.
        options.on_connect = Some(std::sync::Arc::new(move |_, _| {
            let _ = changed.send(());
            Box::pin(async {})
        }));
        match Client::connect(&url, options).await {
            Ok(client) => return Ok(client),
            Err(e) if is_refusal(&e) => return Err(HostError::Connect(e)),
            Err(e) => {
                tracing::warn!(
                    "cannot reach the hub at {}: {e}; retrying in {wait:?}",
                    config.host.broker
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(CONNECT_RETRY_MAX);
            }
        }
    }
}

/// A login the hub refused will not work by retrying.
fn is_refusal(e: &hcore_client::ClientError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    ["not authorized", "bad user name", "password", "banned"]
        .iter()
        .any(|w| text.contains(w))
}

/// How to run one configured plugin.
fn program(config: &HostConfig, p: &config::PluginConfig) -> Program {
    // Output goes to a pipe and the logs ring: no colour codes (the config may say else).
    let mut env: Vec<(String, String)> = vec![("NO_COLOR".into(), "1".into())];
    env.extend(p.env.clone());
    env.push(("HCORE_URL".into(), plugin_url(config, p)));
    env.push(("HCORE_ID".into(), p.id.clone()));
    env.push(("HCORE_USERNAME".into(), p.id.clone()));
    if let Some(pw) = &p.password {
        env.push(("HCORE_PASSWORD".into(), pw.clone()));
    }
    if let (Some(cert), Some(key)) = (&p.cert, &p.key) {
        env.push(("HCORE_CERT".into(), cert.display().to_string()));
        env.push(("HCORE_KEY".into(), key.display().to_string()));
    }
    Program {
        id: p.id.clone(),
        command: p.command.clone(),
        args: p.args.clone(),
        cwd: p.cwd.clone(),
        env,
        restart: p.restart,
        autostart: p.autostart,
        stop_timeout: Duration::from_millis(config.host.stop_timeout_ms),
        backoff: config.backoff(),
        log_lines: config.host.log_lines,
    }
}

/// The hub's URL as a plugin uses it: its own user name and password, or client
/// certificate (neither on a listener that takes anonymous clients), the host's
/// keep-alive.
/// (`broker` may list several nodes, comma-separated: each gets the same.)
fn plugin_url(config: &HostConfig, p: &config::PluginConfig) -> String {
    each_url(&config.host.broker, |node| node_url(config, p, node))
}

/// `f` applied to each URL of a comma-separated list.
fn each_url(list: &str, f: impl Fn(&str) -> String) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(f)
        .collect::<Vec<_>>()
        .join(",")
}

fn node_url(config: &HostConfig, p: &config::PluginConfig, node: &str) -> String {
    let url = with_keep_alive(node, config.host.keep_alive_secs);
    let Ok(mut parsed) = url::Url::parse(&url) else {
        return url;
    };
    if let Some(password) = &p.password {
        let _ = parsed.set_username(&p.id);
        let _ = parsed.set_password(Some(password));
    }
    if let (Some(cert), Some(key)) = (&p.cert, &p.key) {
        parsed
            .query_pairs_mut()
            .append_pair("cert", &cert.display().to_string())
            .append_pair("key", &key.display().to_string());
    }
    parsed.to_string()
}

/// `url` with `keep_alive` set, unless it sets one.
fn with_keep_alive(url: &str, secs: u64) -> String {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("mqtt://{url}")
    };
    match url::Url::parse(&full) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "keep_alive") => {
            parsed
                .query_pairs_mut()
                .append_pair("keep_alive", &secs.to_string());
            parsed.to_string()
        }
        _ => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_get_their_own_credential_and_the_keep_alive() {
        let config: HostConfig = toml::from_str(
            "[host]\nbroker = \"mqtts://hub.local:8883?ca=/etc/hcore/ca.pem\"\nkeep_alive_secs = 10\n\
             [[plugin]]\nid = \"weather\"\ncommand = \"x\"\npassword = \"p@ss word\"\n",
        )
        .unwrap();
        let url = plugin_url(&config, &config.plugins[0]);
        assert_eq!(
            url,
            "mqtts://weather:p%40ss%20word@hub.local:8883?ca=/etc/hcore/ca.pem&keep_alive=10"
        );
        let o = hcore_client::transport::TcpOptions::from_url(&url).unwrap();
        assert_eq!(o.password.as_deref(), Some("p@ss word"));
        assert_eq!(o.keep_alive.as_secs(), 10);
        assert_eq!(
            with_keep_alive("hub:1884?keep_alive=7", 30),
            "mqtt://hub:1884?keep_alive=7"
        );
        // Without a password (anonymous on loopback) no user name either; or a
        // client certificate instead.
        let mut anonymous = config.plugins[0].clone();
        anonymous.password = None;
        assert!(!plugin_url(&config, &anonymous).contains('@'));
        let mut with_cert = anonymous.clone();
        with_cert.cert = Some("/etc/hcore/weather.pem".into());
        with_cert.key = Some("/etc/hcore/weather.key".into());
        let url = plugin_url(&config, &with_cert);
        let o = hcore_client::transport::TcpOptions::from_url(&url).unwrap();
        assert_eq!(o.username, None);
        let cert = o.tls.unwrap().cert.unwrap();
        assert_eq!(cert.to_str(), Some("/etc/hcore/weather.pem"));
    }

    #[test]
    fn each_node_of_a_cluster_gets_the_credential() {
        let config: HostConfig = toml::from_str(
            "[host]\nbroker = \"mqtt://n2:1883, mqtt://n3:1883\"\nkeep_alive_secs = 10\n\
             [[plugin]]\nid = \"weather\"\ncommand = \"x\"\npassword = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(
            plugin_url(&config, &config.plugins[0]),
            "mqtt://weather:pw@n2:1883?keep_alive=10,mqtt://weather:pw@n3:1883?keep_alive=10"
        );
    }
}
