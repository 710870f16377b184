//! What a container runs, without I/O. Nothing is pulled: the image is
//! recorded, and when the container names no `command` the image picks a
//! program, so that everyday manifests work unchanged:
//!
//! | image | runs |
//! | --- | --- |
//! | `busybox`, `alpine` | `args`, else `sh`, as busybox applets |
//! | `ubuntu`, `debian` | `args`, else `sh`, from the node |
//! | `registry.k8s.io/pause` | the built-in `pause` |
//! | `agnhost` | the built-in `serve-hostname`, `netexec` or `pause` named by `args` |
//! | `nginx`, `httpd`, any other | the built-in HTTP server on every TCP `containerPort` (default 80) |
//!
//! A `command` runs as given (busybox images run it as a busybox applet
//! when the node has busybox), with `$(VAR)` expanded.

use k8s_openapi::api::core::v1::Container;

use super::env::command_line;

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A program of the node, looked up in `PATH`.
    Exec(Vec<String>),
    /// One of Skiff's built-in programs (`skiff builtin ARGS`).
    Builtin(Vec<String>),
}

/// The image's name without registry, path, tag or digest:
/// `registry.k8s.io/e2e-test-images/agnhost:2.53` is `agnhost`.
pub fn base(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split(':').next().unwrap_or(last)
}

/// What `container` runs with `env`; `busybox` is the node's busybox, if
/// it has one.
pub fn program(container: &Container, env: &[(String, String)], busybox: Option<&str>) -> Program {
    let image = container.image.as_deref().unwrap_or_default();
    let base = base(image);
    let (command, args) = command_line(container, env);
    let applets = matches!(base, "busybox" | "alpine")
        .then_some(busybox)
        .flatten();
    let node = |argv: Vec<String>| match applets {
        Some(busybox) => {
            let mut line = vec![busybox.to_owned()];
            let applet = argv[0].rsplit('/').next().unwrap_or_default().to_owned();
            line.push(applet);
            line.extend(argv.into_iter().skip(1));
            Program::Exec(line)
        }
        None => Program::Exec(argv),
    };
    if !command.is_empty() {
        return node(command.into_iter().chain(args).collect());
    }
    match base {
        "busybox" | "alpine" | "ubuntu" | "debian" => match args.is_empty() {
            true => node(vec!["sh".into()]),
            false => node(args),
        },
        "pause" => Program::Builtin(vec!["pause".into()]),
        "agnhost" => Program::Builtin(args),
        _ => {
            let mut line = vec!["serve-hostname".to_string(), "--http".into()];
            let ports: Vec<i32> = container
                .ports
                .iter()
                .flatten()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .map(|p| p.container_port)
                .collect();
            for port in if ports.is_empty() { vec![80] } else { ports } {
                line.push(format!("--port={port}"));
            }
            Program::Builtin(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(spec: serde_json::Value) -> Container {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn images_name_their_program() {
        assert_eq!(
            base("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "agnhost"
        );
        assert_eq!(base("docker.io/library/nginx@sha256:abc"), "nginx");
        assert_eq!(base("localhost:5000/busybox"), "busybox");
        let web = container(json!({"name": "c", "image": "nginx:1.27",
            "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}));
        assert_eq!(
            program(&web, &[], None),
            Program::Builtin(vec![
                "serve-hostname".into(),
                "--http".into(),
                "--port=8080".into()
            ])
        );
        let bare = container(json!({"name": "c", "image": "example.com/app"}));
        assert_eq!(
            program(&bare, &[], None),
            Program::Builtin(vec![
                "serve-hostname".into(),
                "--http".into(),
                "--port=80".into()
            ])
        );
        let agnhost = container(json!({"name": "c", "image": "agnhost:2.53",
            "args": ["netexec", "--http-port=8080"]}));
        assert_eq!(
            program(&agnhost, &[], None),
            Program::Builtin(vec!["netexec".into(), "--http-port=8080".into()])
        );
        let pause = container(json!({"name": "c", "image": "registry.k8s.io/pause:3.10"}));
        assert_eq!(
            program(&pause, &[], None),
            Program::Builtin(vec!["pause".into()])
        );
    }

    #[test]
    fn commands_run_as_given_and_busybox_images_as_applets() {
        let shell = container(json!({"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c"], "args": ["echo $(WHO)"]}));
        let env = [("WHO".to_string(), "me".to_string())];
        assert_eq!(
            program(&shell, &env, Some("/bin/busybox")),
            Program::Exec(vec![
                "/bin/busybox".into(),
                "sh".into(),
                "-c".into(),
                "echo me".into()
            ])
        );
        assert_eq!(
            program(&shell, &env, None),
            Program::Exec(vec!["/bin/sh".into(), "-c".into(), "echo me".into()])
        );
        let sleeper =
            container(json!({"name": "c", "image": "busybox:1.36", "args": ["sleep", "5"]}));
        assert_eq!(
            program(&sleeper, &[], Some("/bin/busybox")),
            Program::Exec(vec!["/bin/busybox".into(), "sleep".into(), "5".into()])
        );
        let debian = container(json!({"name": "c", "image": "debian:12"}));
        assert_eq!(
            program(&debian, &[], Some("/bin/busybox")),
            Program::Exec(vec!["sh".into()])
        );
    }
}
