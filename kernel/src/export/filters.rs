//! What a user's grants mean on a broker that knows only topic filters: the device
//! topics outside the protocol root, and the `.../set` command topics of state keys. Both
//! exports (mosquitto's ACL, nats-server's permissions) state a user's rights from these.

use crate::users::DEVICE_TOPICS;

/// Grants of topics outside the root, as ACL lines can state them. An ACL cannot say
/// "everything but the root", so a filter that would also cover the root (`#`, `+/...`)
/// becomes the device topic trees; filters inside the root are left out (the lines
/// above say what each user may do there).
pub(super) fn outside_root(root: &str, filters: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        if !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    };
    for f in filters {
        let first = f.split('/').next().unwrap_or("");
        match first {
            "#" | "+" => DEVICE_TOPICS.iter().for_each(|d| add(d)),
            _ if first == root => {}
            _ => add(f),
        }
    }
    out
}

/// The `.../set` command topics of the state keys a filter grants. An ACL cannot say
/// "ends with /set" after a `#`, so `a/#` grants keys `a` to four levels below it.
pub(super) fn state_set_topics(root: &str, key_filter: &str) -> Vec<String> {
    match key_filter.strip_suffix('#') {
        None => vec![format!("{root}/state/{key_filter}/set")],
        Some(prefix) => {
            let mut topics = Vec::new();
            if let Some(exact) = prefix.strip_suffix('/') {
                topics.push(format!("{root}/state/{exact}/set"));
            }
            let mut levels = String::new();
            for _ in 0..4 {
                levels.push_str("+/");
                topics.push(format!("{root}/state/{prefix}{levels}set"));
            }
            topics
        }
    }
}
