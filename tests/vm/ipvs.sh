# The IPVS part of tests/vm/services.sh, sourced by it (its helpers and
# variables): what `skiff proxy rules` lists against the real ipvsadm,
# real servers following scaling, readiness and deletion (with a drained
# real server finishing its connection), and cluster DNS through IPVS.

listing=$(skiff proxy rules --kubeconfig "$KUBECONFIG" --node skiff-node-1) || fail "skiff proxy rules"
echo "$listing"
real=$(ip netns exec $node1 ipvsadm -Ln)
[ "$listing" = "$real" ] || {
    echo "--- ipvsadm -Ln ---"
    echo "$real"
    fail "skiff proxy rules lists what ipvsadm -Ln does"
}
ok "skiff proxy rules --node skiff-node-1 matches ipvsadm -Ln"
