//! Topic names and filters: validation and matching, per MQTT 3.1.1 section 4.7 and
//! MQTT 5 section 4.7, within the broker's limits on length and depth.

/// Longest topic or filter MQTT can encode.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// How long and deep topics and filters may be.
pub trait TopicLimits {
    fn max_topic_len(&self) -> usize;
    fn max_topic_levels(&self) -> usize;
}

/// MQTT's own limits only.
pub struct Unlimited;

impl TopicLimits for Unlimited {
    fn max_topic_len(&self) -> usize {
        MAX_TOPIC_LEN
    }
    fn max_topic_levels(&self) -> usize {
        usize::MAX
    }
}

fn check_size(s: &str, limits: &impl TopicLimits) -> Result<(), &'static str> {
    if s.len() > limits.max_topic_len() {
        return Err("longer than max_topic_length");
    }
    if s.bytes().filter(|b| *b == b'/').count() + 1 > limits.max_topic_levels() {
        return Err("more levels than max_topic_levels");
    }
    Ok(())
}

/// Checks a topic name a client publishes to.
pub fn validate_topic(topic: &str, limits: &impl TopicLimits) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("empty topic name");
    }
    check_size(topic, limits)?;
    if topic.contains(['+', '#']) {
        return Err("wildcard in a topic name");
    }
    if topic.contains('\0') {
        return Err("NUL character in a topic name");
    }
    Ok(())
}

/// Checks a topic filter a client subscribes to (without a `$share/` prefix).
pub fn validate_filter(filter: &str, limits: &impl TopicLimits) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("empty topic filter");
    }
    check_size(filter, limits)?;
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
    Some(validate_filter(inner, &Unlimited).map(|()| (group, inner)))
}

/// Why a filter cannot be subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterError {
    Invalid(&'static str),
    /// A `$` filter other than `$SYS/...` (`$` topics belong to the server).
    Reserved,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::Invalid(why) => f.write_str(why),
            FilterError::Reserved => f.write_str("'$' topics other than $SYS are reserved"),
        }
    }
}

/// A filter as written, checked and taken apart.
pub(crate) fn parse_filter(
    written: &str,
    limits: &impl TopicLimits,
) -> Result<crate::router::subscription::Filter, FilterError> {
    let (group, inner) = match parse_shared(written) {
        Some(Ok((g, inner))) => (Some(g.to_string()), inner),
        Some(Err(e)) => return Err(FilterError::Invalid(e)),
        None => (None, written),
    };
    validate_filter(inner, limits).map_err(FilterError::Invalid)?;
    if inner.starts_with('$') && !inner.starts_with("$SYS/") && inner != "$SYS" {
        return Err(FilterError::Reserved);
    }
    Ok(crate::router::subscription::Filter {
        written: written.to_string(),
        inner: inner.to_string(),
        group,
    })
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
        let v = |t: &str| validate_topic(t, &Unlimited);
        assert!(v("a/b").is_ok());
        assert!(v("/").is_ok());
        assert!(v("").is_err());
        assert!(v("a/+").is_err());
        assert!(v("a/#").is_err());
        assert!(v("a\0b").is_err());
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "a/+/c", "+/+", "/+", "a//b"] {
            assert!(validate_filter(ok, &Unlimited).is_ok(), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a/b+", "++", "#/a"] {
            assert!(validate_filter(bad, &Unlimited).is_err(), "{bad}");
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
