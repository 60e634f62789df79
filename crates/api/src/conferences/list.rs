//! List options shared by both lists (conferences, participants) and the single-item
//! options (`mask`, `flat`) of GET on one item.
//!
//! Syntax (query parameters; URL-encode them):
//!
//! | option | syntax | meaning |
//! |---|---|---|
//! | `filter` | JSON object `{"field": value, ...}`; a value may be an array = any of | keep items whose fields all match; strings and numbers compare by text (`{"confroomnum":9}` matches `"9"`); an unknown field is a 400 |
//! | `mask` | `field,field,...` | output only these fields, in item order; unknown names are ignored (as in the reference) |
//! | `order` | `field,-field,...` | sort by these fields, `-` = descending; strings of digits compare as numbers; an unknown field is a 400. Default: conferences oldest first, participants in join order |
//! | `offset` | decimal digits, 0 to 2^64-1 | skip this many (after filter and order) |
//! | `limit` | decimal digits, 0 to 2^64-1 | return at most this many |
//! | `flat` | `true`/`false`/`1`/`0` (empty = true) | flatten nested objects into `parent.child` keys; our items have none today, so it changes nothing yet, but clients of the reference may send it |
//! | `countonly` | like `flat` | reply `{"count": N}`: the number of items that pass `filter` (offset/limit ignored) |
//!
//! The pipeline is filter → order → offset/limit → flat → mask. Items are rendered to
//! JSON objects first, so the options work on exactly what the client sees.
//!
//! Each option is checked exactly as `/openapi.json` describes it: `order` against
//! [`formats::order`] (spaces only, no tabs), counts as plain digits (no sign), flags as
//! one of [`formats::FLAG_VALUES`] (no spaces around).

use crate::error::ApiError;
use crate::formats;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use utoipa::IntoParams;

/// The query string of a list, as received.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Filter by field values: a JSON object, e.g. `{"state":"active"}` or
    /// `{"state":["active","held"]}` (array = any of). Unknown field: 400.
    #[param(example = r#"{"state":"active"}"#)]
    pub filter: Option<String>,
    /// Fields to output, comma-separated, e.g. `confid,startts`. Unknown names are ignored.
    #[param(example = "participantid,state")]
    pub mask: Option<String>,
    /// Skip this many items (after filter and order).
    #[param(value_type = Option<u64>, minimum = 0)]
    pub offset: Option<String>,
    /// Return at most this many items.
    #[param(value_type = Option<u64>, minimum = 0)]
    pub limit: Option<String>,
    /// Sort order: comma-separated fields, `-` prefix for descending, e.g. `-startts,confroomnum`.
    #[param(example = "-joined_ms")]
    pub order: Option<String>,
    /// Flatten nested objects into `a.b` keys (`true`, `false`, `1`, `0`; empty = true).
    #[param(value_type = Option<bool>)]
    pub flat: Option<String>,
    /// Return only `{"count": N}`, the number of items passing `filter`.
    #[param(value_type = Option<bool>)]
    pub countonly: Option<String>,
}

/// The query string of GET on one item.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// Fields to output, comma-separated. Unknown names are ignored.
    pub mask: Option<String>,
    /// Flatten nested objects into `a.b` keys.
    #[param(value_type = Option<bool>)]
    pub flat: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct SortKey {
    field: String,
    descending: bool,
}

/// Parsed and validated list options.
#[derive(Debug, Default)]
pub struct ListOptions {
    /// field → accepted values (any of).
    filter: Vec<(String, Vec<Value>)>,
    order: Vec<SortKey>,
    offset: usize,
    limit: Option<usize>,
    countonly: bool,
    item: ItemOptions,
}

/// `mask` and `flat`.
#[derive(Debug, Default)]
pub struct ItemOptions {
    mask: Option<Vec<String>>,
    flat: bool,
}

impl ItemOptions {
    /// No mask and not flat: the item is served as it is.
    pub fn is_identity(&self) -> bool {
        self.mask.is_none() && !self.flat
    }
}

impl ListOptions {
    /// Validates `q` against the item's `fields`.
    pub fn parse(q: &ListQuery, fields: &[&str]) -> Result<ListOptions, ApiError> {
        Ok(ListOptions {
            filter: q.filter.as_deref().map(|f| parse_filter(f, fields)).transpose()?.unwrap_or_default(),
            order: q.order.as_deref().map(|o| parse_order(o, fields)).transpose()?.unwrap_or_default(),
            offset: parse_count("offset", q.offset.as_deref(), u64::MAX)?.map_or(0, saturating_usize),
            limit: parse_count("limit", q.limit.as_deref(), u64::MAX)?.map(saturating_usize),
            countonly: parse_flag("countonly", q.countonly.as_deref())?,
            item: ItemOptions::parse_parts(q.mask.as_deref(), q.flat.as_deref())?,
        })
    }

    /// True when no option changes the list: the handler may then serialize its items
    /// directly instead of going through JSON objects (the common, hot case).
    pub fn is_identity(&self) -> bool {
        self.filter.is_empty()
            && self.order.is_empty()
            && self.offset == 0
            && self.limit.is_none()
            && !self.countonly
            && self.item.mask.is_none()
            && !self.item.flat
    }

    /// Whether the filter names `field` (the participants list hides ended ones unless
    /// the filter asks about `state`).
    pub fn filters_on(&self, field: &str) -> bool {
        self.filter.iter().any(|(f, _)| f == field)
    }

    /// Runs the pipeline over rendered items: filter → order → offset/limit → flat → mask.
    pub fn apply(&self, mut items: Vec<Map<String, Value>>) -> Value {
        items.retain(|item| self.filter.iter().all(|(field, wanted)| wanted.iter().any(|w| same_value(item.get(field), w))));
        if self.countonly {
            return serde_json::json!({ "count": items.len() });
        }
        if !self.order.is_empty() {
            // stable: ties keep the default order
            items.sort_by(|a, b| {
                self.order
                    .iter()
                    .map(|k| {
                        let o = compare(a.get(&k.field), b.get(&k.field));
                        if k.descending { o.reverse() } else { o }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            });
        }
        let end = self.limit.map_or(items.len(), |l| self.offset.saturating_add(l).min(items.len()));
        let start = self.offset.min(end);
        Value::Array(items.drain(start..end).map(|i| self.item.project(i)).collect())
    }
}

impl ItemOptions {
    pub fn parse(q: &ItemQuery) -> Result<ItemOptions, ApiError> {
        Self::parse_parts(q.mask.as_deref(), q.flat.as_deref())
    }

    fn parse_parts(mask: Option<&str>, flat: Option<&str>) -> Result<ItemOptions, ApiError> {
        let mask = mask.map(|m| m.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect());
        Ok(ItemOptions { mask, flat: parse_flag("flat", flat)? })
    }

    /// Applies flat, then mask, to one rendered item.
    pub fn project(&self, item: Map<String, Value>) -> Value {
        let item = if self.flat { flatten(item) } else { item };
        let Some(mask) = &self.mask else { return Value::Object(item) };
        Value::Object(item.into_iter().filter(|(k, _)| mask.iter().any(|m| m == k)).collect())
    }
}

/// Renders a wire item as a JSON object (what the options work on).
pub fn render<T: serde::Serialize>(item: &T) -> Map<String, Value> {
    match serde_json::to_value(item) {
        Ok(Value::Object(m)) => m,
        // wire types are structs; anything else is a programming error caught by tests
        other => panic!("list item did not render as a JSON object: {other:?}"),
    }
}

fn parse_filter(text: &str, fields: &[&str]) -> Result<Vec<(String, Vec<Value>)>, ApiError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("filter is not JSON ({e}); expected an object like {{\"state\":\"active\"}}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("filter must be a JSON object of field values, like {\"state\":\"active\"}"));
    };
    map.into_iter()
        .map(|(field, v)| {
            known_field("filter", &field, fields)?;
            let wanted = match v {
                Value::Array(vs) => vs,
                v => vec![v],
            };
            if wanted.iter().any(|w| w.is_object() || w.is_array()) {
                return Err(ApiError::bad_request(format!("filter value for `{field}` must be a string, number, boolean, null, or an array of those")));
            }
            Ok((field, wanted))
        })
        .collect()
}

fn parse_order(text: &str, fields: &[&str]) -> Result<Vec<SortKey>, ApiError> {
    if !formats::matches(&formats::order(fields), text) {
        // say which item is wrong
        for item in text.split(',').map(|k| k.trim_matches(' ')).filter(|k| !k.is_empty()) {
            let field = item.strip_prefix(['-', '+']).unwrap_or(item);
            known_field("order", field, fields)?;
        }
        return Err(ApiError::bad_request(format!(
            "order must be comma-separated fields, each with an optional - or + in front (spaces around items allowed); known fields: {}",
            fields.join(", ")
        )));
    }
    text.split(',')
        .map(|k| k.trim_matches(' '))
        .filter(|k| !k.is_empty())
        .map(|k| {
            let (field, descending) = match k.strip_prefix('-') {
                Some(f) => (f, true),
                None => (k.strip_prefix('+').unwrap_or(k), false),
            };
            known_field("order", field, fields)?;
            Ok(SortKey { field: field.to_owned(), descending })
        })
        .collect()
}

fn known_field(option: &str, field: &str, fields: &[&str]) -> Result<(), ApiError> {
    if fields.contains(&field) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("unknown field `{field}` in {option}; known fields: {}", fields.join(", "))))
    }
}

/// A count in a query string: decimal digits only (no sign, no spaces), at most `max`.
pub fn parse_count(name: &str, v: Option<&str>, max: u64) -> Result<Option<u64>, ApiError> {
    v.map(|s| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .filter(|n| *n <= max)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be an integer from 0 to {max}, not `{s}`")))
    })
    .transpose()
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn parse_flag(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("false") | Some("0") => Ok(false),
        Some("") | Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("{name} must be true or false, not `{other}`"))),
    }
}

/// Text of a scalar for lenient comparison; None for null, arrays and objects.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(formats::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn same_value(have: Option<&Value>, wanted: &Value) -> bool {
    let have = have.unwrap_or(&Value::Null);
    have == wanted || matches!((scalar_text(have), scalar_text(wanted)), (Some(a), Some(b)) if a == b)
}

/// Total order for sorting: missing/null < booleans < numbers < strings; strings of
/// digits compare as numbers (room numbers are decimal strings).
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => compare_text(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_text(x: &str, y: &str) -> Ordering {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(x) && digits(y) {
        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
    } else {
        x.cmp(y)
    }
}

/// `{"a":{"b":1}}` → `{"a.b":1}`, recursively; arrays and scalars stay as they are.
fn flatten(item: Map<String, Value>) -> Map<String, Value> {
    fn walk(prefix: &str, map: Map<String, Value>, out: &mut Map<String, Value>) {
        for (k, v) in map {
            let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
            match v {
                Value::Object(inner) => walk(&key, inner, out),
                v => {
                    out.insert(key, v);
                }
            }
        }
    }
    let mut out = Map::new();
    walk("", item, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[&str] = &["id", "state", "room", "n", "nested"];

    fn items() -> Vec<Map<String, Value>> {
        [
            json!({"id": "a", "state": "active", "room": "9", "n": 3}),
            json!({"id": "b", "state": "ended", "room": "10", "n": 1}),
            json!({"id": "c", "state": "active", "room": "100", "n": 2}),
            json!({"id": "d", "state": "ringing", "room": "9", "n": 2}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
    }

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        let qs = serde_urlencoded::to_string(pairs).unwrap();
        serde_urlencoded::from_str(&qs).unwrap()
    }

    fn run(pairs: &[(&str, &str)]) -> Value {
        ListOptions::parse(&query(pairs), FIELDS).unwrap().apply(items())
    }

    fn ids(v: &Value) -> Vec<&str> {
        v.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        let e = ListOptions::parse(&query(pairs), FIELDS).unwrap_err();
        assert_eq!(e.code, 1400);
        e.message
    }

    #[test]
    fn no_options_keeps_everything_in_order() {
        assert_eq!(ids(&run(&[])), ["a", "b", "c", "d"]);
    }

    #[test]
    fn filter_by_value_any_of_and_lenient_numbers() {
        assert_eq!(ids(&run(&[("filter", r#"{"state":"active"}"#)])), ["a", "c"]);
        assert_eq!(ids(&run(&[("filter", r#"{"state":["ended","ringing"]}"#)])), ["b", "d"]);
        assert_eq!(ids(&run(&[("filter", r#"{"room":9}"#)])), ["a", "d"]);
        assert_eq!(ids(&run(&[("filter", r#"{"n":"2","state":"active"}"#)])), ["c"]);
        assert_eq!(ids(&run(&[("filter", r#"{}"#)])), ["a", "b", "c", "d"]);
    }

    #[test]
    fn filter_errors_are_400() {
        assert!(err(&[("filter", r#"{"colour":"red"}"#)]).contains("unknown field `colour` in filter"));
        assert!(err(&[("filter", "state=active")]).contains("filter is not JSON"));
        assert!(err(&[("filter", r#"["active"]"#)]).contains("must be a JSON object"));
        assert!(err(&[("filter", r#"{"state":{"x":1}}"#)]).contains("must be a string"));
    }

    #[test]
    fn order_ascending_descending_numeric_strings_and_ties_stable() {
        assert_eq!(ids(&run(&[("order", "room")])), ["a", "d", "b", "c"]);
        assert_eq!(ids(&run(&[("order", "-room")])), ["c", "b", "a", "d"]);
        assert_eq!(ids(&run(&[("order", "n,-id")])), ["b", "d", "c", "a"]);
        assert_eq!(ids(&run(&[("order", "-state,n")])), ["d", "b", "c", "a"]);
        assert!(err(&[("order", "n,bogus")]).contains("unknown field `bogus` in order"));
        assert_eq!(ids(&run(&[("order", " -n , id,")])), ["a", "c", "d", "b"]);
        assert!(err(&[("order", "n\t")]).contains("in order"));
        assert!(err(&[("order", "-")]).contains("unknown field `` in order"));
        assert!(err(&[("order", "--n")]).contains("unknown field `-n` in order"));
    }

    #[test]
    fn offset_and_limit() {
        assert_eq!(ids(&run(&[("offset", "1"), ("limit", "2")])), ["b", "c"]);
        assert_eq!(ids(&run(&[("offset", "3"), ("limit", "5")])), ["d"]);
        assert_eq!(ids(&run(&[("offset", "9")])), Vec::<&str>::new());
        assert_eq!(ids(&run(&[("limit", "0")])), Vec::<&str>::new());
        assert_eq!(ids(&run(&[("order", "-n"), ("limit", "1")])), ["a"]);
        assert!(err(&[("offset", "-1")]).contains("offset must be an integer from 0 to 18446744073709551615"));
        assert!(err(&[("limit", "ten")]).contains("limit must be"));
        for bad in ["+1", " 1", "1.0", "", "18446744073709551616"] {
            assert!(err(&[("limit", bad)]).contains("limit must be"), "{bad:?}");
        }
        assert_eq!(ids(&run(&[("offset", "18446744073709551615")])), Vec::<&str>::new());
    }

    #[test]
    fn countonly_counts_filtered_items_ignoring_paging() {
        assert_eq!(run(&[("countonly", "true")]), json!({"count": 4}));
        assert_eq!(run(&[("countonly", ""), ("filter", r#"{"state":"active"}"#), ("limit", "1")]), json!({"count": 2}));
        assert_eq!(ids(&run(&[("countonly", "0")])).len(), 4);
        assert!(err(&[("countonly", "yes")]).contains("countonly must be true or false"));
        assert!(err(&[("countonly", " true")]).contains("countonly must be true or false"));
    }

    #[test]
    fn mask_keeps_named_fields_and_ignores_unknown() {
        let out = run(&[("mask", "id, n,nosuch"), ("limit", "1")]);
        assert_eq!(out, json!([{"id": "a", "n": 3}]));
    }

    #[test]
    fn flat_flattens_nested_objects_before_mask() {
        let item = json!({"id": "x", "nested": {"a": 1, "b": {"c": [1, 2]}}}).as_object().unwrap().clone();
        let opts = ItemOptions::parse(&ItemQuery { mask: None, flat: Some("true".into()) }).unwrap();
        assert_eq!(opts.project(item.clone()), json!({"id": "x", "nested.a": 1, "nested.b.c": [1, 2]}));
        let opts = ItemOptions::parse(&ItemQuery { mask: Some("nested.a".into()), flat: Some("1".into()) }).unwrap();
        assert_eq!(opts.project(item.clone()), json!({"nested.a": 1}));
        let opts = ItemOptions::parse(&ItemQuery { mask: None, flat: None }).unwrap();
        assert_eq!(opts.project(item.clone()), Value::Object(item));
    }

    #[test]
    fn identity_only_without_options() {
        assert!(ListOptions::parse(&query(&[]), FIELDS).unwrap().is_identity());
        assert!(ListOptions::parse(&query(&[("flat", "false"), ("offset", "0")]), FIELDS).unwrap().is_identity());
        for q in [("flat", ""), ("limit", "5"), ("mask", "id"), ("order", "id"), ("filter", "{}"), ("countonly", "1"), ("offset", "1")] {
            let o = ListOptions::parse(&query(&[q]), FIELDS).unwrap();
            assert_eq!(o.is_identity(), q == ("filter", "{}"), "{q:?}");
        }
    }

    #[test]
    fn filters_on_reports_named_fields() {
        let o = ListOptions::parse(&query(&[("filter", r#"{"state":"ended"}"#)]), FIELDS).unwrap();
        assert!(o.filters_on("state"));
        assert!(!o.filters_on("id"));
    }

    #[test]
    fn unknown_query_parameter_is_rejected_by_the_extractor() {
        assert!(serde_urlencoded::from_str::<ListQuery>("fliter=x").is_err());
        assert!(serde_urlencoded::from_str::<ItemQuery>("offset=1").is_err());
    }
}
