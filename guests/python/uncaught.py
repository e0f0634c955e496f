"""A newcomer's first lab: nsw's error is not caught (the address is bad)."""

import wit_world
from wit_world.imports import address, topology


class WitWorld(wit_world.WitWorld):
    def run(self, args: list[str]) -> None:
        host = topology.host()
        inside = topology.create_netns("inside")
        a, _ = topology.create_veth("eth0", inside, "in0", host)
        address.add(a, "10.1.0.300/24")
