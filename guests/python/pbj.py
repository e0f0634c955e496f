"""The pb-and-jelly lab from the tutorial, step for step, in Python.

The same lab, and the same progress, as guests/pbj (Rust):

    nsw run pbj-py.wasm                                   # contained
    nsw run pbj-py.wasm --allow host-net -- 203.0.113.1   # tutorial-exact
"""

import wit_world
from wit_world.imports import address, nat, probe, route, topology
from wit_world.imports.types import (
    Error_Denied, Error_Exists, Error_Invalid, Error_NotFound, Error_Os, Error_Quota, IpFamily,
)
from componentize_py_types import Err

SUBNET = "10.0.0.0/16"
GATEWAY = "10.0.0.1"
PB = "10.0.0.10"
JELLY = "10.0.0.11"

KINDS = {
    Error_Denied: "denied", Error_Invalid: "invalid", Error_Exists: "exists",
    Error_NotFound: "not-found", Error_Quota: "quota", Error_Os: "os",
}


def describe(error) -> str:
    """An nsw error as `kind: message`, the way the user sees it."""
    if isinstance(error, str):
        return error
    return f"{KINDS[type(error)]}: {error.value}"


def step(n: int, what: str) -> None:
    print(f"step {n:>2}: {what}")


def reach(source, target: str, what: str) -> None:
    """Ping until a reply comes back (3 tries), and insist on one."""
    options = probe.PingOptions(count=1, timeout_ms=1000)
    for _ in range(3):
        stats = probe.ping(source, target, options)
        if stats.received > 0:
            break
    if stats.received == 0:
        raise Err(f"{what}: no reply from {target} after {stats.sent} echo requests")
    print(f"         {what}: reply from {target} in {stats.avg_ms:.3f} ms")


def build(outside) -> None:
    host = topology.host()

    step(1, "namespaces pb and jelly")
    pb = topology.create_netns("pb")
    jelly = topology.create_netns("jelly")

    step(2, "veth pairs veth-pb/bread-pb-veth and veth-jelly/bread-j-veth")
    veth_pb, bread_pb = topology.create_veth("veth-pb", host, "bread-pb-veth", host)
    veth_jelly, bread_j = topology.create_veth("veth-jelly", host, "bread-j-veth", host)

    step(3, "move veth-pb into pb and veth-jelly into jelly")
    topology.move_link(veth_pb, pb)
    topology.move_link(veth_jelly, jelly)

    step(4, "addresses 10.0.0.10/16 (pb) and 10.0.0.11/16 (jelly), links up")
    address.add(veth_pb, f"{PB}/16")
    address.add(veth_jelly, f"{JELLY}/16")
    topology.set_up(veth_pb)
    topology.set_up(veth_jelly)

    step(5, "bridge brd1, up")
    brd1 = topology.create_bridge("brd1", host)
    topology.set_up(brd1)

    step(6, "bread-pb-veth and bread-j-veth into brd1, up")
    topology.set_master(bread_pb, brd1)
    topology.set_master(bread_j, brd1)
    topology.set_up(bread_pb)
    topology.set_up(bread_j)

    step(7, "ping pb from jelly")
    reach(jelly, PB, "jelly -> pb")

    step(8, "10.0.0.1/16 on brd1: the host reaches the namespaces")
    address.add(brd1, f"{GATEWAY}/16")
    reach(host, PB, "host -> pb")

    step(9, "default routes via 10.0.0.1 in pb and jelly")
    route.add(pb, "default", GATEWAY)
    route.add(jelly, "default", GATEWAY)

    step(10, "masquerade 10.0.0.0/16 on the host")
    nat.masquerade(host, SUBNET)

    step(11, "IPv4 forwarding on the host")
    route.enable_forwarding(host, IpFamily.IPV4)

    if outside is not None:
        step(12, f"ping the outside world ({outside}) from jelly")
        reach(jelly, outside, "jelly -> outside")
    else:
        step(12, "no outside address given (nsw run pbj.wasm -- ADDRESS): skipped")
    print("pb and jelly are up")


class WitWorld(wit_world.WitWorld):
    def run(self, args: list[str]) -> None:
        try:
            build(args[0] if args else None)
        except Err as e:
            raise Err(describe(e.value))
