use super::*;
use crate::Registry;

/// A minimal encoder, enough to write what client-go writes.
fn key(tag: u32, wire: u64) -> Vec<u8> {
    varint_bytes((u64::from(tag) << 3) | wire)
}

fn varint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn num(tag: u32, v: i64) -> Vec<u8> {
    [key(tag, 0), varint_bytes(v as u64)].concat()
}

fn bytes(tag: u32, b: &[u8]) -> Vec<u8> {
    [key(tag, 2), varint_bytes(b.len() as u64), b.to_vec()].concat()
}

fn msg(tag: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    bytes(tag, &parts.concat())
}

fn entry(tag: u32, k: &str, v: &[u8]) -> Vec<u8> {
    msg(tag, &[bytes(1, k.as_bytes()), bytes(2, v)])
}

fn decoder() -> Decoder {
    Decoder::new(&OpenApi::build(&Registry::builtin()))
}

#[test]
fn a_deployment_as_kubectl_create_deployment_sends_it() {
    let metadata = msg(
        1,
        &[
            bytes(1, b"web"),
            bytes(2, b""),
            msg(8, &[]),
            entry(11, "app", b"web"),
        ],
    );
    let container = msg(
        2,
        &[
            bytes(1, b"nginx"),
            bytes(2, b"nginx:1.27"),
            msg(6, &[num(3, 80), bytes(4, b"")]),
            msg(
                8,
                &[
                    entry(1, "cpu", &bytes(1, b"500m")),
                    entry(2, "memory", &bytes(1, b"64Mi")),
                ],
            ),
            bytes(14, b""),
        ],
    );
    let template = msg(
        3,
        &[
            msg(1, &[entry(11, "app", b"web"), msg(8, &[])]),
            msg(2, &[container, bytes(3, b""), num(4, 30)]),
        ],
    );
    let strategy = msg(
        4,
        &[
            bytes(1, b"RollingUpdate"),
            msg(
                2,
                &[
                    msg(1, &[num(1, 1), bytes(3, b"25%")]),
                    msg(2, &[num(1, 0), num(2, 2)]),
                ],
            ),
        ],
    );
    let spec = msg(
        2,
        &[
            num(1, 0),
            msg(2, &[entry(1, "app", b"web")]),
            template,
            strategy,
            num(5, 0),
            num(7, 0),
        ],
    );
    let body = [metadata, spec, msg(3, &[])].concat();
    let deployment = decoder()
        .decode("io.k8s.api.apps.v1.Deployment", &body)
        .unwrap();
    assert_eq!(
        deployment,
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                        }],
                        "terminationGracePeriodSeconds": 30,
                    },
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}},
                "minReadySeconds": 0,
                "paused": false,
            },
            "status": {},
        })
    );
}

#[test]
fn names_follow_the_schemas_and_times_bytes_and_negatives_decode() {
    let decoder = decoder();
    // podIP, hostIPs: prost's snake case differs from the JSON names.
    let status = [
        bytes(6, b"10.244.1.5"),
        msg(16, &[bytes(1, b"192.168.0.1")]),
    ]
    .concat();
    let pod = decoder
        .decode("io.k8s.api.core.v1.Pod", &msg(3, &[status]))
        .unwrap();
    assert_eq!(pod["status"]["podIP"], "10.244.1.5");
    assert_eq!(pod["status"]["hostIPs"], json!([{"ip": "192.168.0.1"}]));

    let created = msg(8, &[num(1, 1_795_000_000), num(2, 0)]);
    let secret = [msg(1, &[created]), entry(2, "k", &[0, 255])].concat();
    let secret = decoder
        .decode("io.k8s.api.core.v1.Secret", &secret)
        .unwrap();
    assert_eq!(
        secret["metadata"]["creationTimestamp"],
        "2026-11-18T11:06:40Z"
    );
    assert_eq!(secret["data"]["k"], "AP8=");

    let options = [num(1, -1), bytes(4, b"Foreground")].concat();
    let options = decoder
        .decode(
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            &options,
        )
        .unwrap();
    assert_eq!(
        options,
        json!({"gracePeriodSeconds": -1, "propagationPolicy": "Foreground"})
    );
}

#[test]
fn the_envelope_names_the_kind() {
    let unknown = [
        msg(1, &[bytes(1, b"v1"), bytes(2, b"ConfigMap")]),
        bytes(2, b"\x0a\x00"),
    ]
    .concat();
    let body = [b"k8s\0".to_vec(), unknown].concat();
    assert_eq!(
        envelope(&body).unwrap(),
        Envelope {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            raw: b"\x0a\x00".to_vec()
        }
    );
    assert!(envelope(b"{}").is_err());
    assert!(envelope(b"k8s\0").is_err());
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let decoder = decoder();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for length in 0..2_000 {
        let garbage: Vec<u8> = (0..length % 64)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let _ = decoder.decode("io.k8s.api.core.v1.Pod", &garbage);
        let _ = envelope(&[b"k8s\0".as_slice(), &garbage].concat());
    }
    assert!(decoder
        .decode("io.k8s.api.core.v1.Pod", &[0x0a, 0x05, 1])
        .is_err());
}

#[test]
fn the_table_is_closed() {
    let known: Vec<String> = fields::MESSAGES
        .iter()
        .map(|(m, _)| m.to_lowercase())
        .collect();
    for (message, fields) in fields::MESSAGES {
        for field in fields.iter() {
            if let Wire::M(target) | Wire::MapMessage(target) = field.wire {
                assert!(
                    known.contains(&target.to_lowercase()),
                    "{message}.{} -> {target}",
                    field.name
                );
            }
        }
    }
}

#[test]
fn embedded_structs_are_inlined_and_newer_fields_ignored() {
    // A Volume embeds its VolumeSource; a Probe its ProbeHandler; an
    // env source its LocalObjectReference.
    let volume = msg(
        1,
        &[bytes(1, b"data"), msg(2, &[msg(2, &[bytes(1, b"Memory")])])],
    );
    let probe = msg(
        10,
        &[
            msg(1, &[msg(3, &[msg(1, &[num(1, 0), num(2, 8080)])])]),
            num(2, 5),
        ],
    );
    let env_from = msg(19, &[msg(2, &[msg(1, &[bytes(1, b"cfg")])])]);
    let container = msg(
        2,
        &[bytes(1, b"c"), probe, env_from, msg(25, &[bytes(1, b"x")])],
    );
    let pod = decoder()
        .decode("io.k8s.api.core.v1.Pod", &msg(2, &[volume, container]))
        .unwrap();
    assert_eq!(
        pod["spec"],
        json!({
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}],
            "containers": [{
                "name": "c",
                "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5},
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
            }],
        })
    );
}
