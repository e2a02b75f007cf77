//! MQTT topic filters as clients see them: validity and matching (MQTT 3.1.1 and 5,
//! section 4.7), including `$share/<group>/<filter>` shared subscriptions. A client checks
//! its filters before subscribing, so a typo is a clear error instead of a refusal from
//! the broker, and routes what it receives to the subscriptions that asked for it.

use super::names::NameError;

/// Checks a filter (optionally `$share/<group>/...`) and returns the part that is matched
/// against topics.
pub fn validate_filter(filter: &str) -> Result<&str, NameError> {
    let bad = |why: &str| Err(NameError(format!("topic filter {filter:?}: {why}")));
    let inner = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) if !group.is_empty() && !group.contains(['+', '#']) => inner,
            _ => return bad("a shared subscription is $share/<group>/<filter>"),
        },
        None => filter,
    };
    if inner.is_empty() || inner.len() > 65_535 {
        return bad("must be 1-65535 bytes");
    }
    if inner.contains('\0') {
        return bad("may not contain NUL");
    }
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return bad("'#' must be the whole last level");
        }
        if level.contains('+') && level != "+" {
            return bad("'+' must be a whole level");
        }
    }
    Ok(inner)
}

/// Does `topic` match `filter` (without a `$share` prefix)? Filters starting with a
/// wildcard never match topics starting with `$` (spec 4.7.2).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(validate_filter("$share/g/a/+").unwrap(), "a/+");
        assert_eq!(validate_filter("$SYS/#").unwrap(), "$SYS/#");
        for bad in ["", "hc/#/x", "a+", "$share/g", "$share//a", "a/#b"] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/broker/uptime"));
    }
}
