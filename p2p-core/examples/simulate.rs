//! Runs one simulated network from the command line and prints its summary as one JSON
//! line. The run itself is [`p2p_core::sim::Scenario`]; this only reads arguments.
//!
//! ```text
//! cargo run --release -p p2p-core --example simulate -- --nodes 100 --transactions 100 --seed 1
//! ```

use std::process::ExitCode;
use std::time::Instant;

use std::time::Duration;

use p2p_core::sim::{Latency, Scenario};
use p2p_core::Overlay;

const USAGE: &str = "\
usage: simulate [--nodes N] [--transactions T] [--seed S] [--latency-ms MIN,MAX]
                [--churn K] [--partition] [--check] [--log LINES]
                [--overlay] [--crash-fraction F] [--all-send] [--settle-ms MS]

  --nodes N            nodes in the network, ports 4001 on (default 10)
  --transactions T     transactions entering at random nodes (default 10)
  --seed S             the one seed of the run (default 1)
  --latency-ms MIN,MAX one-way latency range in ms (default 1,20)
  --churn K            K random nodes crash and restart during the traffic (default 0)
  --partition          the network splits in two for a while during the traffic
  --check              check every HANDSHAKE sent and report broken invariants
  --log LINES          print the last LINES lines of the run's story to stderr
  --overlay            every node in overlay mode (HyParView and Plumtree, default
                       sizes) instead of the full mesh; the run ends once converged
                       (every running node holds every transaction, the overlay is
                       connected) and 5 s of virtual time more
  --crash-fraction F   after the settling time, this share of the nodes (0 to 1, chosen
                       by the seed) crash at once for good, before the transactions;
                       delivered then counts among the survivors, and reconnect_ms
                       (overlay mode) says when their overlay was connected again
  --all-send           every running node makes one transaction at the same instant,
                       after the settling time (instead of --transactions)
  --settle-ms MS       virtual time between the nodes' starts and the traffic (default
                       0, or 10000 with --crash-fraction or --all-send)

Prints one JSON line: nodes, seed, converged, mesh_ms, delivered, tx_frames_per_tx,
frames_total, virtual_ms, rmr (relative message redundancy: copies of a transaction
delivered per node reached, minus one), ldh_max (the most hops a transaction took),
active_view_max (the most peers a node holds dials to), connections_per_node (open
connection ends per node; in overlay mode the longest active view), reconnect_ms
(with --crash-fraction in overlay mode), wall_ms.";

struct Args {
    scenario: Scenario,
    log_lines: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut scenario = Scenario::new(10, 10, 1);
    let mut log_lines = 0;
    let mut crash_fraction = 0.0;
    let mut settle = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => scenario.nodes = number(&flag, &value()?)?,
            "--transactions" => scenario.transactions = number(&flag, &value()?)?,
            "--seed" => scenario.seed = number(&flag, &value()?)?,
            "--churn" => scenario.churn = number(&flag, &value()?)?,
            "--log" => log_lines = number(&flag, &value()?)?,
            "--latency-ms" => {
                let text = value()?;
                let (min, max) = text
                    .split_once(',')
                    .ok_or_else(|| format!("--latency-ms wants MIN,MAX, not {text:?}"))?;
                let (min, max): (u64, u64) = (number(&flag, min)?, number(&flag, max)?);
                if min > max {
                    return Err(format!("--latency-ms: MIN {min} is over MAX {max}"));
                }
                scenario.latency = Latency::from_millis(min, max);
            }
            "--crash-fraction" => {
                let text = value()?;
                crash_fraction = text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .ok_or_else(|| format!("{flag}: {text:?} is not a number from 0 to 1"))?;
            }
            "--settle-ms" => settle = Some(Duration::from_millis(number(&flag, &value()?)?)),
            "--overlay" => scenario.overlay = Some(Overlay::default()),
            "--all-send" => scenario.all_send = true,
            "--partition" => scenario.partition = true,
            "--check" => scenario.check_frames = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if scenario.nodes > usize::from(u16::MAX - 4001) {
        return Err(format!(
            "--nodes {} is more than the ports there are",
            scenario.nodes
        ));
    }
    if log_lines > 0 {
        scenario.log_capacity = log_lines;
    }
    scenario.crash_at_once = (crash_fraction * scenario.nodes as f64).round() as usize;
    let measured_apart = scenario.crash_at_once > 0 || scenario.all_send;
    scenario.settle = settle.unwrap_or(if measured_apart {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    });
    Ok(Some(Args {
        scenario,
        log_lines,
    }))
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag}: {text:?} is not a whole number in range"))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("simulate: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (sim, summary) = match args.scenario.run() {
        Ok(run) => run,
        Err(error) => {
            eprintln!("simulate: {error}");
            return ExitCode::FAILURE;
        }
    };
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if args.log_lines > 0 {
        for line in sim.log() {
            eprintln!("{line}");
        }
    }
    println!("{}", summary.to_json_with_wall_ms(wall_ms));
    let violations = sim.check();
    if !violations.is_empty() {
        for violation in violations.iter().take(20) {
            eprintln!("{violation}");
        }
        eprintln!("simulate: {} broken invariants", sim.violation_count());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
