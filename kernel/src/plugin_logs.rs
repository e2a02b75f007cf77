//! The last log lines of each in-process plugin, for `plugins.logs`: a `tracing` layer
//! that keeps every event logged inside a plugin's span (the plugin manager runs each
//! plugin under `plugin{id=...}`) in that plugin's `LogRing`. The program installs the
//! layer with its subscriber (`hcore run` does); without it the rings stay empty.
//! Process-wide, like the subscriber it belongs to.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use hcore_client::protocol::commands::{LogRing, PluginLogs};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Lines kept per in-process plugin.
const LINES_PER_PLUGIN: usize = 500;

/// The span name the plugin manager runs each plugin under.
pub(crate) const PLUGIN_SPAN: &str = "plugin";

fn rings() -> &'static Mutex<HashMap<String, LogRing>> {
    static RINGS: OnceLock<Mutex<HashMap<String, LogRing>>> = OnceLock::new();
    RINGS.get_or_init(Default::default)
}

/// The newest `lines` of plugin `id` (empty if it logged nothing).
pub(crate) fn tail(id: &str, lines: Option<usize>) -> PluginLogs {
    let rings = rings().lock().unwrap_or_else(|e| e.into_inner());
    match rings.get(id) {
        Some(ring) => ring.tail(id, lines),
        None => LogRing::new(1).tail(id, lines),
    }
}

/// Keeps in-process plugins' log events for `plugins.logs`.
pub struct PluginLogLayer;

/// The plugin id recorded on a plugin span.
struct PluginId(String);

/// Renders an event's fields as one line: the message, then `name=value` pairs.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let sep = if self.0.is_empty() { "" } else { " " };
        if field.name() == "message" {
            let _ = write!(self.0, "{sep}{value:?}");
        } else {
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{value}");
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[derive(Default)]
struct IdField(Option<String>);

impl Visit for IdField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "id" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "id" {
            self.0 = Some(value.to_string());
        }
    }
}

impl<S> Layer<S> for PluginLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != PLUGIN_SPAN {
            return;
        }
        let mut field = IdField::default();
        attrs.record(&mut field);
        if let (Some(plugin), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(PluginId(plugin));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(plugin) = scope
            .into_iter()
            .find_map(|span| span.extensions().get::<PluginId>().map(|p| p.0.clone()))
        else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut rings = rings().lock().unwrap_or_else(|e| e.into_inner());
        rings
            .entry(plugin)
            .or_insert_with(|| LogRing::new(LINES_PER_PLUGIN))
            .push(&level, &line.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_inside_a_plugin_span_are_kept_for_that_plugin() {
        let subscriber = tracing_subscriber::registry().with(PluginLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("plugin", id = %"unit-test-plugin");
            span.in_scope(|| {
                let inner = tracing::info_span!("call", method = "x.y");
                inner.in_scope(|| tracing::warn!(code = 3, "lamp did not answer"));
            });
            tracing::info!("outside every plugin");
        });
        let logs = tail("unit-test-plugin", None);
        assert_eq!(logs.lines.len(), 1);
        assert_eq!(logs.lines[0].stream, "warn");
        assert_eq!(logs.lines[0].line, "lamp did not answer code=3");
    }
}
