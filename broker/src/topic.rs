//! Topic names and filters: validation and matching, per MQTT 3.1.1 section 4.7 and
//! MQTT 5 section 4.7.
//!
//! The edge validates every topic and filter itself before rumqttd's router sees it: the
//! router disconnects a client for a `$` filter and accepts wildcards in topic names.

/// Longest topic or filter MQTT can encode.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Checks a topic name a client publishes to.
pub fn validate_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("empty topic name");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err("topic name longer than 65535 bytes");
    }
    if topic.contains(['+', '#']) {
        return Err("wildcard in a topic name");
    }
    if topic.contains('\0') {
        return Err("NUL character in a topic name");
    }
    Ok(())
}

/// Checks a topic filter a client subscribes to (without a `$share/` prefix).
pub fn validate_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("empty topic filter");
    }
    if filter.len() > MAX_TOPIC_LEN {
        return Err("topic filter longer than 65535 bytes");
    }
    if filter.contains('\0') {
        return Err("NUL character in a topic filter");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err("'#' must be the whole last level");
        }
        if level.contains('+') && level != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

/// A `$share/<group>/<filter>` subscription, split into group and filter.
pub fn parse_shared(filter: &str) -> Option<Result<(&str, &str), &'static str>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err("shared subscription without a topic filter"));
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Some(Err("invalid shared subscription group name"));
    }
    Some(validate_filter(inner).map(|()| (group, inner)))
}

/// Does `topic` match `filter`? Wildcards in the first level never match topics that start
/// with `$` (spec 4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match t.next() {
            Some(level) if f == "+" || f == level => continue,
            _ => return false,
        }
    }
    t.next().is_none()
}

/// Does the filter contain a wildcard?
pub fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic("a/b").is_ok());
        assert!(validate_topic("/").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a/+").is_err());
        assert!(validate_topic("a/#").is_err());
        assert!(validate_topic("a\0b").is_err());
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "a/+/c", "+/+", "/+", "a//b"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a/b+", "++", "#/a"] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared() {
        assert_eq!(parse_shared("$share/g/a/+"), Some(Ok(("g", "a/+"))));
        assert!(parse_shared("$share/g").unwrap().is_err());
        assert!(parse_shared("$share//a").unwrap().is_err());
        assert_eq!(parse_shared("a/b"), None);
    }

    #[test]
    fn matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("+/+", "/a"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }
}
