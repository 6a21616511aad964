//! `log-format = "json"`: one JSON object per line for every log event, with the fields an
//! operator filters on (`cluster`, `server`, `op`, `term`) always present at the top level
//! (`null` when the event has none), taken from the event or from any span around it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The fields every line carries at the top level (`null` when unknown).
pub const TOP_FIELDS: [&str; 4] = ["cluster", "server", "op", "term"];

/// A layer writing one JSON line per event to `writer`.
pub struct JsonLines<W> {
    writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(writer: W) -> JsonLines<W> {
        JsonLines { writer }
    }
}

/// Fields recorded on a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_string(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(f.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut f = Fields::default();
        values.record(&mut f);
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(existing) => existing.0.extend(f.0),
            None => ext.insert(SpanFields(f.0)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Outer spans first, so the innermost value (and then the event's own) wins.
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.0.clone());
                }
            }
        }
        let mut own = Fields::default();
        event.record(&mut own);
        fields.extend(own.0);
        let line = event_line(SystemTime::now(), event.metadata().level().as_str(), event.metadata().target(), fields);
        let mut w = self.writer.make_writer();
        // A log line that cannot be written has nowhere else to go.
        let _ = writeln!(w, "{line}");
    }
}

/// One line: `timestamp`, `level`, `target`, the [`TOP_FIELDS`], `message` and the other fields
/// (keys in alphabetical order).
fn event_line(at: SystemTime, level: &str, target: &str, mut fields: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("timestamp".into(), Value::from(rfc3339(at)));
    out.insert("level".into(), Value::from(level));
    out.insert("target".into(), Value::from(target));
    for k in TOP_FIELDS {
        out.insert(k.into(), fields.remove(k).unwrap_or(Value::Null));
    }
    out.insert("message".into(), fields.remove("message").unwrap_or(Value::Null));
    out.extend(fields);
    Value::Object(out)
}

/// `2026-12-07T20:15:30.123Z` (UTC).
fn rfc3339(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::cluster::log::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tracing_subscriber::prelude::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_674_530_123)), "2026-12-07T20:15:30.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn one_json_object_per_event_with_span_fields_on_top() {
        let buf = Buf::default();
        let sub = tracing_subscriber::registry().with(JsonLines::new(buf.clone()));
        tracing::subscriber::with_default(sub, || {
            let monitor = tracing::info_span!("monitor", cluster = "c1");
            let _m = monitor.enter();
            let op = tracing::info_span!("op", op = "failover-1-ab", term = 7u64);
            let _o = op.enter();
            tracing::info!(server = "127.0.0.1:3306", step = "promote", "executing");
            drop(_o);
            tracing::warn!(error = %"boom", "no op here");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let a = &lines[0];
        assert_eq!(a["cluster"], "c1");
        assert_eq!(a["server"], "127.0.0.1:3306");
        assert_eq!(a["op"], "failover-1-ab");
        assert_eq!(a["term"], 7);
        assert_eq!(a["message"], "executing");
        assert_eq!(a["step"], "promote");
        assert_eq!(a["level"], "INFO");
        let b = &lines[1];
        assert_eq!(b["cluster"], "c1");
        assert!(b["op"].is_null() && b["server"].is_null() && b["term"].is_null(), "{b}");
        assert_eq!(b["error"], "boom");
        assert_eq!(b["level"], "WARN");
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
