//! `$SYS/broker/...` read the way people read mosquitto's: `mosquitto_sub -t '$SYS/#'`.

use hcore_broker::BrokerConfig;
use hcore_tests::broker::*;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_are_readable_with_mosquitto_sub_and_hidden_from_hash() {
    let config = BrokerConfig {
        sys_interval_secs: 1,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut everything = v4(addr, "everything").await;
    everything.subscribe("#", QoS::AtMostOnce).await;
    for i in 0..5 {
        everything
            .client
            .publish("sys/test", QoS::AtMostOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut sub = mosquitto_sub(addr, &["-t", "$SYS/#", "-v"]);
    let mut lines = lines_of(&mut sub);
    let mut seen = std::collections::BTreeMap::new();
    let wanted = [
        "$SYS/broker/version",
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
        "$SYS/broker/messages/dropped",
    ];
    while !wanted.iter().all(|t| seen.contains_key(*t)) {
        let line = next_line(&mut lines).await;
        let (topic, value) = line.split_once(' ').expect("topic and value");
        seen.insert(topic.to_string(), value.to_string());
    }
    assert!(seen["$SYS/broker/version"].starts_with("hcore "));
    let number = |t: &str| seen[t].parse::<u64>().unwrap();
    assert!(number("$SYS/broker/clients/connected") >= 2, "{seen:?}");
    assert!(number("$SYS/broker/messages/received") >= 5, "{seen:?}");
    assert!(number("$SYS/broker/bytes/received") > 0);
    // `#` saw only the test's own messages, never `$SYS`.
    for _ in 0..5 {
        let p = everything.next_publish().await.unwrap();
        assert_eq!(p.topic, "sys/test");
    }
    let more = tokio::time::timeout(
        std::time::Duration::from_millis(1500),
        everything.next_publish(),
    )
    .await;
    assert!(more.is_err(), "a '#' subscriber received {more:?}");
    broker.shutdown().await;
}
