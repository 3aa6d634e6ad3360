"""Delay and loss for the packets of one netfilter queue, for kernels without ``tc netem``
(``bench/cluster_faults_inject.py`` starts it, one per namespace, under ``ip netns exec``).

An ``iptables ... -j NFQUEUE --queue-num Q --queue-bypass`` rule hands the packets to this process over netlink
(``NETLINK_NETFILTER``, the queue subsystem, metadata only). Each packet is dropped with probability ``--loss``
percent; every other one is accepted ``--delay-ms`` later (verdicts may come out of order, so the packets
behind a delayed one are not held up further). ``--queue-bypass`` lets packets through while no process is
bound, so stopping this process ends the fault. It stops on SIGTERM or SIGINT.

Usage: ``python bench/cluster_faults_delay.py --queue 7 --delay-ms 100 --loss 5``.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import time
from types import FrameType

__all__ = ["serve"]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, queue: int, attributes: bytes, sequence: int) -> bytes:
    """A netfilter queue message: netlink header, ``nfgenmsg`` (AF_UNSPEC, version 0, the queue), attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, NLM_F_REQUEST, sequence, 0) + body


def _packet_ids(data: bytes) -> list[int]:
    """The ids of the queued packets in one datagram of netlink messages.

    Raises:
        OSError: the kernel answered a request with an error.
    """
    ids, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, offset + 16)
            if error:
                raise OSError(-error, f"netfilter queue request refused: {-error}")
        elif kind & 0xFF == NFQNL_MSG_PACKET:
            at = offset + 20  # after nlmsghdr and nfgenmsg
            while at + 4 <= offset + length:
                size, attribute = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attribute & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, at + 4)[0])
                at += size + (-size % 4)
        offset += length + (-length % 4)
    return ids


def serve(queue: int, delay: float, loss: float, stop: list[bool]) -> None:
    """Bind netfilter queue ``queue`` and hand out verdicts (``loss``: a fraction) until ``stop[0]`` holds."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as link:
        link.bind((0, 0))
        link.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        bind = _attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))
        link.send(_message(NFQNL_MSG_CONFIG, queue, bind, 1))
        params = _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
        link.send(_message(NFQNL_MSG_CONFIG, queue, params, 2))
        due: list[tuple[float, int]] = []
        chance = random.Random()
        while not stop[0]:
            wait = max(0.0, due[0][0] - time.monotonic()) if due else 0.2
            readable, _, _ = select.select([link], [], [], min(wait, 0.2))
            if readable:
                for packet in _packet_ids(link.recv(1 << 16)):
                    if chance.random() < loss:
                        _verdict(link, queue, packet, NF_DROP)
                    else:
                        heapq.heappush(due, (time.monotonic() + delay, packet))
            now = time.monotonic()
            while due and due[0][0] <= now:
                _verdict(link, queue, heapq.heappop(due)[1], NF_ACCEPT)
        for _, packet in due:  # what is still held goes out at once
            _verdict(link, queue, packet, NF_ACCEPT)


def _verdict(link: socket.socket, queue: int, packet: int, verdict: int) -> None:
    link.send(_message(NFQNL_MSG_VERDICT, queue, _attribute(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet)), 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, required=True, help="the netfilter queue to bind")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="milliseconds each accepted packet waits")
    parser.add_argument("--loss", type=float, default=5.0, help="percent of the packets dropped")
    args = parser.parse_args()
    stop = [False]

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    print(f"queue {args.queue}: {args.delay_ms:g} ms, {args.loss:g}% lost", flush=True)
    serve(args.queue, args.delay_ms / 1000, args.loss / 100, stop)


if __name__ == "__main__":
    main()
