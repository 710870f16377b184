//! The conformance table every kind's strategy is tested with: create,
//! update, status update and immutable fields, as upstream's
//! `pkg/registry/*/strategy_test.go` check them, from one shared driver.

use serde_json::{json, Value};

use super::Strategy;

/// One kind's case.
pub(crate) struct Case {
    /// The strategy under test.
    pub strategy: &'static dyn Strategy,
    /// A valid object as a client creates it, with a status of its own.
    pub object: Value,
    /// Whether create replaces the client's status (the controller owns it).
    pub resets_status: bool,
    /// Whether the status is written through `/status` alone.
    pub status_subresource: bool,
    /// A merge patch that changes the spec and is allowed.
    pub spec_update: Value,
    /// Merge patches that change an immutable field: (patch, the field at
    /// fault).
    pub immutable: Vec<(Value, &'static str)>,
}

fn merged(object: &Value, patch: &Value) -> Value {
    let mut next = object.clone();
    json_patch::merge(&mut next, patch);
    next
}

/// Runs `case` through create, update, status update and the immutable
/// fields; panics at the first rule broken, naming it.
pub(crate) fn check(case: Case) {
    let strategy = case.strategy;
    let mut created = case.object.clone();
    strategy.prepare_for_create(&mut created);
    strategy.defaults(&mut created);
    assert_eq!(strategy.validate(&created), vec![], "create: valid");
    assert_eq!(
        created["status"] != case.object["status"],
        case.resets_status,
        "create: the client's status {} is {}",
        case.object["status"],
        if case.resets_status {
            "kept"
        } else {
            "dropped"
        }
    );
    let once = created.clone();
    strategy.defaults(&mut created);
    assert_eq!(created, once, "defaults: a second pass changes nothing");

    // An update of the object: the spec changes, a new status does not
    // unless the kind has no /status.
    let sent_status = json!({"observedGeneration": 42});
    let mut updated = merged(&created, &case.spec_update);
    updated["status"] = sent_status.clone();
    strategy.prepare_for_update(&created, &mut updated);
    strategy.defaults(&mut updated);
    let expected_status = match case.status_subresource {
        true => created["status"].clone(),
        false => sent_status.clone(),
    };
    assert_eq!(updated["status"], expected_status, "update: the status");
    assert_eq!(
        updated["spec"],
        {
            let mut spec = merged(&created, &case.spec_update);
            strategy.defaults(&mut spec);
            spec["spec"].clone()
        },
        "update: the spec"
    );
    assert_eq!(strategy.validate(&updated), vec![], "update: valid");
    assert_eq!(
        strategy.validate_update(&created, &updated),
        vec![],
        "update: allowed"
    );

    // An update through /status: the status changes, the spec does not.
    if case.status_subresource {
        let mut through_status = merged(&created, &case.spec_update);
        through_status["status"] = sent_status.clone();
        strategy.prepare_for_status_update(&created, &mut through_status);
        assert_eq!(through_status["spec"], created["spec"], "/status: the spec");
        assert_eq!(through_status["status"], sent_status, "/status: the status");
    }

    for (patch, field) in &case.immutable {
        let mut changed = merged(&created, patch);
        strategy.prepare_for_update(&created, &mut changed);
        strategy.defaults(&mut changed);
        let fields: Vec<String> = strategy
            .validate_update(&created, &changed)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert!(
            fields.iter().any(|f| f == field),
            "immutable: {patch} changes {field}, refused as {fields:?}"
        );
    }
}

/// A workload selecting its template's pods with `selector` (Null: none),
/// with a status its controller wrote.
pub(crate) fn workload(selector: Value) -> Value {
    json!({
        "metadata": {"name": "w"},
        "spec": {
            "replicas": 1,
            "selector": selector,
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
        "status": {"replicas": 3},
    })
}

/// The case of an `apps/v1` workload: its status is its controller's,
/// behind `/status`, and its selector cannot change (`spec.selector`).
pub(crate) fn apps_workload(
    strategy: &'static dyn Strategy,
    object: Value,
    spec_update: Value,
) -> Case {
    Case {
        strategy,
        object,
        resets_status: true,
        status_subresource: true,
        spec_update,
        immutable: vec![(
            json!({"spec": {"selector": {"matchLabels": {"app": "b"}}, "template": {"metadata": {"labels": {"app": "b"}}}}}),
            "spec.selector",
        )],
    }
}
