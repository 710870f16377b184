//! Workloads, as upstream's `ValidateReplicaSetSpec`, `ValidateDeploymentSpec`,
//! `ValidateDaemonSetSpec`, `ValidateStatefulSetSpec` and
//! `ValidateReplicationControllerSpec` check them: a selector that selects
//! the workload's own template, replicas not below zero, templates whose
//! pods restart `Always`, and the update strategies.

use serde_json::Value;

use super::pod::template;
use super::{go_value, quote, Check, Problem};
use crate::labels::Selector;

const PERCENT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// The problems of a Deployment.
pub fn deployment(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if check.walkable(spec, "spec") {
        check.non_negative(&spec["replicas"], "spec.replicas");
        selected_template(&mut check, spec, "deployment", "ReplicaSet");
        deployment_strategy(&mut check, &spec["strategy"]);
        let min_ready = check.int(&spec["minReadySeconds"], "spec.minReadySeconds");
        check.non_negative(&spec["minReadySeconds"], "spec.minReadySeconds");
        check.non_negative(&spec["revisionHistoryLimit"], "spec.revisionHistoryLimit");
        let field = "spec.progressDeadlineSeconds";
        if let Some(deadline) = check.int(&spec["progressDeadlineSeconds"], field) {
            check.non_negative(&spec["progressDeadlineSeconds"], field);
            if deadline <= min_ready.unwrap_or(0) {
                check.invalid(
                    field,
                    &deadline.to_string(),
                    "must be greater than minReadySeconds",
                );
            }
        }
    }
    check.problems
}

/// The problems of a ReplicaSet.
pub fn replica_set(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if check.walkable(spec, "spec") {
        check.non_negative(&spec["replicas"], "spec.replicas");
        check.non_negative(&spec["minReadySeconds"], "spec.minReadySeconds");
        // Upstream's ReplicaSet shares the Deployment's wording.
        selected_template(&mut check, spec, "deployment", "ReplicaSet");
    }
    check.problems
}

/// The problems of a DaemonSet.
pub fn daemon_set(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if !check.walkable(spec, "spec") {
        return check.problems;
    }
    let selector = &spec["selector"];
    check.label_selector(selector, "spec.selector");
    let labels = &spec["template"]["metadata"]["labels"];
    let matches = parse_selector(selector).is_some_and(|s| s.is_some_and(|s| selects(&s, labels)));
    if parse_selector(selector).is_some() && !matches {
        mismatch(&mut check, labels);
    }
    if selector.is_object() && is_empty_selector(selector) {
        check.invalid(
            "spec.selector",
            &selector_text(selector),
            "empty selector is invalid for daemonset",
        );
    }
    restart_always(&mut check, spec, "DaemonSet", false);
    check.non_negative(&spec["minReadySeconds"], "spec.minReadySeconds");
    check.non_negative(&spec["templateGeneration"], "spec.templateGeneration");
    let strategy = &spec["updateStrategy"];
    let path = "spec.updateStrategy";
    if check.walkable(strategy, path) {
        match check.text(&strategy["type"], &format!("{path}.type")) {
            "OnDelete" => {}
            "RollingUpdate" => match &strategy["rollingUpdate"] {
                Value::Null => check.required(&format!("{path}.rollingUpdate"), ""),
                rolling => {
                    let at = format!("{path}.rollingUpdate");
                    let unavailable = int_or_percent(
                        &mut check,
                        &rolling["maxUnavailable"],
                        &format!("{at}.maxUnavailable"),
                    );
                    let surge =
                        int_or_percent(&mut check, &rolling["maxSurge"], &format!("{at}.maxSurge"));
                    match (unavailable != 0, surge != 0) {
                        (true, true) => check.invalid(
                            &format!("{at}.maxSurge"),
                            &int_or_string_text(&rolling["maxSurge"]),
                            "may not be set when maxUnavailable is non-zero",
                        ),
                        (false, false) => check.required(
                            &format!("{at}.maxUnavailable"),
                            "cannot be 0 when maxSurge is 0",
                        ),
                        _ => {}
                    }
                }
            },
            _ => check.not_supported(
                path,
                &strategy_text("DaemonSetUpdateStrategy", strategy),
                &["RollingUpdate", "OnDelete"],
            ),
        }
    }
    check.non_negative(&spec["revisionHistoryLimit"], "spec.revisionHistoryLimit");
    check.problems
}

/// The problems of a StatefulSet. Upstream checks its template's labels
/// and annotations but not its pod spec (whose volume mounts may name the
/// claim templates).
pub fn stateful_set(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if !check.walkable(spec, "spec") {
        return check.problems;
    }
    match check.text(&spec["podManagementPolicy"], "spec.podManagementPolicy") {
        "" => check.required("spec.podManagementPolicy", ""),
        "OrderedReady" | "Parallel" => {}
        other => check.invalid(
            "spec.podManagementPolicy",
            &quote(other),
            "must be 'OrderedReady' or 'Parallel'",
        ),
    }
    let strategy = &spec["updateStrategy"];
    if check.walkable(strategy, "spec.updateStrategy") {
        match check.text(&strategy["type"], "spec.updateStrategy.type") {
            "" => check.required("spec.updateStrategy", ""),
            "OnDelete" if !strategy["rollingUpdate"].is_null() => check.invalid(
                "spec.updateStrategy.rollingUpdate",
                &go_value(&strategy["rollingUpdate"]),
                "only allowed for updateStrategy 'RollingUpdate'",
            ),
            "OnDelete" => {}
            "RollingUpdate" => check.non_negative(
                &strategy["rollingUpdate"]["partition"],
                "spec.updateStrategy.rollingUpdate.partition",
            ),
            _ => check.invalid(
                "spec.updateStrategy",
                &strategy_text("StatefulSetUpdateStrategy", strategy),
                "must be 'RollingUpdate' or 'OnDelete'",
            ),
        }
    }
    check.non_negative(&spec["replicas"], "spec.replicas");
    check.non_negative(&spec["minReadySeconds"], "spec.minReadySeconds");
    let selector = &spec["selector"];
    required_selector(&mut check, selector, "statefulset");
    match parse_selector(selector) {
        None => check.invalid("spec.selector", &selector_text(selector), ""),
        Some(parsed) => {
            let meta = &spec["template"]["metadata"];
            let labels = &meta["labels"];
            if parsed.is_some_and(|s| !s.is_empty() && !selects(&s, labels)) {
                mismatch(&mut check, labels);
            }
            check.labels(labels, "spec.template.labels");
        }
    }
    restart_always(&mut check, spec, "StatefulSet", false);
    check.problems
}

/// The problems of a ReplicationController, whose selector is a plain
/// map (defaulted from the template's labels).
pub fn replication_controller(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let spec = &object["spec"];
    if !check.walkable(spec, "spec") {
        return check.problems;
    }
    check.non_negative(&spec["minReadySeconds"], "spec.minReadySeconds");
    let selector = check.string_map(&spec["selector"], "spec.selector");
    if selector.is_empty() {
        check.required("spec.selector", "");
    }
    check.non_negative(&spec["replicas"], "spec.replicas");
    let pod_template = &spec["template"];
    if pod_template.is_null() {
        check.required("spec.template", "");
        return check.problems;
    }
    let labels = &pod_template["metadata"]["labels"];
    let selects_template = selector
        .iter()
        .all(|(k, v)| labels.get(*k).and_then(Value::as_str) == Some(*v));
    if !selector.is_empty() && !selects_template {
        mismatch(&mut check, labels);
    }
    template(&mut check, pod_template, "spec.template");
    restart_always(&mut check, spec, "ReplicationController", true);
    check.problems
}

/// A Deployment's or ReplicaSet's selector and template
/// (`ValidatePodTemplateSpecForReplicaSet`).
fn selected_template(check: &mut Check, spec: &Value, noun: &str, kind: &str) {
    let selector = &spec["selector"];
    required_selector(check, selector, noun);
    match parse_selector(selector) {
        None => check.invalid(
            "spec.selector",
            &selector_text(selector),
            "invalid label selector",
        ),
        Some(parsed) => {
            let labels = &spec["template"]["metadata"]["labels"];
            // A missing selector selects nothing, as upstream's does.
            let selected = match &parsed {
                None => false,
                Some(s) => s.is_empty() || selects(s, labels),
            };
            if !selected {
                mismatch(check, labels);
            }
            template(check, &spec["template"], "spec.template");
            restart_always(check, spec, kind, true);
        }
    }
}

/// A required `LabelSelector`, validated, that may not be empty.
fn required_selector(check: &mut Check, selector: &Value, noun: &str) {
    if selector.is_null() {
        return check.required("spec.selector", "");
    }
    check.label_selector(selector, "spec.selector");
    if selector.is_object() && is_empty_selector(selector) {
        let detail = format!("empty selector is invalid for {noun}");
        check.invalid("spec.selector", &selector_text(selector), &detail);
    }
}

/// The template's pods must restart `Always`, with no deadline.
fn restart_always(check: &mut Check, spec: &Value, kind: &str, forbidden_deadline: bool) {
    let pod_spec = &spec["template"]["spec"];
    let policy = pod_spec["restartPolicy"].as_str().unwrap_or_default();
    if policy != "Always" {
        check.not_supported(
            "spec.template.spec.restartPolicy",
            &quote(policy),
            &["Always"],
        );
    }
    let deadline = &pod_spec["activeDeadlineSeconds"];
    if deadline.is_null() {
        return;
    }
    let field = "spec.template.spec.activeDeadlineSeconds";
    match (kind, forbidden_deadline) {
        ("StatefulSet", _) => check.invalid(field, &go_value(deadline), "must not be specified"),
        (_, true) => check.forbidden(
            field,
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ),
        _ => check.invalid(
            field,
            &go_value(deadline),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ),
    }
}

fn mismatch(check: &mut Check, labels: &Value) {
    let shown = match labels {
        Value::Null => "map[string]string(nil)".to_owned(),
        other => go_value(other),
    };
    check.invalid(
        "spec.template.metadata.labels",
        &shown,
        "`selector` does not match template `labels`",
    );
}

/// A LabelSelector as upstream's `LabelSelectorAsSelector` reads it:
/// `Some(None)` for none at all (which selects nothing), `None` when it
/// cannot be read.
fn parse_selector(selector: &Value) -> Option<Option<Selector>> {
    match selector {
        Value::Null => Some(None),
        other => Selector::from_object(other).map(Some),
    }
}

fn selects(selector: &Selector, labels: &Value) -> bool {
    selector.matches(|k| labels.get(k).and_then(Value::as_str))
}

fn is_empty_selector(selector: &Value) -> bool {
    let count = |field: &str| match &selector[field] {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    count("matchLabels") + count("matchExpressions") == 0
}

/// A LabelSelector as its generated Go `String()` prints it.
fn selector_text(selector: &Value) -> String {
    let labels: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {},", v.as_str().unwrap_or_default()))
        .collect();
    let expressions: Vec<String> = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e["key"].as_str().unwrap_or_default(),
                e["operator"].as_str().unwrap_or_default(),
                values.join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
        labels.concat(),
        expressions.concat()
    )
}

/// An update strategy as Go's `%#v` prints the internal struct.
fn strategy_text(kind: &str, strategy: &Value) -> String {
    let rolling = if kind.starts_with("Deployment") {
        "RollingUpdateDeployment"
    } else if kind.starts_with("DaemonSet") {
        "RollingUpdateDaemonSet"
    } else {
        "RollingUpdateStatefulSetStrategy"
    };
    format!(
        "apps.{kind}{{Type:{}, RollingUpdate:(*apps.{rolling})(nil)}}",
        quote(strategy["type"].as_str().unwrap_or_default())
    )
}

fn int_or_string_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "0".into(),
        other => other.to_string(),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` on an
/// IntOrString; answers its value (a percentage's number).
fn int_or_percent(check: &mut Check, value: &Value, field: &str) -> i64 {
    match value {
        Value::String(s) => {
            let Some(number) = s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            else {
                check.invalid(field, s, PERCENT);
                return 0;
            };
            let percent: i64 = number.parse().unwrap_or(i64::MAX);
            if percent > 100 {
                check.invalid(field, s, "must not be greater than 100%");
            }
            percent
        }
        other => {
            check.non_negative(other, field);
            other.as_i64().unwrap_or(0)
        }
    }
}

/// `ValidateDeploymentStrategy` (after the defaults, which give a
/// RollingUpdate strategy its `rollingUpdate`).
fn deployment_strategy(check: &mut Check, strategy: &Value) {
    let path = "spec.strategy";
    if !check.walkable(strategy, path) {
        return;
    }
    let rolling = &strategy["rollingUpdate"];
    match check.text(&strategy["type"], &format!("{path}.type")) {
        "Recreate" if !rolling.is_null() => check.forbidden(
            &format!("{path}.rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        ),
        "Recreate" => {}
        "RollingUpdate" if rolling.is_null() => check.required(
            &format!("{path}.rollingUpdate"),
            "this should be defaulted and never be nil",
        ),
        "RollingUpdate" => {
            let at = format!("{path}.rollingUpdate");
            let unavailable_path = format!("{at}.maxUnavailable");
            let unavailable = int_or_percent(check, &rolling["maxUnavailable"], &unavailable_path);
            let surge = int_or_percent(check, &rolling["maxSurge"], &format!("{at}.maxSurge"));
            if unavailable == 0 && surge == 0 {
                check.invalid(
                    &unavailable_path,
                    &int_or_string_text(&rolling["maxUnavailable"]),
                    "may not be 0 when `maxSurge` is 0",
                );
            }
        }
        _ => check.not_supported(
            path,
            &strategy_text("DeploymentStrategy", strategy),
            &["Recreate", "RollingUpdate"],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(kind: &str, spec: Value) -> Value {
        let mut object = json!({"metadata": {"name": "w"}, "spec": spec});
        super::super::strategy(kind).defaults(&mut object);
        object
    }

    fn messages(kind: &str, spec: Value) -> Vec<String> {
        super::super::strategy(kind)
            .validate(&defaulted(kind, spec))
            .into_iter()
            .map(|(_, field, message)| format!("{field}: {message}"))
            .collect()
    }

    fn workload(selector: Value, labels: Value) -> Value {
        json!({"replicas": 2, "selector": selector, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}})
    }

    #[test]
    fn valid_workloads_pass() {
        let spec = workload(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        for kind in ["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"] {
            assert_eq!(messages(kind, spec.clone()), Vec::<String>::new(), "{kind}");
        }
        let rc = workload(json!({"app": "web"}), json!({"app": "web"}));
        assert_eq!(messages("ReplicationController", rc), Vec::<String>::new());
        let defaulted_rc = workload(Value::Null, json!({"app": "web"}));
        assert_eq!(
            messages("ReplicationController", defaulted_rc),
            Vec::<String>::new()
        );
    }

    #[test]
    fn selectors_must_select_the_template() {
        let spec = workload(json!({"matchLabels": {"app": "x"}}), json!({"app": "web"}));
        assert_eq!(
            messages("Deployment", spec),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]
        );
        let spec = workload(Value::Null, json!({"app": "web"}));
        assert_eq!(
            messages("ReplicaSet", spec),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
        let spec = workload(json!({}), json!({"app": "web"}));
        assert_eq!(
            messages("Deployment", spec),
            ["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"]
        );
        let rc = workload(json!({"app": "db"}), Value::Null);
        assert_eq!(
            messages("ReplicationController", rc),
            ["spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn replicas_restart_policy_and_strategies() {
        let mut spec = workload(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        spec["replicas"] = json!(-1);
        spec["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "150%"}});
        assert_eq!(
            messages("Deployment", spec.clone()),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%",
            ]
        );
        spec["template"]["spec"]["containers"][0]["name"] = json!("Web");
        spec["strategy"] = json!({"type": "Recreate"});
        spec["replicas"] = json!(1);
        spec["template"]["spec"]["restartPolicy"] = json!("Always");
        let found = messages("Deployment", spec);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("spec.template.spec.containers[0].name: Invalid value: \"Web\"")
        );
    }
}
