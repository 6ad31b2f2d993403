"""Cross-language peer for the iox tests: a plain iceoryx2 Python program.

Usage: peer.py ROLE SERVICE PREFIX ROOT [ARGS...]
  pub  SERVICE PREFIX ROOT SIZES  publish one [u8] message per size (comma list),
                                  byte i of a message of n bytes = (i*7 + n) % 256;
                                  waits for a subscriber first, never notifies.
  sub  SERVICE PREFIX ROOT COUNT  receive COUNT [u8] messages and print
                                  "len sha256" per message.
  echo-typed FWD PREFIX ROOT BACK COUNT
                                  receive COUNT Point values on FWD and publish
                                  each on BACK with x+1, y*2, z/2.
  settings SERVICE PREFIX ROOT    create services with settings other than the
                                  defaults (see run_settings) and keep them
                                  until standard input closes (at most 60 s).
It prints "ready" once its port exists.
"""

import ctypes
import hashlib
import select
import sys
import time

import iceoryx2 as iox2


def pattern(n):
    return bytes((i * 7 + n) % 256 for i in range(n))


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


def service(node, name):
    return (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .open_or_create()
    )


def deadline_loop(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield
        time.sleep(0.001)
    raise SystemExit("peer: timed out")


def run_pub(name, prefix, root, sizes):
    node = node_for(prefix, root)
    svc = service(node, name)
    pub = (
        svc.publisher_builder()
        .initial_max_slice_len(max(sizes + [1]))
        .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo)
        .create()
    )
    print("ready", flush=True)
    for _ in deadline_loop(20):
        if svc.dynamic_config.number_of_subscribers > 0:
            break
    for n in sizes:
        sample = pub.loan_slice_uninit(n)
        data = pattern(n)
        if n:
            ctypes.memmove(sample.payload_ptr, data, n)
        sample.assume_init().send()
    print("sent", len(sizes), flush=True)
    # keep the publisher alive until the subscriber is gone, so nothing is lost
    for _ in deadline_loop(20):
        if svc.dynamic_config.number_of_subscribers == 0:
            break


def run_sub(name, prefix, root, count):
    node = node_for(prefix, root)
    svc = service(node, name)
    sub = svc.subscriber_builder().create()
    print("ready", flush=True)
    got = 0
    for _ in deadline_loop(20):
        while True:
            sample = sub.receive()
            if sample is None:
                break
            payload = sample.payload()
            n = payload.number_of_elements
            data = ctypes.string_at(sample.payload_ptr, n) if n else b""
            print(n, hashlib.sha256(data).hexdigest(), flush=True)
            sample.delete()
            got += 1
        if got >= count:
            break


class Point(ctypes.Structure):
    """The Go test's point type: #[repr(C)] struct { x: i32, y: i32, z: f64 }."""

    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32), ("z", ctypes.c_double)]

    @staticmethod
    def type_name():
        return "iox_test::Point"


def run_echo_typed(fwd, prefix, root, back, count):
    node = node_for(prefix, root)
    svc_in = (
        node.service_builder(iox2.ServiceName.new(fwd))
        .publish_subscribe(Point)
        .open_or_create()
    )
    svc_out = (
        node.service_builder(iox2.ServiceName.new(back))
        .publish_subscribe(Point)
        .open_or_create()
    )
    sub = svc_in.subscriber_builder().create()
    pub = svc_out.publisher_builder().create()
    print("ready", flush=True)
    got = 0
    for _ in deadline_loop(20):
        while True:
            sample = sub.receive()
            if sample is None:
                break
            p = sample.payload().contents
            out = Point(p.x + 1, p.y * 2, p.z / 2)
            sample.delete()
            pub.send_copy(out)
            got += 1
        if got >= count:
            break
    print("echoed", got, flush=True)
    for _ in deadline_loop(20):
        if svc_out.dynamic_config.number_of_subscribers == 0:
            break


class Stamp(ctypes.Structure):
    """A user header: #[repr(C)] struct { seq: u64, flags: u32 }."""

    _fields_ = [("seq", ctypes.c_uint64), ("flags", ctypes.c_uint32)]

    @staticmethod
    def type_name():
        return "iox_test::Stamp"


def run_settings(name, prefix, root):
    """Creates SERVICE (Point payload), SERVICE-header ([u8] with a Stamp user
    header) and the event service SERVICE, all with settings iox would not
    choose; the test reads them back."""
    node = node_for(prefix, root)
    sn = iox2.ServiceName.new(name)
    typed = (
        node.service_builder(sn)
        .publish_subscribe(Point)
        .max_publishers(3)
        .max_subscribers(5)
        .max_nodes(7)
        .history_size(4)
        .subscriber_max_buffer_size(6)
        .subscriber_max_borrowed_samples(3)
        .enable_safe_overflow(False)
        .create()
    )
    headed = (
        node.service_builder(iox2.ServiceName.new(name + "-header"))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .user_header(Stamp)
        .create()
    )
    events = (
        node.service_builder(sn)
        .event()
        .max_notifiers(3)
        .max_listeners(5)
        .max_nodes(6)
        .event_id_max_value(77)
        .notifier_created_event(iox2.EventId.new(1))
        .notifier_dropped_event(iox2.EventId.new(2))
        .notifier_dead_event(iox2.EventId.new(3))
        .deadline(iox2.Duration.from_millis(2500))
        .create()
    )
    print("ready", flush=True)
    select.select([sys.stdin], [], [], 60)
    del typed, headed, events, node


def main():
    role, name, prefix, root = sys.argv[1:5]
    iox2.set_log_level(iox2.LogLevel.Error)
    if role == "pub":
        sizes = [int(x) for x in sys.argv[5].split(",") if x]
        run_pub(name, prefix, root, sizes)
    elif role == "sub":
        run_sub(name, prefix, root, int(sys.argv[5]))
    elif role == "echo-typed":
        run_echo_typed(name, prefix, root, sys.argv[5], int(sys.argv[6]))
    elif role == "settings":
        run_settings(name, prefix, root)
    else:
        raise SystemExit("peer: unknown role " + role)


if __name__ == "__main__":
    main()
