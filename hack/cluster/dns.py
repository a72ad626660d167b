"""The cluster DNS of hack/cluster.sh: answers the pods' queries for Service names.

    python3 hack/cluster/dns.py --listen IP:PORT --server URL --ca CA --cert CRT --key KEY

It lists the Services and EndpointSlices of every namespace from the API server (once a
second) and answers, over UDP, A queries for

    <service>.<namespace>.svc.cluster.local          the ClusterIP, or the ready endpoints'
                                                     addresses of a headless Service
    <hostname>.<service>.<namespace>.svc.cluster.local  a StatefulSet pod of a headless Service

Any other name gets NXDOMAIN (the cluster has no upstream resolver to forward to); a known
name asked for another type gets an empty answer. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request
from collections import defaultdict

DOMAIN = "svc.cluster.local"
TTL = 5
TYPE_A = 1


class Records:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, list[str]] = {}

    def replace(self, names: dict[str, list[str]]) -> None:
        with self._lock:
            self._names = names

    def lookup(self, name: str) -> list[str] | None:
        with self._lock:
            return self._names.get(name.lower().rstrip("."))


def _get(opener: urllib.request.OpenerDirector, server: str, path: str) -> list[dict]:
    with opener.open(f"{server}{path}", timeout=10) as response:
        return json.load(response)["items"]


def build_names(services: list[dict], slices: list[dict]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    endpoints: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in slices:
        service = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
        if service and s.get("addressType") == "IPv4":
            endpoints[(s["metadata"]["namespace"], service)].extend(s.get("endpoints") or [])
    for svc in services:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        fqdn = f"{name}.{ns}.{DOMAIN}"
        cluster_ip = svc["spec"].get("clusterIP")
        ready = [e for e in endpoints[(ns, name)] if (e.get("conditions") or {}).get("ready", True)]
        if cluster_ip and cluster_ip != "None":
            names[fqdn] = [cluster_ip]
        else:
            names[fqdn] = sorted({a for e in ready for a in e.get("addresses", [])})
        for e in endpoints[(ns, name)]:
            if e.get("hostname") and e.get("addresses"):
                names[f"{e['hostname']}.{fqdn}"] = e["addresses"][:1]
    return names


def refresh(records: Records, opener: urllib.request.OpenerDirector, server: str) -> None:
    failures = 0
    while True:
        try:
            services = _get(opener, server, "/api/v1/services")
            slices = _get(opener, server, "/apis/discovery.k8s.io/v1/endpointslices")
            records.replace(build_names(services, slices))
            failures = 0
        except OSError as exc:
            failures += 1
            if failures in (1, 10) or failures % 60 == 0:
                print(f"cluster-dns: cannot list Services ({failures}x): {exc}", file=sys.stderr, flush=True)
        time.sleep(1)


def _question(packet: bytes) -> tuple[str, int, int]:
    """The first question's name, type and the offset just after it."""
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    offset += 1
    qtype, _qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ".".join(labels), qtype, offset + 4


def answer(packet: bytes, records: Records) -> bytes | None:
    if len(packet) < 17:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    try:
        name, qtype, end = _question(packet)
    except (IndexError, struct.error):
        return None
    addresses = records.lookup(name)
    # QR, the request's opcode and RD, RA; rcode 3 (NXDOMAIN) for a name we do not know.
    rcode = 0 if addresses is not None else 3
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    answers = [a for a in (addresses or []) if qtype == TYPE_A]
    body = packet[12:end]
    for address in answers:
        body += struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, TTL, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", ident, out_flags, 1, len(answers), 0, 0) + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="IP:PORT to answer on (UDP)")
    parser.add_argument("--server", required=True, help="the API server's URL")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    records = Records()
    threading.Thread(target=refresh, args=(records, opener, args.server), daemon=True).start()
    host, port = args.listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    print(f"cluster-dns: answering on {args.listen} for *.{DOMAIN}", flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        reply = answer(packet, records)
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
