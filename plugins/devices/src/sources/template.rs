//! The Home Assistant value templates the devices plugin understands: the forms device
//! firmwares put in their discovery messages. `{{ value }}`, `{{ value_json }}`,
//! `{{ value_json.a.b }}`, `{{ value_json['a'][0] }}`, each optionally followed by the
//! filters `float`, `int`, `round(n)`, `lower`, `upper`, `string`. Anything else
//! (conditionals, arithmetic, other filters) is not supported: the entity's readings are
//! skipped and the plugin says so once in its log (docs/DEVICES.md).

use serde_json::Value;

use super::parse_value;

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// `None`: `value` (the payload as text); `Some(path)`: into `value_json`.
    path: Option<Vec<Step>>,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Float,
    Int,
    Round(i32),
    Lower,
    Upper,
    Str,
}

impl Template {
    /// The payload itself (no template).
    pub fn value() -> Template {
        Template {
            path: None,
            filters: Vec::new(),
        }
    }

    /// Parses a template, or says why it is not supported.
    pub fn parse(text: &str) -> Result<Template, String> {
        let inner = text
            .trim()
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .ok_or_else(|| format!("not a single {{{{ ... }}}} expression: {text}"))?;
        let mut parts = inner.split('|').map(str::trim);
        let head = parts.next().unwrap_or_default();
        let path = if head == "value" {
            None
        } else if let Some(rest) = head.strip_prefix("value_json") {
            Some(path(rest).ok_or_else(|| format!("unsupported expression {head:?}"))?)
        } else {
            return Err(format!("unsupported expression {head:?}"));
        };
        let filters = parts
            .map(|f| filter(f).ok_or_else(|| format!("unsupported filter {f:?}")))
            .collect::<Result<_, _>>()?;
        Ok(Template { path, filters })
    }

    /// The value a payload gives, if it has one.
    pub fn render(&self, payload: &[u8]) -> Option<Value> {
        let mut v = match &self.path {
            None => parse_value(payload),
            Some(steps) => {
                let mut v: Value = serde_json::from_slice(payload).ok()?;
                for s in steps {
                    v = match s {
                        Step::Key(k) => v.get(k)?.clone(),
                        Step::Index(i) => v.get(i)?.clone(),
                    };
                }
                v
            }
        };
        for f in &self.filters {
            v = apply(f, v)?;
        }
        Some(v)
    }
}

/// `.a.b['c'][0]["d"]`
fn path(mut rest: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return None;
            }
            steps.push(Step::Key(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inside = r[..end].trim();
            let quoted = inside
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            steps.push(match quoted {
                Some(k) => Step::Key(k.to_string()),
                None => Step::Index(inside.parse().ok()?),
            });
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn filter(f: &str) -> Option<Filter> {
    Some(match f {
        "float" | "float(0)" => Filter::Float,
        "int" | "int(0)" => Filter::Int,
        "lower" => Filter::Lower,
        "upper" => Filter::Upper,
        "string" => Filter::Str,
        "round" => Filter::Round(0),
        _ => Filter::Round(
            f.strip_prefix("round(")?
                .strip_suffix(')')?
                .trim()
                .parse()
                .ok()?,
        ),
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn apply(f: &Filter, v: Value) -> Option<Value> {
    Some(match f {
        Filter::Float => Value::from(number(&v)?),
        Filter::Int => Value::from(number(&v)?.trunc() as i64),
        Filter::Round(n) => {
            let p = 10f64.powi(*n);
            let r = (number(&v)? * p).round() / p;
            if *n <= 0 {
                Value::from(r as i64)
            } else {
                Value::from(r)
            }
        }
        Filter::Lower => Value::from(super::plain(&v).to_lowercase()),
        Filter::Upper => Value::from(super::plain(&v).to_uppercase()),
        Filter::Str => Value::from(super::plain(&v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, payload: &str) -> Option<Value> {
        Template::parse(t).unwrap().render(payload.as_bytes())
    }

    #[test]
    fn the_common_forms() {
        assert_eq!(render("{{ value }}", "21.5"), Some(json!(21.5)));
        assert_eq!(render("{{value}}", "ON"), Some(json!("ON")));
        assert_eq!(
            render("{{ value_json.temperature }}", r#"{"temperature": 21.8}"#),
            Some(json!(21.8))
        );
        assert_eq!(
            render(
                "{{ value_json['AM2301'].Temperature | round(1) }}",
                r#"{"AM2301": {"Temperature": 21.84}}"#
            ),
            Some(json!(21.8))
        );
        assert_eq!(
            render(r#"{{ value_json["a"][1] | int }}"#, r#"{"a": [1, "7.9"]}"#),
            Some(json!(7))
        );
        assert_eq!(
            render("{{ value_json.POWER | lower }}", r#"{"POWER": "ON"}"#),
            Some(json!("on"))
        );
        assert_eq!(render("{{ value_json.missing }}", r#"{"a": 1}"#), None);
    }

    #[test]
    fn what_is_not_supported_says_what() {
        for (t, why) in [
            ("{{ value_json.a * 10 }}", "unsupported expression"),
            ("{% if value == '1' %}ON{% endif %}", "not a single"),
            ("{{ value_json.a | timestamp_local }}", "unsupported filter"),
            ("{{ states('sensor.x') }}", "unsupported expression"),
        ] {
            assert!(Template::parse(t).unwrap_err().contains(why), "{t}");
        }
    }
}
