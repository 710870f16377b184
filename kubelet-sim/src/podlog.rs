//! The simulated runtime's container log, which the kubelet server serves
//! for `pods/log`: no process runs, so the log is a few lines synthesized
//! from the pod's status, and the errors are upstream's when there is no
//! log to read. Its first lines are the
//! environment the kubelet gave the container (`KEY=value`, as `env` would
//! print them), which the simulated kubelet records in the pod's
//! [`ENVIRONMENT`] annotation when it starts the container.

use std::collections::BTreeMap;

use serde_json::Value;

/// The annotation in which a simulated kubelet records the Service
/// variables each container started with: a JSON object from container
/// name to `KEY=value` lines.
pub const ENVIRONMENT: &str = "kubelet.skiff.dev/environment";

/// At most this many variables are recorded per container, so that a
/// namespace of thousands of Services does not blow up every pod (upstream
/// meets the same wall as "argument list too long"; `enableServiceLinks:
/// false` is the cure there too).
pub const RECORDED: usize = 64;

/// The value of the [`ENVIRONMENT`] annotation for these containers and
/// their variables; beyond [`RECORDED`] a last line says how many more
/// there were.
pub fn record(containers: &[(String, Vec<(String, String)>)]) -> String {
    let lines: BTreeMap<&str, Vec<String>> = containers
        .iter()
        .map(|(name, variables)| {
            let mut lines: Vec<String> = variables
                .iter()
                .take(RECORDED)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if variables.len() > RECORDED {
                lines.push(format!(
                    "# ...and {} more variables, not recorded",
                    variables.len() - RECORDED
                ));
            }
            (name.as_str(), lines)
        })
        .collect();
    serde_json::to_string(&lines).expect("strings serialize")
}

/// The recorded environment of `container`, one line each.
fn environment(pod: &Value, container: &str) -> String {
    let recorded: BTreeMap<String, Vec<String>> = pod["metadata"]["annotations"][ENVIRONMENT]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    recorded
        .get(container)
        .into_iter()
        .flatten()
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The log of `container` (the only one when `None`) of `pod`, or the
/// reason there is none (upstream's 400 messages).
pub fn render(pod: &Value, container: Option<&str>) -> Result<String, String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (container, containers.as_slice()) {
        (Some(c), _) if containers.contains(&c) => c,
        (Some(c), _) => return Err(format!("container {c} is not valid for pod {name}")),
        (None, [only]) => only,
        (None, many) => {
            return Err(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            ))
        }
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container);
    let started = status.and_then(|s| {
        s["state"]["running"]["startedAt"]
            .as_str()
            .or(s["state"]["terminated"]["finishedAt"].as_str())
            .or(s["lastState"]["terminated"]["finishedAt"].as_str())
    });
    let Some(started) = started else {
        let reason = status
            .and_then(|s| s["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        return Err(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        ));
    };
    let image = status.and_then(|s| s["image"].as_str()).unwrap_or_default();
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    let restarts = status.and_then(|s| s["restartCount"].as_i64()).unwrap_or(0);
    let mut log = environment(pod, container);
    log.push_str(&format!(
        "{started} skiff: container {container} (image {image}) started on simulated node {node}\n\
         {started} skiff: pod IP {ip}; restarts so far: {restarts}\n\
         {started} skiff: no process runs on a simulated node; this log is synthesized\n"
    ));
    if let Some(code) = status.and_then(|s| s["state"]["terminated"]["exitCode"].as_i64()) {
        log.push_str(&format!(
            "{started} skiff: container exited with code {code}\n"
        ));
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logs_of_running_waiting_and_unknown_containers() {
        let pod = json!({
            "metadata": {"name": "web"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"podIP": "10.244.1.2", "containerStatuses": [{"name": "c", "image": "nginx", "restartCount": 0,
                       "state": {"running": {"startedAt": "2026-11-23T10:00:00Z"}}}]},
        });
        let log = render(&pod, None).unwrap();
        assert!(log.starts_with(
            "2026-11-23T10:00:00Z skiff: container c (image nginx) started on simulated node n1\n"
        ));
        let mut recorded = pod.clone();
        let variables = vec![("WEB_SERVICE_HOST".to_owned(), "10.96.50.50".to_owned())];
        recorded["metadata"]["annotations"] =
            json!({ ENVIRONMENT: record(&[("c".to_owned(), variables)]) });
        let log = render(&recorded, None).unwrap();
        assert!(
            log.starts_with(
                "WEB_SERVICE_HOST=10.96.50.50\n2026-11-23T10:00:00Z skiff: container c"
            ),
            "{log}"
        );
        assert_eq!(
            render(&pod, Some("x")).unwrap_err(),
            "container x is not valid for pod web"
        );
        let waiting = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(
            render(&waiting, None).unwrap_err(),
            "container \"c\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        let two = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            render(&two, None).unwrap_err(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
    }

    #[test]
    fn many_variables_are_recorded_up_to_a_bound() {
        let many: Vec<(String, String)> = (0..RECORDED + 5)
            .map(|i| (format!("S{i:03}_SERVICE_HOST"), "10.96.0.1".to_owned()))
            .collect();
        let value = record(&[("c".to_owned(), many)]);
        let lines: BTreeMap<String, Vec<String>> = serde_json::from_str(&value).unwrap();
        assert_eq!(lines["c"].len(), RECORDED + 1);
        assert_eq!(lines["c"][0], "S000_SERVICE_HOST=10.96.0.1");
        assert_eq!(
            lines["c"][RECORDED],
            "# ...and 5 more variables, not recorded"
        );
    }
}
