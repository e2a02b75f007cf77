//! The registry's rules, one test each.

use super::*;

fn m(s: &str) -> MethodName {
    MethodName::new(s).unwrap()
}

#[test]
fn stale_offline_is_ignored() {
    let mut r = Registry::default();
    r.on_manifest(
        "p",
        Manifest {
            services: vec!["svc.m".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::online(5)),
        StatusChange::Online
    );
    assert!(r.is_provided("svc.m"));
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::offline(4)),
        StatusChange::Stale
    );
    assert!(r.is_provided("svc.m"));
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::offline(5)),
        StatusChange::Offline
    );
    assert!(!r.is_provided("svc.m"));
}

fn hosted(id: &str, state: &str) -> HostedPlugin {
    HostedPlugin {
        id: id.into(),
        state: state.into(),
        pid: Some(7),
        restarts: 1,
        error: None,
        retry_at: None,
    }
}

#[test]
fn a_host_report_claims_its_plugins_until_it_drops_them() {
    let mut r = Registry::default();
    r.on_status("pi", "pi", &PluginStatus::online(10));
    r.plugin("builtin", Kind::InProcess).kind = Kind::InProcess;
    let report = |session, plugins| HostedReport { session, plugins };
    r.on_hosted(
        "pi",
        report(
            10,
            vec![
                hosted("weather", "running"),
                hosted("pi", "running"),
                hosted("builtin", "x"),
            ],
        ),
    );
    assert_eq!(r.host_of("weather"), Some(("pi".into(), true)));
    assert_eq!(r.host_of("pi"), None, "a host cannot host itself");
    assert_eq!(
        r.host_of("builtin"),
        None,
        "in-process plugins stay the kernel's"
    );
    let info = r.plugins().into_iter().find(|p| p.id == "weather").unwrap();
    assert_eq!(
        (info.kind.as_str(), info.state.as_str()),
        ("hosted", "running")
    );
    assert_eq!(info.host.as_deref(), Some("pi"));

    // Older than the host's session: ignored.
    r.on_hosted("pi", report(9, vec![]));
    assert!(r.host_of("weather").is_some());
    // The host goes offline: its plugins' state is unknown.
    r.on_status("pi", "pi", &PluginStatus::offline(10));
    assert_eq!(r.host_of("weather"), Some(("pi".into(), false)));
    let info = r.plugins().into_iter().find(|p| p.id == "weather").unwrap();
    assert_eq!(info.state, "host offline");
    // A new report without it: no longer hosted, and forgotten (it never connected).
    r.on_hosted("pi", report(11, vec![]));
    assert_eq!(r.host_of("weather"), None);
    assert!(r.plugins().iter().all(|p| p.id != "weather"));
}

#[test]
fn an_online_plugin_owns_the_state_commands_its_manifest_names() {
    let mut r = Registry::default();
    r.on_manifest(
        "devices",
        Manifest {
            state_commands: vec!["devices/+".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        r.state_command_owner("devices/lamp"),
        None,
        "not online yet"
    );
    r.on_status("devices", "devices", &PluginStatus::online(1));
    assert_eq!(r.state_command_owner("devices/lamp"), Some("devices"));
    assert_eq!(r.state_command_owner("devices/lamp/extra"), None);
    assert_eq!(r.state_command_owner("thermostat/target"), None);
    r.on_status("devices", "devices", &PluginStatus::offline(1));
    assert_eq!(r.state_command_owner("devices/lamp"), None);
}

#[test]
fn a_host_cannot_claim_what_another_online_host_runs() {
    let mut r = Registry::default();
    r.on_status("pi-a", "pi-a", &PluginStatus::online(1));
    r.on_status("pi-b", "pi-b", &PluginStatus::online(1));
    r.on_hosted(
        "pi-a",
        HostedReport {
            session: 1,
            plugins: vec![hosted("lamp", "running")],
        },
    );
    r.on_hosted(
        "pi-b",
        HostedReport {
            session: 1,
            plugins: vec![hosted("lamp", "running")],
        },
    );
    assert_eq!(r.host_of("lamp"), Some(("pi-a".into(), true)));
    // Once pi-a is gone, pi-b may run it.
    r.on_status("pi-a", "pi-a", &PluginStatus::offline(1));
    r.on_hosted(
        "pi-b",
        HostedReport {
            session: 1,
            plugins: vec![hosted("lamp", "running")],
        },
    );
    assert_eq!(r.host_of("lamp"), Some(("pi-b".into(), true)));
}

#[test]
fn kernel_services_cannot_be_registered() {
    let mut r = Registry::default();
    let e = r.register("p", &[m("state.get")]).unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
}

#[test]
fn a_manifest_registers_what_it_can_and_says_what_it_could_not() {
    let mut r = Registry::default();
    r.on_manifest(
        "p",
        Manifest {
            services: vec!["lamp.on".into(), "state.set".into(), "no dot".into()],
            ..Default::default()
        },
    );
    r.on_status("p", "p", &PluginStatus::online(1));
    assert!(r.is_provided("lamp.on"));
    assert!(!r.is_provided("state.set"));
    let info = &r.plugins()[0];
    let error = info.error.as_deref().unwrap();
    assert!(
        error.contains("state.set") && error.contains("no dot"),
        "{error}"
    );
}

#[test]
fn a_connection_back_with_a_new_session_before_its_will_is_a_reconnect() {
    let mut r = Registry::default();
    r.register("p", &[m("p.x")]).unwrap();
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::online(1)),
        StatusChange::Online
    );
    assert_eq!(
        r.on_status("p", "p-2", &PluginStatus::online(1)),
        StatusChange::Unchanged
    );
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::online(2)),
        StatusChange::Reconnected
    );
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::offline(1)),
        StatusChange::Stale,
        "the old connection's late will"
    );
    assert_eq!(
        r.on_status("p", "p", &PluginStatus::offline(2)),
        StatusChange::ReplicaOffline
    );
    assert_eq!(
        r.on_status("p", "p-2", &PluginStatus::offline(1)),
        StatusChange::Offline
    );
    assert!(!r.is_provided("p.x"));
}
