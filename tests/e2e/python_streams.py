"""The Python client's exec and port-forward (stream(), portforward())
against a Skiff server running real pods: a command's output and stdin,
and an HTTP request through a forwarded port."""

import sys

from kubernetes import client, config
from kubernetes.stream import portforward, stream


def read_until(session, what):
    """What a streamed session printed until `what` (or its end)."""
    out = ""
    while session.is_open() and what not in out:
        session.update(timeout=5)
        out += session.read_stdout() or ""
    return out


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    said = stream(core.connect_get_namespaced_pod_exec, "echo", "default",
                  command=["sh", "-c", "echo out-$HOSTNAME; echo err >&2"],
                  stderr=True, stdin=False, stdout=True, tty=False)
    assert "out-echo" in said, said
    print("exec: ok")
    session = stream(core.connect_get_namespaced_pod_exec, "echo", "default",
                     command=["sh", "-c", "read line; echo got-$line"],
                     stderr=True, stdin=True, stdout=True, tty=False,
                     _preload_content=False)
    session.write_stdin("hello\n")
    out = read_until(session, "got-")
    session.close()
    assert "got-hello" in out, out
    print("stdin: ok")
    forward = portforward(core.connect_get_namespaced_pod_portforward, "echo", "default",
                          ports="8080")
    sock = forward.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"echo"), reply
    error = forward.error(8080)
    assert error is None, error
    print("portforward: ok")


if __name__ == "__main__":
    main(sys.argv[1])
