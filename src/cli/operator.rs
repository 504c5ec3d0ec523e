//! `salve operator [--namespace NS] [--config FILE] [--journal FILE] [--dry-run]`

use salve::action::kubernetes::Retry;
use salve::config::Config;
use salve::operator::{self, OperatorOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Run the policies of this namespace only (default: every namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// Limits (storm cap, actions at once, dry run) as in the agent's config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also write the journal to this file (a mounted volume); it always goes to stdout.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Decide and journal, change nothing (overrides the config).
    #[arg(long)]
    dry_run: bool,
    /// The operator's own namespace, where its Lease and its guard records
    /// (ConfigMap salve-guard-state) live; default: $POD_NAMESPACE. Without one, guard
    /// state is not kept across restarts.
    #[arg(long)]
    state_namespace: Option<String>,
    /// Act without electing a leader: for exactly one replica.
    #[arg(long)]
    no_leader_election: bool,
    /// How long the leader's lease lasts unrenewed: the longest a failover takes.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: std::time::Duration,
    /// Where /metrics, /healthz and /readyz listen (overrides the config's
    /// `metrics.listen`; `off` for none). In a pod, `0.0.0.0:9847`, so Prometheus and
    /// the kubelet's probes reach it.
    #[arg(long, value_name = "ADDR|off")]
    metrics_listen: Option<String>,
}

fn metrics_listen(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    match text {
        "off" => Ok(None),
        _ => text
            .parse()
            .map(Some)
            .map_err(|_| format!("an address and port, as 0.0.0.0:9847, or off; not \"{text}\"")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match args.config.as_deref().map(|p| Config::load(Some(p))) {
        None => Config::default(),
        Some(Ok(c)) => c,
        Some(Err(diagnostics)) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(1));
        }
    };
    if args.dry_run {
        config.limits.dry_run = true;
    }
    if let Some(text) = &args.metrics_listen {
        match metrics_listen(text) {
            Ok(listen) => config.web.listen = listen,
            Err(why) => {
                eprintln!("--metrics-listen: {why}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    // Two workers: the journal's thread waits on the runtime for each guard record to
    // reach the cluster (journal_tail.rs), so one worker must stay free to drive the
    // I/O while another blocks, as the journal's close does at shutdown.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The service account's token in a pod, else the kubeconfig.
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the Kubernetes API server: {e}"))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            let _ = stop_tx.send(true);
        });
        let identity = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("salve-{}", std::process::id()));
        let cluster = match args.state_namespace.or_else(|| std::env::var("POD_NAMESPACE").ok()) {
            Some(namespace) => Some(operator::ClusterState {
                namespace,
                identity,
                lease: (!args.no_leader_election).then(|| operator::LeaseSettings {
                    duration: args.lease_duration,
                    grace: (args.lease_duration / 3).max(std::time::Duration::from_secs(1)),
                    ..operator::LeaseSettings::default()
                }),
            }),
            None => {
                tracing::warn!("no --state-namespace and no $POD_NAMESPACE: no leader election, and guard state is not kept across restarts");
                None
            }
        };
        let options = OperatorOptions {
            cluster,
            client,
            namespace: args.namespace,
            limits: config.limits,
            journal_path: args.journal,
            rotation: config.rotation,
            journal_sink: None,
            instance: std::env::var("POD_NAME").ok(),
            retry: Retry::default(),
            web: config.web,
        };
        operator::run(options, stop_rx).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_metrics_listener_is_an_address_or_off() {
        let cli = Cli::try_parse_from(["salve", "--metrics-listen", "0.0.0.0:9847"]).unwrap();
        assert_eq!(
            metrics_listen(cli.args.metrics_listen.as_deref().unwrap()),
            Ok(Some("0.0.0.0:9847".parse().unwrap()))
        );
        assert_eq!(metrics_listen("off"), Ok(None));
        assert!(metrics_listen("localhost").unwrap_err().contains("or off"));
    }
}
