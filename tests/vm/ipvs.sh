# The IPVS part of tests/vm/services.sh, sourced by it (its helpers and
# variables): what `skiff proxy rules` lists against the real ipvsadm,
# real servers following scaling, readiness and deletion (a drained real
# server finishing its connection), and cluster DNS through IPVS.

# in_node1 COMMAND: a shell command in node 1's namespace.
in_node1() { ip netns exec $node1 sh -c "$1"; }

# The listing, against the real ipvsadm's around it (the counters of
# connections ending may move in between).
before=$(in_node1 "ipvsadm -Ln")
listing=$(skiff proxy rules --kubeconfig "$KUBECONFIG" --node skiff-node-1) || fail "skiff proxy rules"
after=$(in_node1 "ipvsadm -Ln")
[ "$listing" = "$before" ] || [ "$listing" = "$after" ] || {
    echo "--- skiff proxy rules ---"
    echo "$listing"
    echo "--- ipvsadm -Ln ---"
    echo "$before"
    fail "skiff proxy rules lists what ipvsadm -Ln does"
}
ok "skiff proxy rules --node skiff-node-1 prints what ipvsadm -Ln does"
echo "$listing" | head -n 1 | grep -q "^IP Virtual Server version 1.2.1 " || fail "the version line"
rows=$(echo "$listing" | awk -v vs="TCP  $sticky:8000 rr persistent 10800" '
    $0 ~ /^(TCP|UDP|SCTP) / { inside = (index($0, vs) == 1) ; next }
    inside && / Masq / { n++ } END { print n + 0 }')
[ "$rows" = 3 ] || fail "rr persistent 10800 with three Masq rows for $sticky:8000: $rows"
ok "$sticky:8000 rr persistent 10800 with three Masq real servers"

# The real servers with weight 1 behind the ClusterIP of web, as node 1's
# kernel holds them, every 20 ms with the time: a shell inside the
# namespace, since entering it takes longer than the budget.
kernel_watch() {
    in_node1 "while :; do
        n=\$(ipvsadm -Ln -t $web:80 | grep -c ' Masq    1 ')
        echo \"\$(awk '{ printf \"%d\", \$1 * 1000 }' /proc/uptime) \$n\"
        sleep 0.02
    done" >/tmp/kernel 2>/dev/null &
    kernel_pid=$!
}
# first_at FILE N: the time of FILE's first line counting N.
first_at() { awk -v n="$2" '$2 == n { print $1; exit }' "$1"; }
# The longest of node 1's syncs logged after line $1 of the server's
# log: from the EndpointSlice event to the kernel having it.
slowest_sync() {
    tail -n +"$1" /tmp/server.out /tmp/server.err 2>/dev/null |
        awk -F'elapsed_ms=' '/rules synced node=skiff-node-1 / { if ($2 + 0 > max) max = $2 + 0 } END { printf "%d\n", max }'
}
scale_to() {
    : >/tmp/kernel
    kernel_watch
    logged=$(($(cat /tmp/server.out /tmp/server.err | wc -l) + 1))
    asked=$(ms)
    kubectl scale deployment/web --replicas "$1" >/dev/null || fail "kubectl scale"
    within 60 "the kernel holding $1 real servers for $web:80" sh -c "[ -n \"\$(awk -v n=$1 '\$2 == n' /tmp/kernel)\" ]"
    kill $kernel_pid 2>/dev/null
    kerneled=$(first_at /tmp/kernel "$1")
    say_time "scale to $1: kubectl scale to the kernel" $((kerneled - asked))
    say_time "scale to $1: node 1's slowest sync, EndpointSlice event to the kernel" "$(slowest_sync $logged)"
    ok "scaled to $1: node 1's kernel holds $1 real servers"
}
scale_to 5
scale_to 1

# Cluster DNS through IPVS, as a container asks it: its resolv.conf
# names 10.96.0.10 (what nslookup printed last is shown on failure).
in_node1 "ipvsadm -Ln -u 10.96.0.10:53" | sed 's/^/ipvs: /'
within 30 "kube-dns answering inside a pod" sh -c "kubectl exec echo -- busybox nslookup web.default.svc.cluster.local >/tmp/why 2>&1 && grep -q $web /tmp/why"
rm -f /tmp/why
ok "nslookup web.default.svc.cluster.local answers $web through 10.96.0.10"

# Readiness and draining through IPVS: the gated pod is ready while its
# /tmp/ready exists (an exec probe, in the container's root).
# gated_dests: gated's real servers on node 1, as ipvsadm lists them.
gated=$(cluster_ip gated)
gated_dests() { in_node1 "ipvsadm -Ln -t $gated:80" | grep ' Masq '; }
# gated_has PATTERN: a real server matching PATTERN; gated_has_none: none.
gated_has() { gated_dests | grep -q "$1"; }
gated_has_none() { ! gated_dests >/dev/null; }
kubectl exec gated -- touch /tmp/ready || fail "kubectl exec gated touch"
within 30 "gated's real server" gated_has ' Masq    1 '
kubectl exec gated -- rm /tmp/ready || fail "kubectl exec gated rm"
within 15 "the unready pod leaving the real servers" gated_has_none
ok "the unready pod left the real servers"
kubectl exec gated -- touch /tmp/ready || fail "kubectl exec gated touch"
within 15 "the ready pod back in the real servers" gated_has ' Masq    1 '
ok "ready again, it came back"

# A connection open from node 1 (whose kernel the listing shows) while
# gated's endpoint is deleted (the pod relabelled: it keeps running).
rm -f /tmp/request /tmp/response
mkfifo /tmp/request
ip netns exec $node1 sh -c "nc $gated 80 </tmp/request >/tmp/response" &
conn=$!
exec 3>/tmp/request
within 15 "the open connection in ipvsadm" gated_has ' Masq    1      1 '
kubectl label pod gated app=drained --overwrite >/dev/null || fail "kubectl label"
within 15 "the deleted endpoint at weight 0" gated_has ' Masq    0      1 '
echo "$(gated_dests)"
ok "the deleted endpoint with an open connection is at weight 0"
printf 'GET / HTTP/1.0\r\n\r\n' >&3
exec 3>&-
within 15 "the connection completing" grep -q gated /tmp/response
ok "the drained connection completed: $(grep gated /tmp/response | head -n 1)"
kill $conn 2>/dev/null
within 15 "the drained real server deleted after its connection closed" gated_has_none
ok "the drained real server was deleted once its connection closed"
