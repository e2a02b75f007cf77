//! What a plugin host costs on the machine it runs on: its stripped binary size, its
//! memory with three real plugins (two Rust SDK plugins, one Python paho plugin), its
//! memory and CPU after a chatty fourth plugin wrote 200,000 lines (the logs ring is
//! bounded, so memory must not follow the output), and the plugins' own memory for
//! comparison. The hub is hcore in-process on loopback.
//!
//! Run: `cargo build --release -p hcore-examples --bin remote && cargo bench -p hcore-host`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hcore_client::protocol::commands::{PluginsList, PluginsStart};
use hcore_client::{Client, ClientOptions};

const CHATTY_LINES: u32 = 200_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

fn status_kb(pid: u32, field: &str) -> u64 {
    hcore_tests::binary::proc_status_kb(pid, field)
}

fn stripped_size(bin: &Path) -> u64 {
    let copy = std::env::temp_dir().join(format!("hcore-host-stripped-{}", std::process::id()));
    std::fs::copy(bin, &copy).unwrap();
    let ok = std::process::Command::new("strip")
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    let size = std::fs::metadata(&copy).unwrap().len();
    let _ = std::fs::remove_file(&copy);
    if ok {
        size
    } else {
        0
    }
}

fn config(dir: &Path, hub: &str) -> PathBuf {
    let remote = hcore_tests::binary::workspace_bin("remote");
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/python/thermostat.py"
    );
    let text = format!(
        "[host]\nbroker = \"{hub}\"\nid = \"bench-host\"\n\n\
         [[plugin]]\nid = \"weather-1\"\ncommand = \"{r}\"\n\n\
         [[plugin]]\nid = \"weather-2\"\ncommand = \"{r}\"\n\n\
         [[plugin]]\nid = \"thermo-1\"\ncommand = \"python3\"\nargs = [\"-u\", \"{python}\"]\n\n\
         [[plugin]]\nid = \"chatty\"\ncommand = \"sh\"\nautostart = false\n\
         args = [\"-c\", \"seq {CHATTY_LINES} | sed 's/^/a line of plugin output, number /'; sleep 600\"]\n",
        r = remote.display()
    );
    let path = dir.join("host.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn until(
    admin: &Client,
    f: impl Fn(&[hcore_client::protocol::commands::PluginInfo]) -> bool,
) {
    let start = Instant::now();
    loop {
        let list = admin.request(PluginsList {}).await.unwrap().plugins;
        if f(&list) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bench() {
    let hub = hcore_tests::hub::start().await;
    let dir = hcore_tests::TempDir::new();
    let conf = config(dir.path(), &hub.url());
    let bin = hcore_tests::binary::workspace_bin("hcore-host");
    let mut host = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = host.id().unwrap();
    let admin = Client::connect(&hub.url(), ClientOptions::new("bench-admin").quiet())
        .await
        .unwrap();
    until(&admin, |l| {
        ["weather-1", "weather-2", "thermo-1"]
            .iter()
            .all(|id| l.iter().any(|p| p.id == *id && p.online))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_kb(pid, "VmRSS:");
    let (anon, file) = (status_kb(pid, "RssAnon:"), status_kb(pid, "RssFile:"));
    let idle_cpu = hcore_tests::binary::proc_cpu_secs(pid);
    let plugin_rss: Vec<(String, u64)> = {
        let report = admin.call("bench-host.list", serde_json::json!({})).await;
        // Only the kernel may call the host: read the pids from the retained report.
        assert!(report.is_err());
        let mut sub = admin
            .subscribe("hc/plugin/bench-host/hosted")
            .await
            .unwrap();
        let m = sub.next().await.unwrap();
        let r: hcore_client::protocol::commands::HostedReport =
            serde_json::from_slice(&m.payload).unwrap();
        r.plugins
            .iter()
            .filter_map(|p| Some((p.id.clone(), status_kb(p.pid?, "VmRSS:"))))
            .collect()
    };

    let started = Instant::now();
    admin
        .request(PluginsStart {
            id: "chatty".into(),
        })
        .await
        .unwrap();
    // Wait until the last line is in the ring.
    loop {
        let logs = admin
            .request(hcore_client::protocol::commands::PluginsLogs {
                id: "chatty".into(),
                lines: Some(1),
            })
            .await
            .unwrap();
        if logs
            .lines
            .first()
            .is_some_and(|l| l.line.ends_with(&format!(" {CHATTY_LINES}")))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "chatty never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chatty_took = started.elapsed();
    let busy_cpu = hcore_tests::binary::proc_cpu_secs(pid) - idle_cpu;
    let after_rss = status_kb(pid, "VmRSS:");
    let peak = status_kb(pid, "VmHWM:");
    let size = std::fs::metadata(&bin).unwrap().len();
    let stripped = stripped_size(&bin);
    let _ = host.start_kill();
    let _ = host.wait().await;

    println!("hcore-host footprint ({}):", std::env::consts::ARCH);
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| binary, as built / stripped | {:.1} MB / {:.1} MB |",
        size as f64 / 1e6,
        stripped as f64 / 1e6
    );
    println!(
        "| host RSS, 3 plugins running, idle | {:.1} MB (heap and stacks {:.1} MB, mapped files {:.1} MB) |",
        idle_rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    for (id, kb) in &plugin_rss {
        println!(
            "| plugin {id} RSS (for comparison) | {:.1} MB |",
            *kb as f64 / 1024.0
        );
    }
    println!(
        "| {CHATTY_LINES} lines from a 4th plugin: took / host CPU | {:.2} s / {:.2} s ({:.1} us per line) |",
        chatty_took.as_secs_f64(),
        busy_cpu,
        busy_cpu * 1e6 / CHATTY_LINES as f64
    );
    println!(
        "| host RSS after them (ring of 500 lines) / peak | {:.1} MB / {:.1} MB |",
        after_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "| host RSS after / idle | {:.2}x |",
        after_rss as f64 / idle_rss as f64
    );
}
