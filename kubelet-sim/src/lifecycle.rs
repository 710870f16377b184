//! A simulated pod's life, without I/O: how it behaves (from its
//! annotations, like kwok's stages), which state comes next, and the status
//! each state reports — the same fields, conditions and reasons a real
//! kubelet writes.
//!
//! | annotation | meaning | default |
//! | --- | --- | --- |
//! | `sim.skiff.dev/start-delay` | ContainerCreating lasts this long | `0s` |
//! | `sim.skiff.dev/ready-delay` | running, not ready, for this long | `0s` |
//! | `sim.skiff.dev/ready` | `"false"`: never ready (a failing readiness probe) | `"true"` |
//! | `sim.skiff.dev/exit-after` | the containers exit after running this long | never |
//! | `sim.skiff.dev/exit-code` | ...with this code | `0` |
//! | `sim.skiff.dev/terminate-delay` | stopping takes this long (capped by the grace period) | `0s` |
//!
//! Durations are a number and a unit: `500ms`, `2s`, `1m`, `1h`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::runtime::Exit;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// The prefix of the behaviour annotations.
pub const PREFIX: &str = "sim.skiff.dev/";

/// How a simulated pod behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// How long its containers are being created.
    pub start_delay: Duration,
    /// How long after starting it becomes ready.
    pub ready_delay: Duration,
    /// Whether it ever becomes ready.
    pub ready: bool,
    /// When (after starting) its containers exit, and with which code.
    pub exit: Option<(Duration, i32)>,
    /// How long its containers take to stop.
    pub terminate_delay: Duration,
}

/// Parses `500ms`, `2s`, `1m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{text:?} has an unknown unit (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl Behaviour {
    /// The behaviour a pod's annotations ask for.
    pub fn of(annotations: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |name: &str| annotations.get(&format!("{PREFIX}{name}"));
        let duration = |name: &str| -> Result<Duration, String> {
            get(name).map_or(Ok(Duration::ZERO), |v| {
                parse_duration(v).map_err(|e| format!("{PREFIX}{name}: {e}"))
            })
        };
        let exit = match get("exit-after") {
            None => None,
            Some(after) => {
                let after =
                    parse_duration(after).map_err(|e| format!("{PREFIX}exit-after: {e}"))?;
                let code = match get("exit-code") {
                    None => 0,
                    Some(code) => code
                        .parse()
                        .map_err(|_| format!("{PREFIX}exit-code: {code:?} is not an integer"))?,
                };
                Some((after, code))
            }
        };
        Ok(Behaviour {
            start_delay: duration("start-delay")?,
            ready_delay: duration("ready-delay")?,
            ready: get("ready").map(String::as_str) != Some("false"),
            exit,
            terminate_delay: duration("terminate-delay")?,
        })
    }
}

/// Where a pod's containers stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Bound, its containers being created.
    Creating,
    /// Its containers cannot be created yet, for this reason
    /// (`CreateContainerConfigError`) and message.
    Waiting {
        /// The reason.
        reason: String,
        /// What is wrong.
        message: String,
    },
    /// Running since `since` (RFC 3339), after `restarts` restarts.
    Running {
        /// Whether it passes its readiness probe.
        ready: bool,
        /// Restarts so far.
        restarts: i32,
        /// When the containers started.
        since: String,
        /// How the last run ended, and when, after a restart.
        last: Option<(Exit, String)>,
    },
    /// Exited and waiting out its restart back-off.
    BackOff {
        /// Restarts so far.
        restarts: i32,
        /// How the last run ended.
        exit: Exit,
        /// How long the back-off lasts.
        delay: Duration,
    },
    /// Done for good: Succeeded (code 0) or Failed.
    Finished {
        /// How it ended.
        exit: Exit,
    },
}

/// What follows containers exiting as `exit` says, by the pod's
/// `restartPolicy`: a back-off before restarting, or the end.
pub fn after_exit(restart_policy: &str, exit: Exit, restarts: i32) -> State {
    let restart = match restart_policy {
        "Never" => false,
        "OnFailure" => exit.code != 0,
        _ => true,
    };
    if restart {
        State::BackOff {
            restarts,
            exit,
            delay: backoff(restarts),
        }
    } else {
        State::Finished { exit }
    }
}

/// The kubelet's crash-loop back-off: 10 s, doubling, at most 5 min.
pub fn backoff(restarts: i32) -> Duration {
    let doublings = restarts.clamp(0, 5) as u32;
    Duration::from_secs((10u64 << doublings).min(300))
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let mut condition = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": now,
    });
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    condition
}

/// The status a pod in `state` reports, on a node at `host_ip`, with
/// `pod_ip`, at `now` (RFC 3339). `started` is when the kubelet took it;
/// `runtime` names the runtime in image and container IDs.
pub fn status(
    runtime: &str,
    pod: &Pod,
    state: &State,
    host_ip: &str,
    pod_ip: &str,
    started: &str,
    now: &str,
) -> Value {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let (phase, ready) = match state {
        State::Creating | State::Waiting { .. } => ("Pending", false),
        State::Running { ready, .. } => ("Running", *ready),
        State::BackOff { .. } => ("Running", false),
        State::Finished { exit } if exit.code == 0 => ("Succeeded", false),
        State::Finished { .. } => ("Failed", false),
    };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let mut status = json!({
                "name": c.name,
                "image": image,
                "imageID": format!("{runtime}://{image}"),
                "ready": ready,
                "restartCount": 0,
                "started": false,
            });
            let terminated = |exit: &Exit, at: &str| {
                json!({"terminated": {"exitCode": exit.code, "reason": exit.reason(), "finishedAt": at}})
            };
            match state {
                State::Creating => {
                    status["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                }
                State::Waiting { reason, message } => {
                    status["state"] = json!({"waiting": {"reason": reason, "message": message}});
                }
                State::Running { restarts, since, last, .. } => {
                    status["state"] = json!({"running": {"startedAt": since}});
                    if let Some((exit, at)) = last {
                        status["lastState"] = terminated(exit, at);
                    }
                    status["restartCount"] = json!(restarts);
                    status["started"] = json!(true);
                    status["containerID"] = json!(format!("{runtime}://{}-{}", c.name, restarts));
                }
                State::BackOff { restarts, exit, delay } => {
                    let message = format!(
                        "back-off {}s restarting failed container={} pod={}",
                        delay.as_secs(),
                        c.name,
                        pod.metadata.name.as_deref().unwrap_or_default()
                    );
                    status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}});
                    status["lastState"] = terminated(exit, now);
                    status["restartCount"] = json!(restarts);
                }
                State::Finished { exit } => {
                    status["state"] = terminated(exit, now);
                }
            }
            status
        })
        .collect();
    // Init containers: done (sidecars running) once the pod's containers
    // started; until then, initializing.
    let initialized = !matches!(state, State::Creating | State::Waiting { .. });
    let inits: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let since = match state {
                State::Running { since, .. } => since.as_str(),
                _ => now,
            };
            let (state, ready) = match (initialized, sidecar) {
                (false, _) => (json!({"waiting": {"reason": "PodInitializing"}}), false),
                (true, true) => (json!({"running": {"startedAt": since}}), true),
                (true, false) => (
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": since, "finishedAt": since}}),
                    false,
                ),
            };
            json!({
                "name": c.name, "image": image, "imageID": format!("{runtime}://{image}"),
                "ready": ready, "restartCount": 0, "started": initialized && sidecar, "state": state,
            })
        })
        .collect();
    let not_ready = match state {
        State::Finished { exit } if exit.code == 0 => Some("PodCompleted"),
        State::Finished { .. } => Some("PodFailed"),
        _ if !ready => Some("ContainersNotReady"),
        _ => None,
    };
    let mut status = json!({
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started,
        "conditions": [
            condition("PodReadyToStartContainers", !matches!(state, State::Creating), None, now),
            condition("Initialized", initialized, (!initialized).then_some("ContainersNotInitialized"), now),
            condition("Ready", ready, not_ready, now),
            condition("ContainersReady", ready, not_ready, now),
            condition("PodScheduled", true, None, now),
        ],
        "containerStatuses": statuses,
        "qosClass": pod.status.as_ref().and_then(|s| s.qos_class.clone()).unwrap_or_else(|| "BestEffort".into()),
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    if !matches!(state, State::Creating) {
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{"ip": pod_ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn behaviour_from_annotations() {
        assert_eq!(
            Behaviour::of(&BTreeMap::new()).unwrap(),
            Behaviour {
                start_delay: Duration::ZERO,
                ready_delay: Duration::ZERO,
                ready: true,
                exit: None,
                terminate_delay: Duration::ZERO
            }
        );
        let b = Behaviour::of(&annotations(&[
            ("start-delay", "500ms"),
            ("ready", "false"),
            ("exit-after", "1m"),
            ("exit-code", "3"),
        ]))
        .unwrap();
        assert_eq!(b.start_delay, Duration::from_millis(500));
        assert!(!b.ready);
        assert_eq!(b.exit, Some((Duration::from_secs(60), 3)));
        let error = Behaviour::of(&annotations(&[("start-delay", "soon")])).unwrap_err();
        assert!(error.starts_with("sim.skiff.dev/start-delay:"), "{error}");
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn restart_policy_decides_what_follows_an_exit() {
        let (zero, one) = (Exit::code(0), Exit::code(1));
        assert_eq!(after_exit("Never", one, 0), State::Finished { exit: one });
        assert_eq!(
            after_exit("OnFailure", zero, 0),
            State::Finished { exit: zero }
        );
        assert!(matches!(
            after_exit("OnFailure", Exit::code(2), 0),
            State::BackOff {
                exit: Exit { code: 2, .. },
                ..
            }
        ));
        assert!(matches!(
            after_exit("Always", zero, 3),
            State::BackOff { restarts: 3, .. }
        ));
        let delays: Vec<u64> = (0..8).map(|r| backoff(r).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"qosClass": "BestEffort"},
        }))
        .unwrap()
    }

    #[test]
    fn statuses_read_like_a_kubelets() {
        let now = "2026-11-23T10:00:00Z";
        let creating = status(
            "sim",
            &pod(),
            &State::Creating,
            "172.18.0.2",
            "10.244.1.2",
            now,
            now,
        );
        assert_eq!(creating["phase"], "Pending");
        assert!(creating.get("podIP").is_none());
        assert_eq!(
            creating["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        let running = State::Running {
            ready: true,
            restarts: 0,
            since: now.into(),
            last: None,
        };
        let running = status(
            "sim",
            &pod(),
            &running,
            "172.18.0.2",
            "10.244.1.2",
            now,
            now,
        );
        assert_eq!(
            (running["phase"].as_str(), running["podIP"].as_str()),
            (Some("Running"), Some("10.244.1.2"))
        );
        let ready: Vec<(&str, &str)> = running["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert!(ready.contains(&("Ready", "True")) && ready.contains(&("ContainersReady", "True")));
        let crashing = State::BackOff {
            restarts: 2,
            exit: Exit {
                code: 137,
                oom_killed: true,
            },
            delay: backoff(2),
        };
        let crashing = status(
            "sim",
            &pod(),
            &crashing,
            "172.18.0.2",
            "10.244.1.2",
            now,
            now,
        );
        let container = &crashing["containerStatuses"][0];
        assert_eq!(container["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            container["state"]["waiting"]["message"],
            "back-off 40s restarting failed container=c pod=web-1"
        );
        assert_eq!(container["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(container["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(container["restartCount"], 2);
        let failed = status(
            "sim",
            &pod(),
            &State::Finished {
                exit: Exit::code(1),
            },
            "172.18.0.2",
            "10.244.1.2",
            now,
            now,
        );
        assert_eq!(failed["phase"], "Failed");
    }

    #[test]
    fn init_containers_report_done_once_the_pod_runs() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"initContainers": [{"name": "setup", "image": "busybox"},
                                        {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
                     "containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        let now = "2026-11-23T10:00:00Z";
        let creating = status("process", &pod, &State::Creating, "h", "ip", now, now);
        assert_eq!(
            creating["initContainerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let initialized = &creating["conditions"][1];
        assert_eq!(
            (initialized["type"].as_str(), initialized["status"].as_str()),
            (Some("Initialized"), Some("False"))
        );
        let running = State::Running {
            ready: true,
            restarts: 0,
            since: now.into(),
            last: None,
        };
        let running = status("process", &pod, &running, "h", "ip", now, now);
        let inits = &running["initContainerStatuses"];
        assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(inits[1]["state"]["running"]["startedAt"], now);
        assert_eq!(running["conditions"][1]["status"], "True");
        let plain = status(
            "sim",
            &super::tests::pod(),
            &State::Creating,
            "h",
            "ip",
            now,
            now,
        );
        assert!(plain.get("initContainerStatuses").is_none());
    }
}
