//! Node folders: reading one (`.env`, `known-peers.json`, `transactions.json`), and
//! cloning and deleting them at the workspace root.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_core::{parse_pool, Address, PoolFileError, Transaction};

/// Name of the environment file in a node folder.
pub(crate) const ENV_FILE: &str = ".env";
/// Name of the known-peers file in a node folder.
pub(crate) const KNOWN_PEERS_FILE: &str = "known-peers.json";
/// Name of the pool file in a node folder.
pub(crate) const POOL_FILE: &str = "transactions.json";

/// What a node folder's `.env` says.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// `PORT`: the port the node serves on.
    pub(crate) port: u16,
    /// `MY_PUBLIC_KEY`: the key transactions made here are sent to, if set.
    pub(crate) public_key: Option<String>,
    /// `P2P_BIND`: the IP address to serve on (all interfaces when unset).
    pub(crate) bind: Option<IpAddr>,
    /// `P2P_ADVERTISE`: the address other machines reach this node at.
    pub(crate) advertise: Option<Address>,
    /// `P2P_SEND_BUFFER`: bytes queued for one connection before the node stops
    /// producing more for it (`Limits::max_send_buffer`).
    pub(crate) send_buffer: Option<usize>,
    /// `P2P_STALL_TIMEOUT`: seconds a connection may leave queued bytes unread before it
    /// is closed (`Limits::stall_timeout`).
    pub(crate) stall_timeout: Option<Duration>,
    /// `P2P_OVERLAY`: `Some(true)` for `on` (join the bounded-degree overlay instead of
    /// the full mesh), `Some(false)` for `off`, `None` when unset or empty (off).
    pub(crate) overlay: Option<bool>,
}

/// The range `P2P_SEND_BUFFER` may take: at least one large frame's worth, at most 1 GiB.
const SEND_BUFFER_RANGE: std::ops::RangeInclusive<usize> = (64 << 10)..=(1 << 30);
/// The range `P2P_STALL_TIMEOUT` may take, in seconds.
const STALL_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

impl Env {
    /// Where a client on this machine reaches the node: its `P2P_BIND` address when that
    /// is one specific IP, else `ws://localhost:PORT`.
    pub(crate) fn local_address(&self) -> Address {
        let specific = self.bind.filter(|ip| !ip.is_unspecified());
        let text = match specific {
            Some(IpAddr::V6(ip)) => format!("ws://[{ip}]:{}", self.port),
            Some(IpAddr::V4(ip)) => format!("ws://{ip}:{}", self.port),
            None => return Address::localhost(self.port),
        };
        text.parse()
            .unwrap_or_else(|_| Address::localhost(self.port))
    }
}

/// A node folder, read.
#[derive(Debug)]
pub(crate) struct NodeFolder {
    pub(crate) dir: PathBuf,
    pub(crate) env: Env,
    pub(crate) known_peers: Vec<Address>,
    pub(crate) pool: Vec<Transaction>,
    /// The pool file's text as read (empty when the file did not exist).
    pub(crate) pool_text: Option<String>,
}

/// Why a node folder could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FolderError {
    /// There is no `.env`: probably not a node folder.
    #[error("no {ENV_FILE} in {0}: run this in a node folder (node-1, or a clone made by `p2p-node clone`)")]
    NoEnv(PathBuf),
    /// A file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// `.env` is not `KEY=value` lines.
    #[error("{path}: {message}")]
    EnvSyntax {
        /// The file.
        path: PathBuf,
        /// What dotenvy said.
        message: String,
    },
    /// `.env` has no `PORT`.
    #[error("{0} sets no PORT (add a line like PORT=4001)")]
    NoPort(PathBuf),
    /// `PORT` is not a port number.
    #[error("{path}: PORT={value:?} is not a port number (1-65535)")]
    BadPort {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
    },
    /// `P2P_BIND` is not an IP address.
    #[error("{path}: P2P_BIND={value:?} is not an IP address (e.g. 0.0.0.0 or 192.0.2.1)")]
    BadBind {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
    },
    /// `P2P_ADVERTISE` is not a `ws://host:port` address.
    #[error("{path}: P2P_ADVERTISE={value:?} is not a ws://host:port address: {error}")]
    BadAdvertise {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
        /// Why.
        error: p2p_core::AddressError,
    },
    /// `P2P_SEND_BUFFER` is not a number of bytes in range.
    #[error("{path}: P2P_SEND_BUFFER={value:?} is not a number of bytes from 65536 to 1073741824 (e.g. 4194304 for 4 MiB)")]
    BadSendBuffer {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
    },
    /// `P2P_STALL_TIMEOUT` is not a number of seconds in range.
    #[error("{path}: P2P_STALL_TIMEOUT={value:?} is not a number of seconds from 1 to 3600")]
    BadStallTimeout {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
    },
    /// `P2P_OVERLAY` is neither `on` nor `off`.
    #[error("{path}: P2P_OVERLAY={value:?} is not on or off (on: the overlay mode; off, empty or unset: the full mesh)")]
    BadOverlay {
        /// The file.
        path: PathBuf,
        /// The value found.
        value: String,
    },
    /// `start --overlay` (as `up --overlay` runs it) in a folder whose `.env` says
    /// `P2P_OVERLAY=off`: two explicit words that contradict each other.
    #[error("{0} sets P2P_OVERLAY=off, but --overlay asks for the overlay mode: set it to on, or remove the line")]
    OverlayOff(PathBuf),
    /// `P2P_SEND_QUEUE` (frames) is gone; the send buffer is counted in bytes now.
    #[error("{0}: P2P_SEND_QUEUE (frames) was replaced by P2P_SEND_BUFFER (bytes, 4194304 by default); remove it or set P2P_SEND_BUFFER")]
    SendQueueReplaced(PathBuf),
    /// `known-peers.json` is not a JSON array of `ws://` addresses.
    #[error("{path}: {message}")]
    KnownPeers {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `transactions.json` is not a JSON array of transactions; it is left untouched.
    #[error("{path}: {error} (the file was left as it is)")]
    Pool {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        error: PoolFileError,
    },
}

fn read(path: &Path) -> Result<String, FolderError> {
    fs::read_to_string(path).map_err(|source| FolderError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a node folder's `.env`.
pub(crate) fn read_env(dir: &Path) -> Result<Env, FolderError> {
    let path = dir.join(ENV_FILE);
    if !path.exists() {
        return Err(FolderError::NoEnv(dir.to_owned()));
    }
    let iter = dotenvy::from_path_iter(&path).map_err(|e| match e {
        dotenvy::Error::Io(source) => FolderError::Read {
            path: path.clone(),
            source,
        },
        other => FolderError::EnvSyntax {
            path: path.clone(),
            message: other.to_string(),
        },
    })?;
    let (mut port, mut public_key, mut bind, mut advertise) = (None, None, None, None);
    let (mut send_buffer, mut stall_timeout, mut send_queue) = (None, None, false);
    let mut overlay = None;
    for item in iter {
        let (key, value) = item.map_err(|e| FolderError::EnvSyntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
        match key.as_str() {
            "PORT" => port = Some(value),
            "MY_PUBLIC_KEY" if !value.is_empty() => public_key = Some(value),
            "P2P_BIND" if !value.is_empty() => bind = Some(value),
            "P2P_ADVERTISE" if !value.is_empty() => advertise = Some(value),
            "P2P_SEND_BUFFER" if !value.is_empty() => send_buffer = Some(value),
            "P2P_STALL_TIMEOUT" if !value.is_empty() => stall_timeout = Some(value),
            "P2P_OVERLAY" if !value.is_empty() => overlay = Some(value),
            "P2P_SEND_QUEUE" => send_queue = true,
            _ => {}
        }
    }
    let value = port.ok_or_else(|| FolderError::NoPort(path.clone()))?;
    let port = match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => port,
        _ => return Err(FolderError::BadPort { path, value }),
    };
    let bind = bind
        .map(|value| {
            value
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| FolderError::BadBind {
                    path: path.clone(),
                    value,
                })
        })
        .transpose()?;
    let advertise = advertise
        .map(|value| {
            value
                .trim()
                .parse::<Address>()
                .map_err(|error| FolderError::BadAdvertise {
                    path: path.clone(),
                    value,
                    error,
                })
        })
        .transpose()?;
    if send_queue {
        return Err(FolderError::SendQueueReplaced(path));
    }
    let send_buffer = match send_buffer {
        None => None,
        Some(value) => match value.trim().parse::<usize>() {
            Ok(n) if SEND_BUFFER_RANGE.contains(&n) => Some(n),
            _ => return Err(FolderError::BadSendBuffer { path, value }),
        },
    };
    let stall_timeout = match stall_timeout {
        None => None,
        Some(value) => match value.trim().parse::<u64>() {
            Ok(n) if STALL_TIMEOUT_RANGE.contains(&n) => Some(Duration::from_secs(n)),
            _ => return Err(FolderError::BadStallTimeout { path, value }),
        },
    };
    // Only the two words the docs name: a `yes` or `1` that silently meant something
    // would hide a typo such as `of` behind a node in the wrong topology.
    let overlay = match overlay {
        None => None,
        Some(value) => match value.trim() {
            "on" => Some(true),
            "off" => Some(false),
            _ => return Err(FolderError::BadOverlay { path, value }),
        },
    };
    Ok(Env {
        port,
        public_key,
        bind,
        advertise,
        send_buffer,
        stall_timeout,
        overlay,
    })
}

/// Whether the node of the folder `dir` (whose `.env` says `env`) runs in overlay mode:
/// `P2P_OVERLAY=on`, or `forced` (`start --overlay`, which `up --overlay` passes to every
/// node). A folder that says `P2P_OVERLAY=off` is refused when forced rather than
/// overruled: one of the two words is a mistake, and the user knows which.
pub(crate) fn overlay_mode(dir: &Path, env: &Env, forced: bool) -> Result<bool, FolderError> {
    match (env.overlay, forced) {
        (Some(false), true) => Err(FolderError::OverlayOff(dir.join(ENV_FILE))),
        (said, forced) => Ok(forced || said == Some(true)),
    }
}

/// Reads a whole node folder. A missing `transactions.json` is an empty pool. With
/// `repair`, a pool file that does not parse is copied aside and read up to its first
/// incomplete or invalid transaction.
pub(crate) fn read_folder(dir: &Path, repair: bool) -> Result<NodeFolder, FolderError> {
    let env = read_env(dir)?;
    let peers_path = dir.join(KNOWN_PEERS_FILE);
    let peers_text = read(&peers_path)?;
    let entries: Vec<String> =
        serde_json::from_str(&peers_text).map_err(|e| FolderError::KnownPeers {
            path: peers_path.clone(),
            message: format!("not a JSON array of addresses: {e}"),
        })?;
    let known_peers = entries
        .iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse::<Address>()
                .map_err(|error| FolderError::KnownPeers {
                    path: peers_path.clone(),
                    message: format!(
                        "entry {index} ({text:?}) is not a ws://host:port address: {error}"
                    ),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pool_path = dir.join(POOL_FILE);
    let (pool, pool_text) = if pool_path.exists() {
        let text = read(&pool_path)?;
        match parse_pool(&text) {
            Ok(pool) => (pool, Some(text)),
            Err(error) if !repair => {
                return Err(FolderError::Pool {
                    path: pool_path,
                    error,
                })
            }
            Err(error) => {
                let backup = pool_path.with_file_name(format!("{POOL_FILE}.before-repair"));
                fs::copy(&pool_path, &backup).map_err(|source| FolderError::Read {
                    path: backup.clone(),
                    source,
                })?;
                let pool = salvage_pool(&text);
                log::warn!(
                    "{}: {error}; repaired: kept the {} complete transactions before it (the old file is in {})",
                    pool_path.display(),
                    pool.len(),
                    backup.display()
                );
                // `None`: the store writes the repaired pool file anew.
                (pool, None)
            }
        }
    } else {
        (Vec::new(), None)
    };
    Ok(NodeFolder {
        dir: dir.to_owned(),
        env,
        known_peers,
        pool,
        pool_text,
    })
}

/// Every complete, valid transaction of a damaged pool file, up to the first that is not.
pub(crate) fn salvage_pool(text: &str) -> Vec<Transaction> {
    let mut pool = Vec::new();
    let Some(start) = text.find('[') else {
        return pool;
    };
    let mut rest = &text[start + 1..];
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        let mut stream =
            serde_json::Deserializer::from_str(rest).into_iter::<&serde_json::value::RawValue>();
        match stream.next() {
            Some(Ok(raw)) => match Transaction::from_raw(raw) {
                Ok(tx) => pool.push(tx),
                Err(_) => return pool,
            },
            _ => return pool,
        }
        rest = &rest[stream.byte_offset()..];
    }
}

/// Why a clone or a delete failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RootError {
    /// The root has no `node-1` to clone.
    #[error("no node-1 folder in {0}: run this at the workspace root")]
    NoTemplate(PathBuf),
    /// Every port up to 65535 is taken by a folder.
    #[error("no free node number left in {0}")]
    Full(PathBuf),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RootError + '_ {
    move |source| RootError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The number `N` of a `node-<digits>` folder name (`node-1`, `node-12`, `node-007`;
/// not `node-x` or `node-1-backup`).
pub(crate) fn node_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("node-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u32::MAX))
}

/// The `node-<digits>` folders under `root`, by number.
pub(crate) fn node_folders(root: &Path) -> Result<Vec<(u32, PathBuf)>, RootError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root).map_err(io_at(root))? {
        let entry = entry.map_err(io_at(root))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(node_number) {
            if entry.file_type().map_err(io_at(root))?.is_dir() {
                found.push((n, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copies `root/node-1` to `root/node-N` for the lowest free `N >= 2`, whose `.env`
/// holds only `PORT=4000+N`. Returns `N` and the new folder.
pub(crate) fn clone_node(root: &Path) -> Result<(u32, PathBuf), RootError> {
    let template = root.join("node-1");
    if !template.is_dir() {
        return Err(RootError::NoTemplate(root.to_owned()));
    }
    let n = (2..=(u32::from(u16::MAX) - 4000))
        .find(|n| !root.join(format!("node-{n}")).exists())
        .ok_or_else(|| RootError::Full(root.to_owned()))?;
    let target = root.join(format!("node-{n}"));
    // Build it beside and rename, so a half-made clone is never seen as a node.
    let staging = root.join(format!(".node-{n}.partial"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_at(&staging))?;
    }
    fs::create_dir(&staging).map_err(io_at(&staging))?;
    for name in [KNOWN_PEERS_FILE, POOL_FILE] {
        let from = template.join(name);
        if from.exists() {
            fs::copy(&from, staging.join(name)).map_err(io_at(&from))?;
        }
    }
    let env = staging.join(ENV_FILE);
    fs::write(&env, format!("PORT={}\n", 4000 + n)).map_err(io_at(&env))?;
    fs::rename(&staging, &target).map_err(io_at(&target))?;
    Ok((n, target))
}

/// Removes every `node-<digits>` folder under `root` except `node-1`; returns their names.
pub(crate) fn delete_nodes(root: &Path) -> Result<Vec<String>, RootError> {
    let mut deleted = Vec::new();
    for (_, path) in node_folders(root)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name.filter(|name| name != "node-1") else {
            continue;
        };
        fs::remove_dir_all(&path).map_err(io_at(&path))?;
        deleted.push(name);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_keeps_every_complete_transaction_before_the_damage() {
        let a = Transaction::create(Some("k"), 1, 10);
        let b = Transaction::create(None, 2, 20);
        let whole = p2p_core::render_pool([&a, &b]);
        let cut = &whole[..whole.len() - 30];
        assert_eq!(salvage_pool(cut), vec![a.clone()]);
        assert_eq!(salvage_pool(&whole), vec![a.clone(), b]);
        assert_eq!(salvage_pool("garbage"), vec![]);
        let bad_entry = format!("[{}, 7, {}]", a.body(), a.body());
        assert_eq!(salvage_pool(&bad_entry), vec![a]);
    }

    /// `.env` of a scratch folder holding `PORT=4001` and `extra`, read.
    fn env_with(extra: &str) -> (tempfile::TempDir, Result<Env, FolderError>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        fs::write(dir.path().join(ENV_FILE), format!("PORT=4001\n{extra}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let env = read_env(dir.path());
        (dir, env)
    }

    #[test]
    fn p2p_overlay_is_on_off_or_left_out() {
        for (line, expected) in [
            ("P2P_OVERLAY=on", Some(true)),
            ("P2P_OVERLAY=off", Some(false)),
            ("P2P_OVERLAY=", None),
            ("", None),
        ] {
            let (_dir, env) = env_with(line);
            let env = env.unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(env.overlay, expected, "{line}");
        }
    }

    #[test]
    fn any_other_p2p_overlay_is_refused_in_one_line_naming_file_setting_and_value() {
        for value in ["yes", "ON", "1", "true", "of"] {
            let (dir, env) = env_with(&format!("P2P_OVERLAY={value}"));
            let message = match env {
                Err(e @ FolderError::BadOverlay { .. }) => e.to_string(),
                other => panic!("P2P_OVERLAY={value}: {other:?}"),
            };
            assert!(!message.contains('\n'), "{message}");
            let file = dir.path().join(ENV_FILE);
            let wanted = format!("P2P_OVERLAY={value:?} is not on or off");
            assert!(message.contains(&*file.to_string_lossy()), "{message}");
            assert!(message.contains(&wanted), "{message}");
        }
    }

    #[test]
    fn overlay_mode_is_the_setting_or_forced_but_never_over_an_explicit_off() {
        let dir = Path::new("node-2");
        for (line, forced, expected) in [
            ("", false, Some(false)),
            ("", true, Some(true)),
            ("P2P_OVERLAY=on", false, Some(true)),
            ("P2P_OVERLAY=on", true, Some(true)),
            ("P2P_OVERLAY=off", false, Some(false)),
            ("P2P_OVERLAY=off", true, None),
        ] {
            let (_scratch, env) = env_with(line);
            let env = env.unwrap_or_else(|e| panic!("{line}: {e}"));
            match (overlay_mode(dir, &env, forced), expected) {
                (Ok(mode), Some(expected)) => assert_eq!(mode, expected, "{line} {forced}"),
                (Err(e @ FolderError::OverlayOff(_)), None) => {
                    assert!(
                        e.to_string()
                            .starts_with("node-2/.env sets P2P_OVERLAY=off"),
                        "{e}"
                    )
                }
                (other, _) => panic!("{line}, forced {forced}: {other:?}"),
            }
        }
    }

    #[test]
    fn node_numbers_are_plain_decimal_after_node_dash() {
        assert_eq!(node_number("node-1"), Some(1));
        assert_eq!(node_number("node-42"), Some(42));
        assert_eq!(node_number("node-007"), Some(7));
        for name in ["node-", "node-x", "node-1-backup", "nodes-2", "node-+2"] {
            assert_eq!(node_number(name), None, "{name}");
        }
    }
}
