"""A Redis Cluster of three masters (no replicas), each Debian's redis-server on free
loopback ports, its 16384 slots split in three and joined by hand (CLUSTER ADDSLOTSRANGE
and CLUSTER MEET through redis-py: no redis-cli needed), ready once every node reports cluster_state:ok
and knows all three."""

from __future__ import annotations

from pathlib import Path

import redis

from .process import HarnessError, ManagedProcess, free_ports
from .tools import Tools

SLOTS = 16384


def command(port: int, *args: str | int) -> bytes | str | int:
    """One command to the node on `port` (redis-py, a fresh connection each time)."""
    with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2) as node:
        try:
            return node.execute_command(*args)  # type: ignore[no-any-return]
        except redis.RedisError as exc:
            raise HarnessError(f"redis on {port}: {' '.join(map(str, args))}: {exc}") from exc


class RedisCluster:
    name = "redis-cluster"
    masters = 3

    def __init__(self, tools: Tools, run_dir: Path) -> None:
        self.binary = tools.require("redis-server")
        self.dir = run_dir / "redis-cluster"
        ports = free_ports(2 * self.masters)  # distinct: a node's port is never its bus port
        self.ports, self.bus_ports = ports[: self.masters], ports[self.masters :]
        self.processes: list[ManagedProcess] = []

    @property
    def url(self) -> str:
        """One node as a plain URL: what a cluster client starts from (it finds the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def stackyard_url(self) -> str:
        """The URL a Stack's Redis Secret holds for a cluster."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisCluster:
        for i, (port, bus) in enumerate(zip(self.ports, self.bus_ports, strict=True)):
            node_dir = self.dir / f"node-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            process = ManagedProcess(
                f"redis-cluster-{i}",
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--cluster-port",
                    str(bus),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    node_dir / "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    node_dir,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--loglevel",
                    "warning",
                ],
                self.dir / f"node-{i}.log",
            ).start()
            self.processes.append(process)
        for process, port in zip(self.processes, self.ports, strict=True):
            process.wait_ready(lambda port=port: command(port, "PING") is True, 15, "answering PING")
        share = SLOTS // self.masters
        for i, port in enumerate(self.ports):
            first, last = i * share, SLOTS - 1 if i == self.masters - 1 else (i + 1) * share - 1
            command(port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for port in self.ports[1:]:
            command(port, "CLUSTER", "MEET", "127.0.0.1", self.ports[0], self.bus_ports[0])
        self.processes[0].wait_ready(self._formed, 30, "a cluster with every slot served (cluster_state:ok)")
        return self

    def _formed(self) -> bool:
        for port in self.ports:
            info = command(port, "CLUSTER", "INFO")
            info = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in info or f"cluster_known_nodes:{self.masters}" not in info:
                return False
        return True

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def env(self) -> dict[str, str]:
        return {"STACKYARD_REDIS_CLUSTER_URL": self.stackyard_url}

    def describe(self) -> str:
        return f"redis-cluster   {self.stackyard_url} (masters on {', '.join(map(str, self.ports))})"
