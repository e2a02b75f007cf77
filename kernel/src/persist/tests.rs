//! The writer alone, with a recording publisher and (for failures) a flush that fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hcore_client::protocol::{ReplyTo, StateRecord, Topics};
use hcore_client::Outgoing;
use serde_json::{json, Value};

use super::*;
use crate::out::Publisher;
use crate::state::{Origin, StateRead, StateStore};
use crate::storage::{Storage, StorageRead, StorageWrite};

#[derive(Default)]
struct Recorder(Mutex<Vec<Outgoing>>);

impl Publisher for Recorder {
    fn publish(&self, m: Outgoing) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.0.lock().unwrap().push(m);
        Box::pin(async {})
    }
}

impl Recorder {
    fn take(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn json(m: &Outgoing) -> Value {
        serde_json::from_slice(&m.payload).unwrap_or(Value::Null)
    }
}

struct Fixture {
    persist: Persist,
    state: Arc<StateStore>,
    storage: Arc<Storage>,
    out: Arc<Recorder>,
    fail: Arc<AtomicBool>,
}

fn fixture() -> Fixture {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let state = Arc::new(
        StateStore::open(
            &db,
            crate::state::StateLimits {
                keys: usize::MAX,
                bytes: usize::MAX,
            },
        )
        .unwrap(),
    );
    let storage = Arc::new(
        Storage::open(
            &db,
            crate::quota::QuotaLimits {
                per_namespace: u64::MAX,
                total: u64::MAX,
            },
        )
        .unwrap(),
    );
    let out = Arc::new(Recorder::default());
    let fail = Arc::new(AtomicBool::new(false));
    let failing = fail.clone();
    let flush: Flush = Arc::new(move |db: &sled::Db| {
        if failing.load(Ordering::SeqCst) {
            return Err("disk on fire".into());
        }
        db.flush().map(|_| ()).map_err(|e| e.to_string())
    });
    let stores = Stores {
        db,
        state: state.clone(),
        storage: storage.clone(),
        topics: Topics::default(),
    };
    let persist = Persist::start_with(stores, out.clone(), 64, flush);
    Fixture {
        persist,
        state,
        storage,
        out,
        fail,
    }
}

fn reply(id: &str) -> ReplyTo {
    ReplyTo {
        topic: "hc/reply/t".into(),
        id: Some(json!(id)),
        correlation: None,
    }
}

fn set(key: &str, value: Value, id: &str) -> Job {
    Job::State {
        key: key.into(),
        write: StateWrite::Set {
            value,
            expected: None,
        },
        origin: Origin {
            source: "t".into(),
            parent: None,
        },
        reply: Some(reply(id)),
    }
}

/// Waits until the writer has published everything queued before (a read queued last
/// is answered last), and forgets that answer.
async fn drain(f: &Fixture) {
    let barrier = ReplyTo {
        topic: "barrier".into(),
        id: None,
        correlation: None,
    };
    f.persist
        .submit_wait(Job::ReadState {
            read: StateRead::Get("barrier".into()),
            reply: barrier,
        })
        .await
        .unwrap();
    loop {
        {
            let mut out = f.out.0.lock().unwrap();
            if let Some(i) = out.iter().position(|m| m.topic == "barrier") {
                out.remove(i);
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_records_events_and_replies_advance_together() {
    let f = fixture();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let p = f.persist.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    while p
                        .submit(set("k", json!([t, i]), &format!("{t}-{i}")))
                        .is_err()
                    {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    drain(&f).await;
    let out = f.out.take();
    let versions = |topic: &str, field: &str| -> Vec<u64> {
        out.iter()
            .filter(|m| m.topic == topic)
            .map(|m| Recorder::json(m)[field].as_u64().unwrap())
            .collect()
    };
    let records = versions("hc/state/k", "version");
    assert_eq!(records, (1..=1600).collect::<Vec<_>>());
    let replies: Vec<u64> = out
        .iter()
        .filter(|m| m.topic == "hc/reply/t")
        .map(|m| Recorder::json(m)["result"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(replies, records);
    let events: Vec<u64> = out
        .iter()
        .filter(|m| m.topic.starts_with("hc/event/kernel/state_changed/"))
        .map(|m| Recorder::json(m)["data"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(events, records);
    let committed = f.state.lock().records.get("k").unwrap().clone();
    assert_eq!(committed.version, 1600);
    let on_disk: StateRecord =
        serde_json::from_slice(&f.state.tree.get("k").unwrap().unwrap()).unwrap();
    assert_eq!(on_disk, committed);
}

#[tokio::test]
async fn a_read_behind_a_write_sees_it_and_nothing_unflushed() {
    let f = fixture();
    f.persist.submit(set("k", json!(1), "w")).unwrap();
    let read = StateRead::Get("k".into());
    assert!(f.state.answer_now(&read).is_none(), "the key is dirty");
    f.persist
        .submit(Job::ReadState {
            read: read.clone(),
            reply: reply("r"),
        })
        .unwrap();
    drain(&f).await;
    let out = f.out.take();
    let answer = out.iter().rev().find(|m| m.topic == "hc/reply/t").unwrap();
    assert_eq!(Recorder::json(answer)["result"]["value"], json!(1));
    assert_eq!(
        f.state.answer_now(&read).unwrap().unwrap()["value"],
        json!(1)
    );
}

#[tokio::test]
async fn a_failed_flush_answers_errors_and_memory_and_disk_keep_the_acknowledged_value() {
    let f = fixture();
    f.persist.submit(set("k", json!("good"), "1")).unwrap();
    f.persist
        .submit(Job::Storage {
            ns: "n".into(),
            write: StorageWrite::Set {
                key: "s".into(),
                value: json!("good"),
            },
            reply: reply("2"),
        })
        .unwrap();
    drain(&f).await;
    f.out.take();
    f.fail.store(true, Ordering::SeqCst);
    f.persist.submit(set("k", json!("bad"), "3")).unwrap();
    f.persist
        .submit(Job::Storage {
            ns: "n".into(),
            write: StorageWrite::Set {
                key: "s".into(),
                value: json!("bad"),
            },
            reply: reply("4"),
        })
        .unwrap();
    drain(&f).await;
    let out = f.out.take();
    let replies: Vec<Value> = out
        .iter()
        .filter(|m| m.topic == "hc/reply/t")
        .map(Recorder::json)
        .collect();
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert_eq!(r["error"]["code"], "internal", "{r}");
    }
    assert!(
        !out.iter().any(|m| m.topic == "hc/state/k"),
        "nothing published for a write that is not durable"
    );
    f.fail.store(false, Ordering::SeqCst);
    let record = f
        .state
        .answer_now(&StateRead::Get("k".into()))
        .unwrap()
        .unwrap();
    assert_eq!(
        (record["value"].clone(), record["version"].clone()),
        (json!("good"), json!(1))
    );
    let on_disk: StateRecord =
        serde_json::from_slice(&f.state.tree.get("k").unwrap().unwrap()).unwrap();
    assert_eq!(on_disk.value, json!("good"));
    let stored = StorageRead::Get { key: "s".into() };
    assert_eq!(
        f.storage.answer_now(&stored, "n").unwrap().unwrap()["value"],
        json!("good")
    );
    // The next write continues from the acknowledged version.
    f.persist.submit(set("k", json!("next"), "5")).unwrap();
    drain(&f).await;
    let out = f.out.take();
    let r = out.iter().find(|m| m.topic == "hc/reply/t").unwrap();
    assert_eq!(Recorder::json(r)["result"]["version"], json!(2));
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_growing() {
    let f = fixture();
    let mut refused = 0;
    for i in 0..1000 {
        if f.persist.submit(set("k", json!(i), "x")) == Err(Refusal::Busy) {
            refused += 1;
        }
    }
    assert!(refused > 0, "a 64-job queue took 1000 jobs at once");
    drain(&f).await;
}

#[tokio::test(start_paused = true)]
async fn a_later_republish_happens_once_however_often_it_is_asked() {
    let f = fixture();
    f.persist.submit(set("a", json!(1), "s1")).unwrap();
    drain(&f).await;
    f.out.take();
    for _ in 0..3 {
        f.persist
            .republish_later(std::time::Duration::from_secs(10));
    }
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    drain(&f).await;
    assert!(f.out.take().is_empty(), "not before its time");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    drain(&f).await;
    let again = f.out.take();
    assert_eq!(again.len(), 1, "one record, once");
    assert!(again[0].retain && again[0].topic == "hc/state/a");
    assert_eq!(Recorder::json(&again[0])["value"], 1);
}
