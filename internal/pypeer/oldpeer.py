"""A peer built on an older iceoryx2 release (0.9.x), for the version tests.

iceoryx2 refuses peers of another release; this program shows what an older
peer meets when it shares a namespace with iox, and what iox meets from it.

Usage: oldpeer.py ROLE SERVICE PREFIX ROOT
  create  create the [u8] publish-subscribe service SERVICE with a publisher,
          print "ready", then keep it open until standard input closes (at
          most 60 s).
  open    open the existing [u8] service SERVICE and a subscriber on it;
          print "opened" and exit 0 on success, or print "refused: ERROR"
          and exit 3 when iceoryx2 refuses it.
Every run first prints "version X.Y.Z", the iceoryx2 release in use.
"""

import ctypes
import importlib.metadata
import select
import sys

import iceoryx2 as iox2


def node_for(prefix, root):
    cfg = iox2.config.default()
    cfg.global_cfg.prefix = iox2.FileName.new(prefix)
    cfg.global_cfg.root_path = iox2.Path.new(root)
    return (
        iox2.NodeBuilder.new()
        .config(cfg)
        .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
        .create(iox2.ServiceType.Ipc)
    )


def run_create(name, prefix, root):
    node = node_for(prefix, root)
    svc = (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .create()
    )
    pub = svc.publisher_builder().initial_max_slice_len(64).create()
    print("ready", flush=True)
    select.select([sys.stdin], [], [], 60)
    del pub
    del svc
    del node


def run_open(name, prefix, root):
    try:
        node = node_for(prefix, root)
        svc = (
            node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .open()
        )
        sub = svc.subscriber_builder().create()
    except Exception as e:  # the refusal is the expected outcome
        print("refused:", type(e).__name__, e, flush=True)
        sys.exit(3)
    print("opened", flush=True)
    del sub
    del svc
    del node


def main():
    role, name, prefix, root = sys.argv[1:5]
    iox2.set_log_level(iox2.LogLevel.Fatal)
    print("version", importlib.metadata.version("iceoryx2"), flush=True)
    if role == "create":
        run_create(name, prefix, root)
    elif role == "open":
        run_open(name, prefix, root)
    else:
        raise SystemExit("oldpeer: unknown role " + role)


if __name__ == "__main__":
    main()
