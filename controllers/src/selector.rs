//! Label selectors as objects carry them: a `LabelSelector`
//! (`matchLabels`, `matchExpressions`) or, in ReplicationControllers, a
//! plain map.

use std::collections::BTreeMap;

use serde_json::Value;

/// Whether `selector` (JSON) selects `labels`. An empty or absent selector
/// selects nothing, as controllers treat it.
pub fn matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    let structured =
        selector.contains_key("matchLabels") || selector.contains_key("matchExpressions");
    let pairs = if structured {
        selector.get("matchLabels")
    } else {
        Some(&Value::Object(selector.clone()))
    };
    let pairs_ok = pairs
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let value = labels.get(e["key"].as_str().unwrap_or_default());
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => value.is_some_and(|v| values.contains(&v.as_str())),
                Some("NotIn") => value.is_none_or(|v| !values.contains(&v.as_str())),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                _ => false,
            }
        });
    pairs_ok && expressions_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_of_both_shapes() {
        let web = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(matches(&json!({"matchLabels": {"app": "web"}}), &web));
        assert!(
            matches(&json!({"app": "web"}), &web),
            "a ReplicationController's map"
        );
        assert!(!matches(&json!({"matchLabels": {"app": "db"}}), &web));
        assert!(!matches(&json!({}), &web), "empty selects nothing");
        assert!(!matches(&Value::Null, &web));
        let expressions = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert!(matches(&expressions, &web));
        assert!(!matches(
            &expressions,
            &labels(&[("tier", "fe"), ("canary", "1")])
        ));
    }
}
