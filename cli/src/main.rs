//! `skiff`: a Kubernetes control plane in one binary, and a kubectl-like
//! client for it.

mod agent;
mod apply;
mod cluster;
mod describe;
mod dns;
mod expose;
mod get;
mod manifest;
mod pki;
mod proxy;
mod server;
mod trace;
mod wire;
mod workload;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Skiff: a Kubernetes control plane in one binary.
#[derive(Parser)]
#[command(name = "skiff", version, about, long_about = None)]
struct Cli {
    /// The kubeconfig the client verbs use [default: $KUBECONFIG, else the
    /// one `skiff server` writes into its default data directory].
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// What the components log to standard error: error, warn, info, debug
    /// or trace, or a filter such as `info,skiff_scheduler=debug`
    /// [default: $RUST_LOG, else info].
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the apiserver over the embedded store, the
    /// scheduler, the controllers and simulated nodes.
    Server(server::ServerArgs),
    /// Run simulated nodes against a server elsewhere.
    Agent(agent::AgentArgs),
    /// Show objects: a table of them, or -o wide|yaml|json|name.
    Get(get::GetArgs),
    /// Create or update objects from manifests, as `kubectl apply`.
    Apply(apply::FileArgs),
    /// Create objects from manifests.
    Create(apply::FileArgs),
    /// Delete objects named by manifests or by type and name.
    Delete(apply::DeleteArgs),
    /// Show objects in detail, with their events.
    Describe(describe::DescribeArgs),
    /// Make a Service for a Deployment, ReplicaSet, ReplicationController,
    /// Pod or Service, selecting its pods, as `kubectl expose`.
    Expose(expose::ExposeArgs),
    /// Show how an object came to be and what it caused, step by step.
    Trace(trace::TraceArgs),
    /// Show what the node proxies programmed, read back from the kernel.
    #[command(subcommand)]
    Proxy(proxy::Proxy),
    /// Set the replicas of a Deployment, ReplicaSet, StatefulSet or RC.
    Scale(workload::ScaleArgs),
    /// Follow, list, undo, restart, pause or resume a Deployment's rollout.
    #[command(subcommand)]
    Rollout(workload::Rollout),
    /// Print a pod's log (simulated containers: a synthesized one).
    Logs(workload::LogsArgs),
    /// Mark a node unschedulable: no new pods go there.
    Cordon(workload::NodeArgs),
    /// Let new pods go to a node again.
    Uncordon(workload::NodeArgs),
    /// (internal) The process runtime's container shim: enters a pod's
    /// namespaces and runs the container's program.
    #[command(name = "container-shim", hide = true)]
    ContainerShim {
        /// The container's spec, as the runtime wrote it.
        spec: String,
    },
    /// (internal) A built-in program of the process runtime:
    /// serve-hostname, netexec or pause.
    #[command(hide = true)]
    Builtin {
        /// The program and its flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Prints to standard output like `println!`, but a closed pipe (`skiff
/// get pods | head`) ends the program quietly instead of panicking.
macro_rules! say {
    () => { $crate::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use say;

/// Writes to standard output; exits quietly when the reader went away.
pub(crate) fn write_out(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("skiff: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// An error already printed to the user: exit non-zero, say no more.
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported above")
    }
}

impl std::error::Error for Reported {}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = |flag| async move { cluster::Cluster::connect(flag).await };
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Agent(args) => agent::run(cli.kubeconfig, args).await,
        Command::Get(args) => get::run(&client(cli.kubeconfig).await?, args).await,
        Command::Apply(args) => apply::apply(&client(cli.kubeconfig).await?, args).await,
        Command::Create(args) => apply::create(&client(cli.kubeconfig).await?, args).await,
        Command::Delete(args) => apply::delete(&client(cli.kubeconfig).await?, args).await,
        Command::Describe(args) => describe::run(&client(cli.kubeconfig).await?, args).await,
        Command::Expose(args) => expose::run(&client(cli.kubeconfig).await?, args).await,
        Command::Trace(args) => trace::run(&client(cli.kubeconfig).await?, args).await,
        Command::Proxy(command) => proxy::run(&client(cli.kubeconfig).await?, command).await,
        Command::Scale(args) => workload::scale(&client(cli.kubeconfig).await?, args).await,
        Command::Rollout(command) => {
            workload::rollout(&client(cli.kubeconfig).await?, command).await
        }
        Command::Logs(args) => workload::logs(&client(cli.kubeconfig).await?, args).await,
        Command::Cordon(args) => workload::cordon(&client(cli.kubeconfig).await?, args, true).await,
        Command::Uncordon(args) => {
            workload::cordon(&client(cli.kubeconfig).await?, args, false).await
        }
        Command::ContainerShim { .. } | Command::Builtin { .. } => {
            unreachable!("run before the async runtime starts")
        }
    }
}

/// Logs to standard error, filtered by `--log-level`, else `RUST_LOG`,
/// else `info`.
fn init_logs(level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => {
            EnvFilter::try_new(level).map_err(|e| format!("--log-level {level:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The process runtime's own programs: one thread, no async runtime
    // (joining a mount namespace needs a single-threaded process).
    let exit = |code: i32| std::process::ExitCode::from(code.clamp(0, 255) as u8);
    match &cli.command {
        Command::ContainerShim { spec } => {
            return exit(skiff_kubelet_sim::process::shim::run(spec))
        }
        Command::Builtin { args } => return exit(skiff_kubelet_sim::process::builtin::run(args)),
        _ => {}
    }
    if let Err(e) = init_logs(cli.log_level.as_deref()) {
        eprintln!("skiff: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => std::process::ExitCode::FAILURE,
        Err(e) => {
            // One readable line: the server's Status, or the error and its causes.
            eprintln!("{}", cluster::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
