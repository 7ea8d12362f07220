//! `p2p-node`: a node of the curriculum's peer-to-peer network, and the commands around it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod folder;
mod host;
mod inbound;
mod runtime;
mod store;
mod up;
mod web;
mod writer;

#[derive(Parser)]
#[command(
    name = "p2p-node",
    version,
    about = "A node of the \"Build a Peer-to-Peer Network\" curriculum's network, in Rust",
    long_about = "A node of the \"Build a Peer-to-Peer Network\" curriculum's network, in Rust.\n\n\
        Nodes find each other by HANDSHAKE, keep a full mesh of WebSocket connections and \
        spread transactions into every node's transactions.json. They speak the curriculum's \
        wire protocol, so they share a network with its JavaScript nodes. With \
        P2P_OVERLAY=on in .env (or `up N --overlay`), a node joins a bounded-degree overlay \
        instead of the full mesh.\n\n\
        Quick start, at the workspace root: `p2p-node up 3`.",
    after_help = "Logs go to stderr; set RUST_LOG=debug for more, RUST_LOG=warn for less."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the node of a node folder (the curriculum's `node index.js`; `cargo node`).
    ///
    /// Reads .env (PORT; optional MY_PUBLIC_KEY, P2P_BIND, P2P_ADVERTISE, P2P_SEND_BUFFER,
    /// P2P_STALL_TIMEOUT, P2P_OVERLAY), known-peers.json and transactions.json, serves on
    /// PORT, dials the known peers and keeps the mesh (or its overlay links) until Ctrl-C
    /// or SIGTERM, appending new transactions to transactions.json.
    ///
    /// P2P_OVERLAY=on: the overlay mode, a bounded-degree overlay (a few links per node)
    /// instead of the full mesh; off, empty or unset: the full mesh. Any other value
    /// stops the node at start.
    Start {
        /// The node folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// If transactions.json does not parse, keep the complete transactions before the
        /// damage (the old file is copied to transactions.json.before-repair) and start.
        #[arg(long)]
        repair: bool,
        /// Run in the overlay mode, as P2P_OVERLAY=on in .env would (`up --overlay` passes
        /// it to every node); refused if .env says P2P_OVERLAY=off.
        #[arg(long)]
        overlay: bool,
    },
    /// Copy node-1 to the lowest free node-N (N ≥ 2) with PORT=4000+N (`cargo clone-node`).
    Clone {
        /// The workspace root holding node-1.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Delete every node-<digits> folder except node-1 (`cargo delete-nodes`).
    DeleteNodes {
        /// The workspace root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Make a transaction and send it to this folder's running node (`cargo add-transaction`).
    ///
    /// The transaction is {fromAddress: null, toAddress: MY_PUBLIC_KEY (null in clones),
    /// amount: 1..=100, timeStamp, hash}, hash being the SHA-256 of the four values.
    AddTransaction {
        /// The node folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The amount, instead of a random one from 1 to 100.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        amount: Option<u64>,
    },
    /// Bring up a local network: clone node folders up to N, start them all, show the
    /// mesh forming and then a live table of the nodes until Ctrl-C; with --web, serve the
    /// browser page that shows it live.
    Up {
        /// How many nodes: 1 to 100 in the full mesh (every node connects to every other,
        /// so N nodes hold N * (N - 1) connections), 1 to 250 with --overlay (a few links
        /// per node). A clone node-N listens on port 4000 + N.
        #[arg(default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=i64::from(up::MAX_OVERLAY_NODES)))]
        nodes: u32,
        /// The workspace root holding node-1.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Also serve the browser page (wasm-demo/dist) on http://127.0.0.1:PORT/ (8080 when
        /// PORT is left out; 1024 to 65535, so not 0) and print the address that shows this
        /// network live.
        ///
        /// The page is built first with wasm-demo/build.sh if wasm-demo/dist/index.html is
        /// missing. The port is bound before any node starts: if it is in use, nothing
        /// starts. Only 127.0.0.1 is served. Give the node count before the option
        /// (`up 3 --web`), since `up --web 3` reads 3 as the port.
        #[arg(
            long,
            value_name = "PORT",
            num_args = 0..=1,
            default_missing_value = web::DEFAULT_PORT,
            value_parser = web::parse_port,
        )]
        web: Option<u16>,
        /// Start every node in the overlay mode (`start --overlay`), as if each .env said
        /// P2P_OVERLAY=on; the folders are left as they are.
        ///
        /// The table then shows each node's active view (the peers it is linked to) and
        /// whether the overlay is connected. A folder whose .env says P2P_OVERLAY=off
        /// stops `up` before any node starts. Without --overlay, each node runs as its
        /// .env says.
        #[arg(long)]
        overlay: bool,
    },
    /// Show every node folder's node: running or not, its connections and pool size;
    /// for nodes in the overlay mode, its active view and whether the overlay is connected.
    Status {
        /// The workspace root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Cmd) -> Result<(), String> {
    match command {
        Cmd::Start {
            dir,
            repair,
            overlay,
        } => {
            // A journal left behind means the node did not stop cleanly and holds its
            // whole pool: a pool file damaged meanwhile (a power loss) is rebuilt from it.
            let repair = repair || store::journal_left(&dir);
            // Checked before the folder is read: a repair would change it, and a refused
            // start leaves the folder as it was.
            let env = folder::read_env(&dir).map_err(|e| e.to_string())?;
            let overlay = folder::overlay_mode(&dir, &env, overlay).map_err(|e| e.to_string())?;
            let folder = folder::read_folder(&dir, repair).map_err(|e| e.to_string())?;
            host::run(folder, overlay).map_err(|e| e.to_string())
        }
        Cmd::Clone { root } => {
            let (n, _) = folder::clone_node(&root).map_err(|e| e.to_string())?;
            println!("created node-{n} (PORT={})", 4000 + n);
            Ok(())
        }
        Cmd::DeleteNodes { root } => {
            let deleted = folder::delete_nodes(&root).map_err(|e| e.to_string())?;
            if deleted.is_empty() {
                println!("no node folders to delete (node-1 is kept)");
            } else {
                println!("deleted {}", deleted.join(", "));
            }
            Ok(())
        }
        Cmd::AddTransaction { dir, amount } => add_transaction(&dir, amount),
        Cmd::Up {
            nodes,
            root,
            web,
            overlay,
        } => up::up(&root, nodes, web, overlay).map_err(|e| e.to_string()),
        Cmd::Status { root, json } => up::status(&root, json).map_err(|e| e.to_string()),
    }
}

fn add_transaction(dir: &std::path::Path, amount: Option<u64>) -> Result<(), String> {
    let env = folder::read_env(dir).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("the clock is before 1970: {e}"))?;
    let time_stamp = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    // Not the protocol's business: any number from 1 to 100 will do.
    let amount = amount.unwrap_or_else(|| u64::from(now.subsec_nanos()) % 100 + 1);
    let transaction = p2p_core::Transaction::create(env.public_key.as_deref(), amount, time_stamp);
    let address = env.local_address();
    runtime::block_on(client::send_transaction(&address, &transaction))
        .map_err(|e| format!("{e} (start it with `cargo node` in {})", dir.display()))?;
    println!(
        "sent transaction {} to {address}: amount {amount} to {}",
        transaction.hash(),
        env.public_key
            .as_deref()
            .unwrap_or("null (no MY_PUBLIC_KEY in .env)")
    );
    Ok(())
}
