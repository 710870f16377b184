# The Services scenario in the VM (busybox sh), run by tests/e2e/vm.rs
# once for each proxy mode in one boot, as `sh services.sh` with MODE
# (ipvs, nftables or userspace) and WATCHDOG_AT (the uptime, in ms, by
# which it must be done) in its environment: a real `skiff server` with
# process-backed pods and each node's proxy in MODE, on a data directory
# of the mode's own, WEB and SERVICES (tests/e2e/realpods.rs) applied,
# and traffic through every kind of Service from a pod's network
# namespace; the IPVS-only checks are ipvs.sh's. The server is stopped at
# the end, and the namespaces it made must be gone before the next mode
# starts. Each check prints `OK: what` or `FAIL: what` (and exits 1);
# timings print as `TIME: what MS ms`. Every wait has a deadline.

# busybox sh runs its own applets before PATH's programs: ip is
# iproute2's (busybox's has no netns).
for dir in /usr/sbin /usr/bin /sbin /bin; do
    [ -x $dir/ip ] && [ ! -L $dir/ip ] && { IP=$dir/ip; break; }
done
ip() { "$IP" "$@"; }

# Milliseconds since boot (the clock /proc/uptime keeps, 10 ms steps).
ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
started=$(ms)
ok() { echo "OK: $*"; }
say_time() { echo "TIME: $1 $2 ms"; }
step() { echo "STEP $(($(ms) - started)) ms ($(date -u +%T)): $*"; }
fail() {
    echo "FAIL: $* ($(date -u +%T))"
    # /tmp/why: what the failed check's last try printed, if it kept it.
    [ -e /tmp/why ] && sed 's/^/why: /' /tmp/why
    [ -e /tmp/slices ] && tail -n 5 /tmp/slices /tmp/kernel
    echo "--- server's stderr (last 40 lines) ---"
    tail -n 20 /tmp/server.err; grep -v "rules synced" /tmp/server.out | tail -n 30
    echo "--- ipvsadm -Ln in skiff-skiff-node-1 ($(command -v ip)) ---"
    ip netns exec skiff-skiff-node-1 ipvsadm -Ln 2>&1
    echo "--- pods ---"
    kubectl get pods -o wide 2>&1
    for pod in $(kubectl get pods -o name 2>/dev/null | head -n 2); do
        echo "--- $pod's log ---"
        kubectl logs "$pod" --previous 2>&1 | tail -n 20
        skiff describe "$pod" 2>&1 | tail -n 15
    done
    exit 1
}
# within SECONDS WHAT COMMAND...: runs COMMAND every 50 ms until it
# succeeds, failing past the deadline.
within() {
    seconds=$1 what=$2
    shift 2
    end=$(($(ms) + seconds * 1000))
    until "$@" >/dev/null 2>&1; do
        [ "$(ms)" -lt "$end" ] || fail "$what within ${seconds}s"
        sleep 0.05
    done
}

# As on a real node with a bridge CNI: bridged traffic goes through the
# IP hooks, so that a reply from a pod to a pod on the same bridge is
# un-NATed (by IPVS, by conntrack) on its way.
modprobe br_netfilter || fail "modprobe br_netfilter"
echo "SCENARIO $MODE START"
data=/tmp/skiff-$MODE
mkdir -p $data
skiff server --runtime process --proxy-mode "$MODE" \
    --load-balancer-pool 172.18.200.0/24 --data-dir $data \
    --listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 >/tmp/server.out 2>/tmp/server.err &
server=$!
trap 'kill $server 2>/dev/null' EXIT
within 30 "the server's ready line" grep -q kubeconfig: /tmp/server.out
KUBECONFIG=$(sed -n 's/.*kubeconfig: //p' /tmp/server.out)
export KUBECONFIG
# Past the VM's deadline nothing would be seen: say where it stands first.
( sleep $(((${WATCHDOG_AT:-95000} - $(ms)) / 1000)); fail "the watchdog fired" ) &
watchdog=$!
trap 'kill $server $watchdog 2>/dev/null' EXIT
say_time "server ready" $(($(ms) - started))

step applying
skiff apply -f web.yaml >/dev/null && skiff apply -f services.yaml >/dev/null || fail "skiff apply"
[ "$MODE" != ipvs ] || skiff apply -f gated.yaml >/dev/null || fail "skiff apply gated.yaml"
step "waiting for the rollout"
kubectl rollout status deployment/web --timeout=40s >/dev/null || fail "the rollout"
kubectl wait pod/echo --for=condition=Ready --timeout=60s >/dev/null || fail "the echo pod"
say_time "pods ready" $(($(ms) - started))

jp() { kubectl get "$@" 2>/dev/null; }
cluster_ip() { jp service "$1" -o 'jsonpath={.spec.clusterIP}'; }
client=skiff-pod-$(jp pod echo -o 'jsonpath={.metadata.uid}')
node1=skiff-skiff-node-1
pods() {
    jp pods -l app=web -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' | sort
}
# fetch NAMESPACE URL: the body, one try of at most 5 s.
fetch() { ip netns exec "$1" timeout 5 busybox wget -qO- "$2" 2>/tmp/wget.err; }
# diagnose: what the nodes' kernels hold, for a failed request.
diagnose() {
    for ns in $node1 $(ip netns list | awk '/^skiff-pod/ { print $1; exit }'); do
        echo "--- $ns ---"
        ip netns exec $ns ip -br addr
        ip netns exec $ns ip route
        ip netns exec $ns ipvsadm -Lnc 2>&1 | head -n 20
    done
    ip netns exec $node1 nft list ruleset | head -n 120
    ip -br addr
    ip route
    cat /proc/sys/net/ipv4/vs/conntrack 2>&1
}
# answers NAMESPACE URL TRIES: the names that answered, sorted, one a line.
answers() {
    i=0
    while [ $i -lt "$3" ]; do
        fetch "$1" "$2" || { echo "wget $2 failed: $(cat /tmp/wget.err)" >&2; diagnose >&2; exit 1; }
        echo
        i=$((i + 1))
    done | grep . | sort -u
}
web=$(cluster_ip web)
names=$(pods)

before=$(ms)
got=$(answers "$client" "http://$web/" 30) || fail "the ClusterIP $web"
say_time "30 requests" $(($(ms) - before))
[ "$got" = "$names" ] || fail "the ClusterIP spreads over the 3 pods: got [$got], want [$names]"
ok "the ClusterIP $web spreads over the 3 pods in 30 requests"

sticky=$(cluster_ip sticky)
got=$(answers "$client" "http://$sticky:8000/" 10)
[ "$(echo "$got" | wc -l)" = 1 ] || fail "ClientIP affinity sticks to one pod: got [$got]"
ok "ClientIP affinity sticks to $got"

for address in $(jp nodes -o 'jsonpath={range .items[*]}{.status.addresses[0].address}{"\n"}{end}'); do
    got=$(fetch $node1 "http://$address:30080/")
    echo "$names" | grep -qx "$got" || fail "NodePort $address:30080 from node 1: got [$got] $(cat /tmp/wget.err)"
    ok "NodePort $address:30080 answers from node 1 ($got)"
done

within 30 "the LoadBalancer's address" sh -c "kubectl get service web-lb -o 'jsonpath={.status.loadBalancer.ingress[0].ip}' | grep -q ."
lb=$(jp service web-lb -o 'jsonpath={.status.loadBalancer.ingress[0].ip}')
got=$(fetch "$client" "http://$lb:8080/")
echo "$names" | grep -qx "$got" || fail "the LoadBalancer IP $lb: got [$got] $(cat /tmp/wget.err)"
ok "the LoadBalancer IP $lb answers ($got)"

nobody=$(cluster_ip nobody)
before=$(ms)
fetch "$client" "http://$nobody/" && fail "the Service without endpoints answered"
took=$(($(ms) - before))
grep -q refused /tmp/wget.err || fail "the Service without endpoints: $(cat /tmp/wget.err)"
# Entering the namespace and starting wget take a second or more under
# TCG; a request nobody refuses waits for the 5 s timeout.
[ "$took" -lt 3000 ] || fail "the Service without endpoints refused after $took ms"
ok "the Service without endpoints refuses at once ($took ms)"

if [ "$MODE" = ipvs ]; then
    . ./ipvs.sh
fi

# The server stops (SIGTERM), removing its namespaces and pods, so that
# the next mode starts from a node as it booted.
kill $server
within 30 "the server removing its namespaces" sh -c "! ip netns list | grep -q skiff-"
wait $server
kill $watchdog 2>/dev/null
trap - EXIT
ok "the server stopped and left no namespace"
echo "SCENARIO $MODE DONE in $(($(ms) - started)) ms"
