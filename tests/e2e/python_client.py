"""The official Python `kubernetes` client against a running skiff server.

Usage: python3 python_client.py KUBECONFIG
Prints one line per check; exits non-zero on the first failure.
"""

import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()

    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "kube-system" in names, names
    print("list: ok")

    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"a": "1"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    print("create: ok")

    patched = core.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}, patched.data
    print("patch: ok")

    # A replace with the stale resourceVersion of the first read: 409.
    stale = created
    stale.data = {"c": "3"}
    try:
        core.replace_namespaced_config_map("py", "default", stale)
        raise AssertionError("a stale replace succeeded")
    except ApiException as e:
        assert e.status == 409, e.status
    print("conflict: ok")

    # A watch from the create sees the patch.
    stream = watch.Watch()
    seen = []
    for event in stream.stream(core.list_namespaced_config_map, "default",
                               resource_version=created.metadata.resource_version,
                               label_selector="from=python", timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "MODIFIED":
            stream.stop()
    assert seen == [("MODIFIED", "py")], seen
    print("watch: ok")

    # Push the first resourceVersion out of the (short) history: 410.
    for i in range(30):
        core.patch_namespaced_config_map("py", "default", {"data": {"n": str(i)}})
    old = created.metadata.resource_version
    try:
        core.list_namespaced_config_map("default", resource_version=old, resource_version_match="Exact")
        raise AssertionError("a list at a compacted resourceVersion succeeded")
    except ApiException as e:
        assert e.status == 410, e.status
    # A watch answers 200 with one ERROR event holding the 410 Status (the
    # client's watch helper then relists, as it should).
    response = core.list_namespaced_config_map("default", resource_version=old, watch=True,
                                               timeout_seconds=5, _preload_content=False)
    first = json.loads(response.readline())
    assert first["type"] == "ERROR" and first["object"]["code"] == 410, first
    print("gone: ok")

    core.delete_namespaced_config_map("py", "default")
    try:
        core.read_namespaced_config_map("py", "default")
        raise AssertionError("read after delete succeeded")
    except ApiException as e:
        assert e.status == 404, e.status
    print("delete: ok")


if __name__ == "__main__":
    main(sys.argv[1])
