"""The Python client's attach and terminal resize against a Skiff server
running real pods: a line into a running container's own stdin and its
answer back, and `stty size` in an exec's terminal after a resize."""

import json
import sys

from kubernetes import client, config
from kubernetes.stream import stream

from python_streams import read_until


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    session = stream(core.connect_get_namespaced_pod_attach, "talker", "default",
                     stderr=True, stdin=True, stdout=True, tty=False,
                     _preload_content=False)
    session.write_stdin("hi\n")
    out = read_until(session, "heard-hi")
    session.close()
    assert "heard-hi" in out, out
    print("attach: ok")
    session = stream(core.connect_get_namespaced_pod_exec, "shell", "default",
                     command=["sh", "-c", "read go; stty size"],
                     stderr=True, stdin=True, stdout=True, tty=True,
                     _preload_content=False)
    session.write_channel(4, json.dumps({"Width": 100, "Height": 30}))
    session.write_stdin("go\n")
    out = read_until(session, "30 100")
    session.close()
    assert "30 100" in out, out
    print("resize: ok")


if __name__ == "__main__":
    main(sys.argv[1])
