//! GVariant <-> JSON for commit metadata.

use ostree::glib::{self, prelude::*, Variant, VariantClass, VariantTy};
use serde_json::Value;

/// Converts one JSON value to the GVariant cairn stores in commit metadata: strings -> `s`,
/// non-negative integers -> `t`, negative ones -> `x`, bools -> `b`, floats -> `d`, and
/// arrays/objects -> their JSON text in an `s` (so any reader, including `ostree show`,
/// can print it).
pub(crate) fn json_to_variant(v: &Value) -> Variant {
    match v {
        Value::String(s) => s.to_variant(),
        Value::Bool(b) => b.to_variant(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.to_variant()
            } else if let Some(i) = n.as_i64() {
                i.to_variant()
            } else {
                n.as_f64().unwrap_or_default().to_variant()
            }
        }
        Value::Null => "".to_variant(),
        Value::Array(_) | Value::Object(_) => v.to_string().to_variant(),
    }
}

/// Builds an `a{sv}` with keys sorted, so the bytes (and the commit checksum) depend only on
/// the content, never on insertion or hash order.
pub(crate) fn metadata_dict(entries: &std::collections::BTreeMap<String, Variant>) -> Variant {
    let items = entries
        .iter()
        .map(|(k, v)| Variant::from_dict_entry(&k.to_variant(), &Variant::from_variant(v)));
    Variant::array_from_iter_with_type(VariantTy::new("{sv}").expect("valid type"), items)
}

/// Converts a GVariant to JSON for `show --json`. Byte arrays that are checksums or text are
/// rendered as hex or UTF-8; `a{s*}` dicts become objects.
pub(crate) fn variant_to_json(v: &Variant) -> Value {
    match v.classify() {
        VariantClass::Boolean => Value::Bool(v.get::<bool>().unwrap_or_default()),
        VariantClass::Byte => v.get::<u8>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Int16 => v.get::<i16>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Uint16 => v.get::<u16>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Int32 => v.get::<i32>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Uint32 => v.get::<u32>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Int64 => v.get::<i64>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Uint64 => v.get::<u64>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::Double => v.get::<f64>().map(Value::from).unwrap_or(Value::Null),
        VariantClass::String | VariantClass::ObjectPath | VariantClass::Signature => {
            Value::String(v.str().unwrap_or_default().to_string())
        }
        VariantClass::Variant => v
            .as_variant()
            .map(|i| variant_to_json(&i))
            .unwrap_or(Value::Null),
        VariantClass::Array => array_to_json(v),
        VariantClass::Tuple | VariantClass::DictEntry => {
            Value::Array(v.iter().map(|c| variant_to_json(&c)).collect())
        }
        _ => Value::String(v.print(true).to_string()),
    }
}

fn array_to_json(v: &Variant) -> Value {
    let ty = v.type_().as_str();
    if ty == "ay" {
        let bytes = v.data_as_bytes();
        let bytes: &[u8] = &bytes;
        return match std::str::from_utf8(bytes) {
            Ok(s) if !s.is_empty() && !s.contains('\0') => Value::String(s.to_string()),
            _ => Value::String(hex::encode(bytes)),
        };
    }
    if ty.starts_with("a{s") {
        let mut map = serde_json::Map::new();
        for entry in v.iter() {
            let key = entry.child_value(0);
            map.insert(
                key.str().unwrap_or_default().to_string(),
                variant_to_json(&entry.child_value(1)),
            );
        }
        return Value::Object(map);
    }
    Value::Array(v.iter().map(|c| variant_to_json(&c)).collect())
}

/// Commit metadata (`a{sv}`) as a JSON object, keys in stored order.
pub(crate) fn dict_to_json(v: &Variant) -> serde_json::Map<String, Value> {
    match variant_to_json(v) {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Looks up a string entry in an `a{sv}`.
pub(crate) fn lookup_str(dict: &Variant, key: &str) -> Option<String> {
    let d = glib::VariantDict::new(Some(dict));
    d.lookup_value(key, None)
        .and_then(|v| v.str().map(str::to_string))
}
