import re

import wit_world
from wit_world.imports import address, probe, topology
from componentize_py_types import Err


def describe(error) -> str:
    """An nsw error as `kind: message`, as Rust and nsw spell it."""
    kind = type(error).__name__.removeprefix("Error_")  # Error_NotFound
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + ": " + error.value


class WitWorld(wit_world.WitWorld):
    def run(self, args: list[str]) -> None:
        try:
            host = topology.host()
            a = topology.create_netns("a")
            inside, outside = topology.create_veth("eth0", a, "a-eth0", host)
            address.add(inside, "192.168.7.2/24")
            address.add(outside, "192.168.7.1/24")
            topology.set_up(inside)
            topology.set_up(outside)
            stats = probe.ping(host, "192.168.7.2", probe.PingOptions(count=3, timeout_ms=1000))
            print(f"{stats.received}/{stats.sent} replies")
        except Err as e:
            # e.value is the WIT error: Error_Invalid(value="..."), ...
            raise Err(describe(e.value))
