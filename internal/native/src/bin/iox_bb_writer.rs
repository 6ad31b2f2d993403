//! iox_bb_writer: a Rust blackboard writer that announces its changes the way
//! iceoryx2's `blackboard_event_based_communication` example does, as the Rust
//! peer of the Go blackboard tests.
//!
//! Usage:
//!
//! ```text
//! iox_bb_writer PREFIX ROOT NAME
//! ```
//!
//! It creates the blackboard NAME (keys `u32`; entries 0 and 1, values `u64`,
//! default 0) in the isolated configuration PREFIX/ROOT, opens or creates the
//! event service of the same name, prints `ready`, then for each line `N` on
//! standard input writes N to entry 1 and 2·N to entry 0, notifying each
//! entry's id after its write, and prints `ok`. It ends when standard input
//! closes. Exit status: 0 on success, 1 on failure, 2 on usage errors.

use std::io::BufRead;
use std::process::ExitCode;

use iceoryx2::prelude::*;

type Result<T> = std::result::Result<T, String>;

fn node(prefix: &str, root: &str) -> Result<Node<ipc::Service>> {
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| format!("prefix: {e:?}"))?;
    let path = Path::new(root.as_bytes()).map_err(|e| format!("root: {e:?}"))?;
    config.global.set_root_path(&path);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .config(&config)
        .create::<ipc::Service>()
        .map_err(|e| format!("node: {e:?}"))
}

fn run(prefix: &str, root: &str, name: &str) -> Result<()> {
    let node = node(prefix, root)?;
    let name: ServiceName = name.try_into().map_err(|e| format!("service name: {e:?}"))?;
    const INTERESTING_KEY: u32 = 1;
    let service = node
        .service_builder(&name)
        .blackboard_creator::<u32>()
        .add_with_default::<u64>(0)
        .add_with_default::<u64>(INTERESTING_KEY)
        .create()
        .map_err(|e| format!("blackboard: {e:?}"))?;
    let events = node.service_builder(&name).event().open_or_create().map_err(|e| format!("event service: {e:?}"))?;
    let notifier = events.notifier_builder().create().map_err(|e| format!("notifier: {e:?}"))?;
    let writer = service.writer_builder().create().map_err(|e| format!("writer: {e:?}"))?;
    let entry = writer.entry::<u64>(&0).map_err(|e| format!("entry 0: {e:?}"))?;
    let interesting = writer.entry::<u64>(&INTERESTING_KEY).map_err(|e| format!("entry 1: {e:?}"))?;
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let n: u64 = line.trim().parse().map_err(|e| format!("line {line:?}: {e}"))?;
        interesting.update_with_copy(n);
        notifier.notify_with_custom_event_id(interesting.entry_id()).map_err(|e| format!("notify: {e:?}"))?;
        entry.update_with_copy(2 * n);
        notifier.notify_with_custom_event_id(entry.entry_id()).map_err(|e| format!("notify: {e:?}"))?;
        println!("ok");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: iox_bb_writer PREFIX ROOT NAME");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2], &args[3]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iox_bb_writer: {e}");
            ExitCode::from(1)
        }
    }
}
