//! TLS on a LAN listener: a remote plugin in another network namespace (a Raspberry Pi)
//! logs in with its own user over `mqtts://` and provides a service; the CLI calls it over
//! TLS, with a password and with a client certificate (its CN is the user); plain MQTT
//! on the TLS port, a broker certificate from an unknown CA and anonymous clients fail.

use std::path::Path;

use hcore_tests::binary::*;
use hcore_tests::netns::{self, Netns};
use hcore_tests::{TempDir, WAIT};

/// Runs the `hcore` CLI; (success, stdout + stderr).
async fn cli(args: &[&str]) -> (bool, String) {
    let out = hcore().args(args).output().await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn certs(dir: &Path, args: &[&str]) {
    let st = std::process::Command::new(hcore_bin())
        .args(["certs", "--dir"])
        .arg(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "hcore certs {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_on_the_lan_is_called_by_the_cli_over_tls() {
    let dir = TempDir::new();
    let (data, pki) = (dir.path().join("data"), dir.path().join("certs"));
    // The plugin runs in a network namespace (another machine on a veth link) when this
    // process may make one (root); otherwise on this machine's own LAN address. Either
    // way the hub's listener is not on loopback, so anonymous clients are refused there.
    let pi = netns::available().then(Netns::create);
    let hub_ip = match &pi {
        Some(ns) => ns.host_ip,
        None => netns::lan_address().expect("a non-loopback IPv4 address"),
    };
    let hub = hub_ip.to_string();
    certs(&pki, &["server", &hub, "localhost"]);
    certs(&pki, &["client", "admin"]);
    add_user(&data, "weather", "plugin", "w3ather");
    add_user(&data, "admin", "admin", "s3cret");
    let port = std::net::TcpListener::bind((hub_ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |f: &str| pki.join(f).display().to_string();
    let config = dir.path().join("hcore.toml");
    std::fs::write(
        &config,
        format!(
            "[[broker.listeners]]\nname = \"local\"\nbind = \"127.0.0.1:0\"\n\n\
             [[broker.listeners]]\nname = \"lan\"\nbind = \"{hub}:{port}\"\n\
             [broker.listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            p("server.pem"),
            p("server.key"),
            p("ca.pem")
        ),
    )
    .unwrap();
    let (_hcore, _local) = spawn_configured(&config, &data).await;

    // The plugin, on the other machine, with its own user, over TLS.
    let plugin_url = format!("mqtts://weather:w3ather@{hub}:{port}?ca={}", p("ca.pem"));
    let mut plugin = match &pi {
        Some(ns) => ns.command(workspace_bin("remote")),
        None => tokio::process::Command::new(workspace_bin("remote")),
    };
    let _plugin = plugin
        .kill_on_drop(true)
        .arg(&plugin_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // The CLI calls it over TLS with a password (once it has registered)...
    let tls_url = format!("mqtts://admin:s3cret@{hub}:{port}");
    let ca = p("ca.pem");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (ok, out) = cli(&["call", "weather.now", "--url", &tls_url, "--ca", &ca]).await;
        if ok && out.contains("celsius") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never answered: {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // ...and with a client certificate whose CN (admin) is the user.
    let cert_url = format!("mqtts://{hub}:{port}");
    let (ok, out) = cli(&[
        "call",
        "weather.now",
        "--url",
        &cert_url,
        "--ca",
        &ca,
        "--cert",
        &p("admin.pem"),
        "--key",
        &p("admin.key"),
        "--id",
        "admin",
    ])
    .await;
    assert!(ok && out.contains("celsius"), "{out}");

    // Refused: plain MQTT on the TLS port, a broker whose CA is not trusted, anonymous.
    let plain = format!("mqtt://admin:s3cret@{hub}:{port}");
    let (ok, _) = cli(&["call", "kernel.info", "--url", &plain, "--timeout", "2"]).await;
    assert!(!ok, "plain MQTT was served on the TLS port");
    let (ok, out) = cli(&["call", "kernel.info", "--url", &tls_url, "--timeout", "2"]).await;
    assert!(
        !ok,
        "a broker certificate from an unknown CA was trusted: {out}"
    );
    let anon = format!("mqtts://{hub}:{port}");
    let (ok, out) = cli(&["call", "kernel.info", "--url", &anon, "--ca", &ca]).await;
    assert!(!ok && out.contains("NotAuthorized"), "{out}");
}

/// A hub whose only listener serves TLS on loopback (certificates from `hcore certs` in
/// `pki`), with `connect_timeout_ms`; its `mqtts://` URL trusting that CA.
async fn tls_hub(dir: TempDir, connect_timeout_ms: u64) -> (hcore_tests::hub::Harness, String) {
    use hcore_tests::hub::*;
    let pki = dir.path().join("certs");
    certs(&pki, &["server", "127.0.0.1"]);
    let mut s = settings(&dir);
    let mut tls = hcore_broker::ListenerConfig::new("tls", "127.0.0.1:0".parse().unwrap());
    tls.tls = Some(hcore_broker::config::TlsConfig {
        cert: pki.join("server.pem"),
        key: pki.join("server.key"),
        client_ca: None,
        require_client_cert: false,
    });
    s.broker.listeners = vec![tls];
    s.broker.connect_timeout_ms = connect_timeout_ms;
    let h = start_settings(dir, &s, vec![]).await;
    let url = format!("mqtts://{}?ca={}", h.addr, pki.join("ca.pem").display());
    (h, url)
}

async fn tls_client(url: &str, id: &str) -> hcore_client::Client {
    hcore_client::Client::connect(url, hcore_client::ClientOptions::new(id).quiet())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_many_messages_cross_tls_intact_and_in_order() {
    let (h, url) = tls_hub(TempDir::new(), 10_000).await;
    let (tx, rx) = (tls_client(&url, "tx").await, tls_client(&url, "rx").await);
    let mut sub = rx.subscribe("bulk/#").await.unwrap();
    // Sizes across TLS record boundaries (16 KiB) and the reader's chunk (64 KiB).
    let sizes = [1, 100, 16_383, 16_384, 16_385, 70_000, 300_000];
    let mut sent = Vec::new();
    for i in 0..120 {
        let size = sizes[i % sizes.len()];
        let payload: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        tx.publish_raw(&format!("bulk/{i}"), payload.clone(), false)
            .await
            .unwrap();
        sent.push(payload);
    }
    for (i, payload) in sent.iter().enumerate() {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.topic, format!("bulk/{i}"));
        assert!(
            m.payload[..] == payload[..],
            "message {i} changed on the way"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_and_silence_on_the_tls_port_are_cut_off() {
    use hcore_tests::wire::{connect_packet, Wire};
    let (h, url) = tls_hub(TempDir::new(), 300).await;
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    for bytes in [connect_packet(5, "plain", 30, true), garbage, Vec::new()] {
        let mut w = Wire::connect(h.addr).await;
        if !bytes.is_empty() {
            w.send(&bytes).await;
        }
        // Plain MQTT, junk, or nothing at all (past connect_timeout_ms): closed.
        assert!(w.closed().await, "the TLS port kept a bad connection open");
    }
    // The listener still serves real clients.
    let c = tls_client(&url, "after").await;
    c.state()
        .set("after/ok", serde_json::json!(true))
        .await
        .unwrap();
    h.stop().await;
}
