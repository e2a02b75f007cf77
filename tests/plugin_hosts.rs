//! Plugins on other Raspberry Pis, managed from the hub. Two network namespaces play two
//! Pis, each running `hcore-host` with a Rust plugin (the examples' `remote`) and a
//! Python paho plugin (examples/python/thermostat.py), each plugin with its own login.
//! From the hub: list, stop, start, restart, logs; a crashing plugin is restarted with
//! backoff and its failure is visible; a cut link takes a host and its plugins offline
//! (calls fail fast, none waits for its deadline) and healing brings them back with new
//! sessions; a frozen plugin (SIGSTOP) is taken offline; SIGTERM to a host stops its
//! plugins; SIGKILL to a host takes it and its plugins offline. The timings are printed
//! (docs/DISTRIBUTED.md has a table of them).
//!
//! Needs root for the namespaces (CI runs as root); without it the test says so and
//! does nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcore_client::protocol::commands::{
    PluginInfo, PluginsList, PluginsLogs, PluginsRestart, PluginsStart, PluginsStop,
};
use hcore_client::{CallOptions, Client, ClientError, ClientOptions, ErrorCode};
use hcore_tests::binary::*;
use hcore_tests::netns::{self, Netns};
use hcore_tests::TempDir;
use serde_json::json;
use tokio::process::Child;

/// The keep-alive of the hosts and their plugins, seconds (the SDK's minimum).
const KEEP_ALIVE: u64 = 5;
/// Longest any step may take (a will fires 1.5 keep-alives after the cut).
const STEP: Duration = Duration::from_secs(40);

struct Site {
    ns: Netns,
    host: Child,
}

fn python_plugin() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/thermostat.py"
    )
    .to_string()
}

/// A host's config: its Rust and Python plugins, and on the first host a plugin that
/// always crashes.
fn host_config(dir: &Path, site: &str, hub: &str, crashy: bool) -> PathBuf {
    let mut text = format!(
        "[host]\nbroker = \"mqtt://{hub}\"\nusername = \"host-{site}\"\npassword = \"pw-host-{site}\"\n\
         keep_alive_secs = {KEEP_ALIVE}\nstop_timeout_ms = 3000\nrestart_min_ms = 300\nrestart_max_ms = 1200\n\n\
         [[plugin]]\nid = \"weather-{site}\"\ncommand = \"{}\"\npassword = \"pw-weather-{site}\"\n\
         env = {{ RUST_LOG = \"info\" }}\n\n\
         [[plugin]]\nid = \"thermo-{site}\"\ncommand = \"python3\"\nargs = [\"-u\", \"{}\"]\n\
         password_file = \"thermo-{site}.pass\"\nrestart = \"always\"\n",
        workspace_bin("remote").display(),
        python_plugin(),
    );
    if crashy {
        text.push_str(&format!(
            "\n[[plugin]]\nid = \"crashy-{site}\"\ncommand = \"sh\"\n\
             args = [\"-c\", \"echo starting; echo 'boom: no sensor on /dev/i2c-1' >&2; exit 3\"]\n\
             password = \"pw-crashy-{site}\"\n"
        ));
    }
    std::fs::write(
        dir.join(format!("thermo-{site}.pass")),
        format!("pw-thermo-{site}\n"),
    )
    .unwrap();
    let path = dir.join(format!("host-{site}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn plugins(admin: &Client) -> Vec<PluginInfo> {
    admin.request(PluginsList {}).await.unwrap().plugins
}

fn find<'a>(list: &'a [PluginInfo], id: &str) -> Option<&'a PluginInfo> {
    list.iter().find(|p| p.id == id)
}

/// Polls `plugins.list` until `f` holds; returns how long that took.
async fn until(admin: &Client, what: &str, f: impl Fn(&[PluginInfo]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let list = plugins(admin).await;
        if f(&list) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < STEP,
            "{what}: not reached; plugins: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn online(list: &[PluginInfo], id: &str) -> bool {
    find(list, id).is_some_and(|p| p.online)
}

fn offline(list: &[PluginInfo], id: &str) -> bool {
    find(list, id).is_some_and(|p| !p.online)
}

/// Calls `method` until it answers (a plugin registers a moment after it is online).
async fn until_answers(admin: &Client, method: &str, params: serde_json::Value) {
    let start = Instant::now();
    loop {
        match admin.call(method, params.clone()).await {
            Ok(_) => return,
            Err(e) => assert!(start.elapsed() < STEP, "{method} never answered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A call with a long deadline: (error code, how long it took).
async fn timed_call(admin: &Client, method: &str) -> (Option<ErrorCode>, Duration) {
    let start = Instant::now();
    let options = CallOptions {
        timeout: Some(Duration::from_secs(30)),
        parent: None,
    };
    let outcome = admin.call_with(method, json!({}), options).await;
    let code = match outcome {
        Ok(_) => None,
        Err(ClientError::Rpc(e)) => Some(e.code),
        Err(e) => panic!("{method}: {e}"),
    };
    (code, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_on_two_pis_are_managed_from_the_hub() {
    if !netns::available() {
        eprintln!("skipped: network namespaces need root (CI runs this as root)");
        return;
    }
    let dir = TempDir::new();
    let data = dir.path().join("data");
    for site in ["a", "b"] {
        add_user(
            &data,
            &format!("host-{site}"),
            "plugin",
            &format!("pw-host-{site}"),
        );
        for p in ["weather", "thermo", "crashy"] {
            add_user(
                &data,
                &format!("{p}-{site}"),
                "plugin",
                &format!("pw-{p}-{site}"),
            );
        }
    }
    let port = hcore_tests::free_port();
    let config = dir.path().join("hcore.toml");
    std::fs::write(
        &config,
        format!(
            "[[broker.listeners]]\nname = \"local\"\nbind = \"127.0.0.1:0\"\n\n\
             [[broker.listeners]]\nname = \"lan\"\nbind = \"0.0.0.0:{port}\"\n"
        ),
    )
    .unwrap();
    let (_hub, local) = spawn_configured(&config, &data).await;
    // On loopback the CLI-style client is an administrator.
    let admin = Client::connect(&local, ClientOptions::new("admin-test").quiet())
        .await
        .unwrap();

    let mut sites = Vec::new();
    for (name, crashy) in [("a", true), ("b", false)] {
        let ns = Netns::create();
        let hub = format!("{}:{port}", ns.host_ip);
        let conf = host_config(dir.path(), name, &hub, crashy);
        let host = ns
            .command(workspace_bin("hcore-host"))
            .arg("--config")
            .arg(&conf)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(hcore_tests::test_log())
            .spawn()
            .unwrap();
        sites.push(Site { ns, host });
    }

    // Both hosts and their plugins come up, listed as hosted with their host.
    let up = until(&admin, "everything online", |l| {
        ["a", "b"].iter().all(|s| {
            online(l, &format!("host-{s}"))
                && online(l, &format!("weather-{s}"))
                && online(l, &format!("thermo-{s}"))
        })
    })
    .await;
    let list = plugins(&admin).await;
    for s in ["a", "b"] {
        for p in ["weather", "thermo"] {
            let info = find(&list, &format!("{p}-{s}")).unwrap();
            assert_eq!(info.kind, "hosted", "{info:?}");
            assert_eq!(info.host.as_deref(), Some(format!("host-{s}").as_str()));
            assert_eq!(info.state, "running", "{info:?}");
        }
    }
    until_answers(&admin, "weather-a.now", json!({})).await;
    until_answers(&admin, "thermo-b.target", json!({"celsius": 20.5})).await;

    // The crashing plugin is restarted with backoff; why it fails is visible.
    until(&admin, "crashy restarted twice", |l| {
        find(l, "crashy-a").is_some_and(|p| p.restarts >= 2)
    })
    .await;
    let crashy = find(&plugins(&admin).await, "crashy-a").cloned().unwrap();
    let error = crashy.error.clone().unwrap_or_default();
    assert!(
        error.contains("exited with code 3") && error.contains("boom: no sensor"),
        "{crashy:?}"
    );
    let logs = admin
        .request(PluginsLogs {
            id: "crashy-a".into(),
            lines: Some(10),
        })
        .await
        .unwrap();
    assert!(
        logs.lines
            .iter()
            .any(|l| l.stream == "stderr" && l.line.contains("boom"))
            && logs
                .lines
                .iter()
                .any(|l| l.stream == "stdout" && l.line == "starting"),
        "{logs:?}"
    );
    admin
        .request(PluginsStop {
            id: "crashy-a".into(),
        })
        .await
        .unwrap();

    // Stop, start and restart from the hub.
    let stopped = admin
        .request(PluginsStop {
            id: "weather-a".into(),
        })
        .await
        .unwrap();
    assert_eq!(stopped.state, "stopped");
    until(&admin, "weather-a stopped and offline", |l| {
        offline(l, "weather-a") && find(l, "weather-a").unwrap().state == "stopped"
    })
    .await;
    let (code, _) = timed_call(&admin, "weather-a.now").await;
    assert_eq!(code, Some(ErrorCode::NoResponders));
    let started = admin
        .request(PluginsStart {
            id: "weather-a".into(),
        })
        .await
        .unwrap();
    assert_eq!(started.state, "running");
    until_answers(&admin, "weather-a.now", json!({})).await;

    let before = find(&plugins(&admin).await, "thermo-b").unwrap().session;
    admin
        .request(PluginsRestart {
            id: "thermo-b".into(),
        })
        .await
        .unwrap();
    until(&admin, "thermo-b back with a new session", |l| {
        find(l, "thermo-b").is_some_and(|p| p.online && p.session > before)
    })
    .await;
    until_answers(&admin, "thermo-b.target", json!({"celsius": 19})).await;
    let logs = admin
        .request(PluginsLogs {
            id: "thermo-b".into(),
            lines: None,
        })
        .await
        .unwrap();
    assert!(
        logs.lines.iter().any(|l| l.line.contains("kernel replied")),
        "the Python plugin's prints: {logs:?}"
    );

    // Only administrators manage plugins, and only the kernel commands a host.
    let plugin_user = Client::connect(
        &format!("mqtt://weather-b:pw-weather-b@127.0.0.1:{port}"),
        ClientOptions::new("intruder").quiet(),
    )
    .await
    .unwrap();
    for (method, params) in [
        ("plugins.stop", json!({"id": "weather-a"})),
        ("plugins.logs", json!({"id": "thermo-a"})),
        ("host-a.stop", json!({"id": "weather-a"})),
    ] {
        match plugin_user.call(method, params).await {
            Err(ClientError::Rpc(e)) => assert_eq!(e.code, ErrorCode::Forbidden, "{method}"),
            other => panic!("{method}: {other:?}"),
        }
    }
    plugin_user.shutdown().await.unwrap();

    // Cut Pi a's link: its host and plugins go offline, calls fail fast.
    let sessions: Vec<u64> = {
        let l = plugins(&admin).await;
        ["host-a", "weather-a", "thermo-a"]
            .iter()
            .map(|id| find(&l, id).unwrap().session)
            .collect()
    };
    let site_a = &sites[0];
    site_a.ns.cut();
    let cut = Instant::now();
    let in_flight = {
        let admin = admin.clone();
        tokio::spawn(async move { timed_call(&admin, "weather-a.now").await })
    };
    let gone = until(&admin, "site a offline", |l| {
        offline(l, "host-a") && offline(l, "weather-a") && offline(l, "thermo-a")
    })
    .await;
    let (code, in_flight_took) = in_flight.await.unwrap();
    assert!(
        matches!(
            code,
            Some(ErrorCode::Unavailable) | Some(ErrorCode::NoResponders)
        ),
        "a call during the cut: {code:?} after {in_flight_took:?}"
    );
    let (after_code, after_took) = timed_call(&admin, "thermo-a.target").await;
    assert_eq!(after_code, Some(ErrorCode::NoResponders));
    // Site b is untouched.
    until_answers(&admin, "weather-b.now", json!({})).await;

    // Heal: everything comes back by itself, with new sessions.
    site_a.ns.heal();
    let healed = Instant::now();
    let back = until(&admin, "site a back", |l| {
        ["host-a", "weather-a", "thermo-a"]
            .iter()
            .zip(&sessions)
            .all(|(id, old)| find(l, id).is_some_and(|p| p.online && p.session > *old))
    })
    .await;
    until_answers(&admin, "weather-a.now", json!({})).await;
    until_answers(&admin, "thermo-a.target", json!({"celsius": 22})).await;
    let answering = healed.elapsed();

    // Freeze a plugin: the broker stops hearing from it and takes it offline.
    let before_freeze = find(&plugins(&admin).await, "weather-b").unwrap().session;
    let pid = host_pid_of(&admin, "host-b", "weather-b").await;
    signal(pid, "STOP");
    let frozen = Instant::now();
    let (frozen_code, frozen_took) = timed_call(&admin, "weather-b.now").await;
    let frozen_offline =
        until(&admin, "frozen plugin offline", |l| offline(l, "weather-b")).await + frozen_took;
    assert!(
        matches!(
            frozen_code,
            Some(ErrorCode::Unavailable) | Some(ErrorCode::NoResponders)
        ),
        "a call to a frozen plugin: {frozen_code:?}"
    );
    signal(pid, "CONT");
    until(&admin, "thawed plugin back", |l| {
        find(l, "weather-b").is_some_and(|p| p.online && p.session > before_freeze)
    })
    .await;
    let thawed = frozen.elapsed();

    // SIGTERM to host b: its plugins are stopped (offline at once) and it goes offline.
    let term = Instant::now();
    sigterm(sites[1].host.id().unwrap());
    until(&admin, "host b stopped with its plugins", |l| {
        offline(l, "host-b") && offline(l, "weather-b") && offline(l, "thermo-b")
    })
    .await;
    let host_stop = term.elapsed();
    let _ = sites[1].host.wait().await;

    // SIGKILL to host a: its will marks it offline; its plugins get SIGTERM from the
    // kernel (parent-death signal) and go offline too.
    let kill = Instant::now();
    kill9(&mut sites[0].host).await;
    until(&admin, "host a killed, its plugins gone", |l| {
        offline(l, "host-a")
            && offline(l, "weather-a")
            && offline(l, "thermo-a")
            && find(l, "weather-a").unwrap().state == "host offline"
    })
    .await;
    let host_kill = kill.elapsed();

    eprintln!("\nplugin hosts (keep-alive {KEEP_ALIVE} s):");
    eprintln!("| event | measured |");
    eprintln!("|---|---|");
    eprintln!("| two hosts and four plugins online after start | {up:.1?} |");
    eprintln!(
        "| link cut -> host and plugins offline | {gone:.1?} (1.5x keep-alive = {:.1} s) |",
        KEEP_ALIVE as f64 * 1.5
    );
    eprintln!("| call in flight at the cut | {code:?} after {in_flight_took:.1?} |");
    eprintln!("| call after the will | {after_code:?} after {after_took:.1?} |");
    eprintln!("| link healed -> all online, new sessions | {back:.1?} |");
    eprintln!("| link healed -> calls answered | {answering:.1?} |");
    eprintln!("| plugin frozen (SIGSTOP) -> call | {frozen_code:?} after {frozen_took:.1?} |");
    eprintln!("| plugin frozen -> offline | {frozen_offline:.1?} |");
    eprintln!("| SIGCONT -> back online | {thawed:.1?} after the freeze |");
    eprintln!("| SIGTERM to a host -> it and its plugins offline | {host_stop:.1?} |");
    eprintln!("| SIGKILL to a host -> it and its plugins offline | {host_kill:.1?} |");
    eprintln!("(the cut began {:.1?} before the end)", cut.elapsed());
}

/// The pid a host reports for one of its plugins (from its retained report).
async fn host_pid_of(admin: &Client, host: &str, plugin: &str) -> u32 {
    let mut sub = admin
        .subscribe(&format!("hc/plugin/{host}/hosted"))
        .await
        .unwrap();
    let m = tokio::time::timeout(STEP, sub.next())
        .await
        .expect("the host's report")
        .expect("subscription open");
    let report: hcore_client::protocol::commands::HostedReport =
        serde_json::from_slice(&m.payload).unwrap();
    report
        .plugins
        .iter()
        .find(|p| p.id == plugin)
        .and_then(|p| p.pid)
        .expect("a running plugin has a pid")
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
