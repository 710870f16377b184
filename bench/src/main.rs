//! Skiff's benchmarks. `skiff-bench SCENARIO` runs one scenario and prints
//! one JSON line of figures on standard output (progress goes to standard
//! error). Run them with `cargo run --release -p skiff-bench -- SCENARIO`.

mod allocate;
mod dns;
mod endpoints;
mod etcd;
mod flow;
mod proxy;
mod proxy_ipvs;
mod realpods;
mod server;
mod stats;
mod store;
mod traffic;

const HELP: &str = "\
skiff-bench: run one benchmark scenario and print one JSON line of figures

USAGE:
    cargo run --release -p skiff-bench -- SCENARIO [--seconds N]

SCENARIOS:
    store    durable creates and updates of ~1 KiB JSON from 1, 16 and 64
             writers against Skiff's sled store and, in the same run, against
             etcd (the `etcd` binary from Debian's etcd-server, started on
             loopback in a temporary directory, driven over gRPC); watch
             fan-out to 1,000 watchers; opening a store of 100,000 objects
    startup  the real `skiff server` (cargo build --release -p skiff first):
             exec to /readyz 200 on an existing data directory, median of 10
             cold starts; resident memory after 10 s idle
    api      durable creates over HTTPS with keep-alive from 16 and 64
             clients against the real `skiff server`: p50/p99 and creates/s
    schedule scheduling throughput: 10,000 pending pods, then 5,000 nodes
             (without kubelets); pods bound per second, first to last binding
    deploy   a Deployment of 10,000 replicas on 1,000 simulated nodes: create
             to all available, and the server's memory then
    podstart pod startup latency: pods created at a steady 100/s for 20 s
             (or --seconds) on 100 simulated nodes, create to Running p50/p99
    endpoints  1,000 Services of 10 pods each (on kubelet-less nodes, their
             status written by the benchmark); 500 pods made unready at 50/s:
             status write answered to the EndpointSlice watch showing it,
             p50/p99/max
    allocate 10,000 Services (each with a selector; every fifth a NodePort)
             created by 64 HTTPS clients: creates/s and p50/p99, then every
             ClusterIP and node port checked to be held once
    dns      cluster DNS: 1,000 Services, then A queries over UDP on loopback
             from 8 sockets (one in flight each) for 5 s (or --seconds):
             queries/s and p50/p99 latency; also create to all answered

    realpods real pods (--runtime process; needs root) beside simulated ones on
             3 nodes: built-in HTTP server pods with a readiness probe at
             20/s, create to Running and to Ready p50/p99; 300 pods at once:
             create to all Running, the server's and the pods' processes'
             memory, delete to all gone

    proxy    the node proxy's nftables mode in a network namespace of its own
             (needs root and nft): a full sync of 10,000 Services x 5
             (or --services)
             endpoints, and beside it `nft -f` loading the same ruleset;
             50 single endpoint changes on top, EndpointSlice event to nft
             done, p50/p99; the bench process's memory before and after

    proxy-ipvs
             the node proxy's IPVS mode in a network namespace of its own
             (needs root and a kernel with IPVS, else it says it skipped:
             vm::proxy_ipvs_bench_in_the_vm runs it in the VM): a full sync
             of 10,000 Services x 5 (or --services) endpoints, and beside it
             `ipvsadm -R` restoring the same rules into a fresh namespace;
             50 single endpoint changes on top, EndpointSlice event to the
             kernel, p50/p99; the bench process's memory before and after

    proxy-traffic
             requests through a Service (1 KiB HTTP responses, 8 keep-alive
             connections, --seconds per mode) in two network namespaces of
             its own (needs root): straight to the pod, then through the
             nftables, userspace and (where the kernel has it) ipvs modes;
             requests/s, p50/p99 and the p99 each mode adds

OPTIONS:
    --seconds N    how long each write phase runs (default 5)
    --services N   how many Services the proxy and proxy-ipvs scenarios
                   program (default 10,000)
    -h, --help     print this help
";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return std::process::ExitCode::from(if args.is_empty() { 2 } else { 0 });
    }
    let seconds = match args.iter().position(|a| a == "--seconds") {
        None => 5,
        Some(i) => match args.get(i + 1).and_then(|s| s.parse().ok()) {
            Some(n) => n,
            None => return fail("--seconds takes a whole number"),
        },
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = match args[0].as_str() {
        "store" => runtime.block_on(store::run(std::time::Duration::from_secs(seconds))),
        "startup" => runtime.block_on(server::startup()),
        "api" => runtime.block_on(server::api(std::time::Duration::from_secs(seconds))),
        "schedule" => runtime.block_on(flow::schedule(5_000, 10_000)),
        "deploy" => runtime.block_on(flow::deploy(1_000, 10_000)),
        "podstart" => runtime.block_on(flow::podstart(100, 100, seconds.max(20))),
        "endpoints" => runtime.block_on(endpoints::run(1_000, 10, 500, 50)),
        "allocate" => runtime.block_on(allocate::run(10_000)),
        "realpods" => runtime.block_on(realpods::run()),
        "dns" => runtime.block_on(dns::run(std::time::Duration::from_secs(seconds))),
        "proxy" | "proxy-ipvs" => {
            let services = match args.iter().position(|a| a == "--services") {
                None => 10_000,
                Some(i) => match args.get(i + 1).and_then(|s| s.parse().ok()) {
                    Some(n) if n > 0 => n,
                    _ => return fail("--services takes a whole number above 0"),
                },
            };
            match args[0].as_str() {
                "proxy" => runtime.block_on(proxy::run(services, 50)),
                _ => runtime.block_on(proxy_ipvs::run(services, 50)),
            }
        }
        "proxy-traffic" => runtime.block_on(traffic::run(seconds)),
        other => return fail(&format!("unknown scenario {other:?}; see --help")),
    };
    match result {
        Ok(figures) => {
            println!("{figures}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> std::process::ExitCode {
    eprintln!("skiff-bench: {message}");
    std::process::ExitCode::FAILURE
}
