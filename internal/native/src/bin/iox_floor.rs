//! iox_floor: the native floor of the round-trip benchmark.
//!
//! Two processes play ping-pong with 64-byte `[u8]` messages over two
//! publish-subscribe services of the iceoryx2 crate (the same release and service
//! flavour, `ipc_threadsafe`, that libiox_native uses), busy-polling `receive()`.
//! It is what a round trip costs without Go, purego or the C ABI in the way.
//!
//! Usage:
//!
//! ```text
//! iox_floor ping PREFIX ROOT ITERATIONS
//! ```
//!
//! `ping` creates the services in the isolated configuration given by PREFIX (the
//! shared-memory prefix, no '/') and ROOT (an absolute folder for iceoryx2's
//! files), starts `iox_floor pong PREFIX ROOT` as its partner, runs a short warm-up
//! and then ITERATIONS timed round trips, and prints the mean nanoseconds per round
//! trip as a single number on stdout. At the end it stops its partner and removes
//! everything of the configuration: `/dev/shm/PREFIX*` (including the node-counter
//! segment iceoryx2 keeps per prefix) and ROOT. Use a prefix no one else uses and a
//! ROOT that does not exist yet.
//!
//! Exit status: 0 on success, 1 on failure (with a message on stderr), 2 on usage
//! errors.

use std::process::{Child, Command, ExitCode, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;

type Svc = ipc_threadsafe::Service;
type Factory = PubSubFactory<Svc, [u8], ()>;

/// Bytes per message.
const PAYLOAD: usize = 64;
/// Untimed round trips before the measurement.
const WARMUP: u64 = 2_000;
/// Service carrying ping → pong.
const PING: &str = "iox_floor/ping";
/// Service carrying pong → ping.
const PONG: &str = "iox_floor/pong";
/// How long either side waits for its partner before giving up.
const PATIENCE: Duration = Duration::from_secs(10);

type Result<T> = std::result::Result<T, String>;

fn usage() -> ExitCode {
    eprintln!("usage: iox_floor ping PREFIX ROOT ITERATIONS");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("ping") if args.len() == 5 => {
            let Ok(iterations) = args[4].parse::<u64>() else {
                return usage();
            };
            if iterations == 0 {
                return usage();
            }
            ping(&args[2], &args[3], iterations).map(|ns| println!("{ns:.1}"))
        }
        Some("pong") if args.len() == 4 => pong(&args[2], &args[3]),
        _ => return usage(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iox_floor {}: {e}", args[1]);
            ExitCode::FAILURE
        }
    }
}

/// Checks the isolation arguments so that the final cleanup can only remove what
/// this program's configuration owns.
fn check_isolation(prefix: &str, root: &str) -> Result<()> {
    if prefix.is_empty() || prefix.contains('/') {
        return Err(format!("prefix {prefix:?} must be non-empty and contain no '/'"));
    }
    let p = std::path::Path::new(root);
    if !p.is_absolute() || p.parent().is_none() {
        return Err(format!("root {root:?} must be an absolute folder other than /"));
    }
    Ok(())
}

/// ping removes ROOT at the end, so it insists on a folder that does not exist yet.
fn check_fresh_root(root: &str) -> Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("root {root:?}: {e}")),
        Ok(_) => Err(format!("root {root:?} exists already; give a fresh folder, iox_floor removes it at the end")),
    }
}

fn node(prefix: &str, root: &str) -> Result<Node<Svc>> {
    check_isolation(prefix, root)?;
    let root = if root.ends_with('/') { root.to_string() } else { format!("{root}/") };
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| format!("prefix: {e:?}"))?;
    let path = Path::new(root.as_bytes()).map_err(|e| format!("root: {e:?}"))?;
    config.global.set_root_path(&path);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .config(&config)
        .create::<Svc>()
        .map_err(|e| format!("create node: {e:?}"))
}

/// Creates (`create`) or opens the service `name`: one publisher, one subscriber,
/// a buffer of one message that the newest message overwrites.
fn service(node: &Node<Svc>, name: &str, create: bool) -> Result<Factory> {
    let sn = ServiceName::new(name).map_err(|e| format!("service name {name}: {e:?}"))?;
    let b = node
        .service_builder(&sn)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .subscriber_max_buffer_size(1)
        .history_size(0)
        .enable_safe_overflow(true);
    if create {
        b.create().map_err(|e| format!("create {name}: {e:?}"))
    } else {
        b.open().map_err(|e| format!("open {name}: {e:?}"))
    }
}

fn publisher(f: &Factory) -> Result<Publisher<Svc, [u8], ()>> {
    f.publisher_builder()
        .initial_max_slice_len(PAYLOAD)
        .create()
        .map_err(|e| format!("create publisher: {e:?}"))
}

fn subscriber(f: &Factory) -> Result<Subscriber<Svc, [u8], ()>> {
    f.subscriber_builder().create().map_err(|e| format!("create subscriber: {e:?}"))
}

fn send(p: &Publisher<Svc, [u8], ()>, data: &[u8]) -> Result<()> {
    let sample = p
        .loan_slice_uninit(data.len())
        .map_err(|e| format!("loan: {e:?}"))?
        .write_from_slice(data);
    sample.send().map_err(|e| format!("send: {e:?}"))?;
    Ok(())
}

fn ping(prefix: &str, root: &str, iterations: u64) -> Result<f64> {
    set_log_level(LogLevel::Error);
    check_isolation(prefix, root)?;
    check_fresh_root(root)?;
    let outcome = ping_session(prefix, root, iterations);
    let cleaned = remove_isolation(prefix, root);
    let ns = outcome?;
    cleaned?;
    Ok(ns)
}

/// Everything ping owns in iceoryx2 lives in this function, so that it is all
/// released before the files of the configuration are removed.
fn ping_session(prefix: &str, root: &str, iterations: u64) -> Result<f64> {
    let node = node(prefix, root)?;
    let to_pong = service(&node, PING, true)?;
    let from_pong = service(&node, PONG, true)?;
    let tx = publisher(&to_pong)?;
    let rx = subscriber(&from_pong)?;

    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut partner = Command::new(exe)
        .args(["pong", prefix, root])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("start pong: {e}"))?;

    let measured = (|| {
        let deadline = Instant::now() + PATIENCE;
        while to_pong.dynamic_config().number_of_subscribers() == 0
            || from_pong.dynamic_config().number_of_publishers() == 0
        {
            if let Ok(Some(status)) = partner.try_wait() {
                return Err(format!("pong exited early: {status}"));
            }
            if Instant::now() > deadline {
                return Err("pong did not connect".to_string());
            }
            sleep(Duration::from_millis(1));
        }
        let msg: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7) as u8).collect();
        for _ in 0..WARMUP {
            round_trip(&tx, &rx, &msg)?;
        }
        let start = Instant::now();
        for _ in 0..iterations {
            round_trip(&tx, &rx, &msg)?;
        }
        Ok(start.elapsed().as_nanos() as f64 / iterations as f64)
    })();

    // An empty message tells pong to stop; it also stops on its own after PATIENCE.
    let stopped = send(&tx, &[]);
    let exited = wait_or_kill(&mut partner);
    let ns = measured?;
    stopped?;
    exited?;
    Ok(ns)
}

fn round_trip(tx: &Publisher<Svc, [u8], ()>, rx: &Subscriber<Svc, [u8], ()>, msg: &[u8]) -> Result<()> {
    send(tx, msg)?;
    let mut polls: u64 = 0;
    let mut since: Option<Instant> = None;
    loop {
        if let Some(reply) = rx.receive().map_err(|e| format!("receive: {e:?}"))? {
            if reply.payload().len() != msg.len() {
                return Err(format!("reply of {} bytes, want {}", reply.payload().len(), msg.len()));
            }
            return Ok(());
        }
        polls += 1;
        if polls % (1 << 20) == 0 {
            let t = *since.get_or_insert_with(Instant::now);
            if t.elapsed() > PATIENCE {
                return Err("no reply from pong".to_string());
            }
        }
    }
}

fn wait_or_kill(child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("pong failed: {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("pong did not stop".to_string());
            }
            Ok(None) => sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("wait for pong: {e}")),
        }
    }
}

/// Echoes every message back until an empty one arrives (or nothing arrives for
/// PATIENCE).
fn pong(prefix: &str, root: &str) -> Result<()> {
    set_log_level(LogLevel::Error);
    let node = node(prefix, root)?;
    let from_ping = service(&node, PING, false)?;
    let to_ping = service(&node, PONG, false)?;
    let rx = subscriber(&from_ping)?;
    let tx = publisher(&to_ping)?;
    let mut polls: u64 = 0;
    let mut quiet_since: Option<Instant> = None;
    loop {
        match rx.receive().map_err(|e| format!("receive: {e:?}"))? {
            Some(msg) if msg.payload().is_empty() => return Ok(()),
            Some(msg) => {
                send(&tx, msg.payload())?;
                polls = 0;
                quiet_since = None;
            }
            None => {
                // The clock is read only every 2^20 empty polls, off the hot path.
                polls += 1;
                if polls % (1 << 20) == 0 {
                    let t = *quiet_since.get_or_insert_with(Instant::now);
                    if t.elapsed() > PATIENCE {
                        return Err("ping went quiet".to_string());
                    }
                }
            }
        }
    }
}

/// Removes the configuration's shared-memory objects and root folder.
fn remove_isolation(prefix: &str, root: &str) -> Result<()> {
    let mut first: Option<String> = None;
    let entries = std::fs::read_dir("/dev/shm").map_err(|e| format!("read /dev/shm: {e}"))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                first.get_or_insert(format!("remove {}: {e}", entry.path().display()));
            }
        }
    }
    match std::fs::remove_dir_all(root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            first.get_or_insert(format!("remove {root}: {e}"));
        }
        _ => {}
    }
    first.map_or(Ok(()), Err)
}
