//! Twilio's own OpenAPI document (tests/fixtures/twilio, MIT) as a request
//! checker: the operation must exist for the method and path, every form
//! field and query parameter must be one Twilio documents for it, with a
//! value of the documented type and, where Twilio lists them, one of the
//! documented enum values; required fields must be there.

use serde_json::Value;
use std::collections::HashMap;

pub struct Spec {
    ops: Vec<Operation>,
}

struct Operation {
    method: String,
    path: String,
    form: HashMap<String, Field>,
    required: Vec<String>,
    query: HashMap<String, Field>,
}

#[derive(Debug, Clone)]
struct Field {
    kind: String,
    item_kind: Option<String>,
    allowed: Option<Vec<String>>,
}

pub fn fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/twilio/twilio_api_v2010.json")
}

impl Spec {
    pub fn load() -> Spec {
        let text =
            std::fs::read_to_string(fixture_path()).expect("Twilio's OpenAPI document is in tests/fixtures");
        let doc: Value = serde_json::from_str(&text).expect("it is JSON");
        Spec::from_doc(&doc)
    }

    fn from_doc(doc: &Value) -> Spec {
        let mut ops = Vec::new();
        let Some(paths) = doc["paths"].as_object() else { return Spec { ops } };
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, op) in item {
                if !matches!(method.as_str(), "get" | "post" | "delete") {
                    continue;
                }
                let mut query = HashMap::new();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "query" {
                        if let Some(name) = p["name"].as_str() {
                            query.insert(name.to_owned(), field(doc, &p["schema"]));
                        }
                    }
                }
                let schema = resolve(
                    doc,
                    &op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"],
                );
                let mut form = HashMap::new();
                for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                    form.insert(name.clone(), field(doc, prop));
                }
                let required = schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                ops.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    form,
                    required,
                    query,
                });
            }
        }
        Spec { ops }
    }

    /// What in this request Twilio does not document (empty: all of it is).
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        form: &[(String, String)],
    ) -> Vec<String> {
        let Some(op) = self.ops.iter().find(|o| o.method == method && path_matches(&o.path, path)) else {
            return vec![format!("{method} {path}: no such operation in Twilio's API")];
        };
        let mut out = Vec::new();
        for (name, value) in query {
            match op.query.get(name) {
                None => out.push(format!("{method} {}: query parameter {name} is not documented", op.path)),
                Some(f) => {
                    out.extend(f.check(value).map(|e| format!("{method} {}: {name}={value}: {e}", op.path)))
                }
            }
        }
        for (name, value) in form {
            match op.form.get(name) {
                None => out.push(format!("{method} {}: form field {name} is not documented", op.path)),
                Some(f) => {
                    out.extend(f.check(value).map(|e| format!("{method} {}: {name}={value}: {e}", op.path)))
                }
            }
        }
        for name in &op.required {
            if !form.iter().any(|(k, _)| k == name) {
                out.push(format!("{method} {}: required field {name} is missing", op.path));
            }
        }
        out
    }
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => doc.pointer(&format!("/{pointer}")).unwrap_or(&Value::Null),
        None => v,
    }
}

fn field(doc: &Value, schema: &Value) -> Field {
    let schema = resolve(doc, schema);
    let allowed = |s: &Value| {
        s["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>())
    };
    let kind = schema["type"].as_str().unwrap_or("string").to_owned();
    let items = resolve(doc, &schema["items"]);
    let item_kind = (kind == "array").then(|| items["type"].as_str().unwrap_or("string").to_owned());
    let allowed = if kind == "array" { allowed(items) } else { allowed(schema) };
    Field { kind, item_kind, allowed }
}

impl Field {
    fn check(&self, value: &str) -> Option<String> {
        let kind = self.item_kind.as_deref().unwrap_or(&self.kind);
        let typed = match kind {
            "integer" => value.parse::<i64>().is_ok(),
            "number" => value.parse::<f64>().is_ok(),
            "boolean" => matches!(value, "true" | "false"),
            _ => true,
        };
        if !typed {
            return Some(format!("not a {kind}"));
        }
        match &self.allowed {
            Some(values) if !values.iter().any(|v| v == value) => Some(format!("not one of {values:?}")),
            _ => None,
        }
    }
}

/// `/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json` against a real path.
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| match (t.find('{'), t.find('}')) {
            (Some(open), Some(close)) => {
                let (prefix, suffix) = (&t[..open], &t[close + 1..]);
                p.len() > prefix.len() + suffix.len() && p.starts_with(prefix) && p.ends_with(suffix)
            }
            _ => t == p,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_checker_finds_what_twilio_does_not_document() {
        let spec = Spec::load();
        let calls = "/2010-04-01/Accounts/AC123/Calls.json";
        let ok =
            pairs(&[("To", "+1"), ("From", "+2"), ("Url", "https://x/a"), ("StatusCallbackMethod", "POST")]);
        assert_eq!(spec.check("POST", calls, &[], &ok), Vec::<String>::new());
        let bad = pairs(&[
            ("To", "+1"),
            ("From", "+2"),
            ("StatusCallbackMethod", "PUT"),
            ("Ringtone", "x"),
            ("Timeout", "soon"),
        ]);
        let found = spec.check("POST", calls, &[], &bad);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(spec.check("POST", calls, &[], &pairs(&[("From", "+2")]))[0].contains("required field To"));
        let update = "/2010-04-01/Accounts/AC123/Calls/CA1.json";
        assert!(spec.check("POST", update, &[], &pairs(&[("Status", "completed")])).is_empty());
        assert_eq!(spec.check("POST", update, &[], &pairs(&[("Status", "hangup")])).len(), 1);
        assert_eq!(spec.check("PUT", update, &[], &[]).len(), 1);
        assert!(spec
            .check("GET", calls, &pairs(&[("StartTime>", "2026-01-01"), ("To", "+1")]), &[])
            .is_empty());
        assert_eq!(spec.check("GET", calls, &pairs(&[("Since", "x")]), &[]).len(), 1);
    }
}
