"""The web lab of guests/web, in Python: nodes srv and cli on a bridge,
the http-server service in srv, then from cli a TCP connection and the
http-get service, each recorded as a check.

    nsw test web-py.wasm [-- PORT]

The services are the same components the Rust lab carries: scripts/build-
python writes them into the module web_services before building this.
"""

import wit_world
from wit_world.imports import address, check, probe, service, topology
from web_services import HTTP_GET, HTTP_SERVER

SERVER = "10.0.0.1"
PAGE = "hello from nsw"


class WitWorld(wit_world.WitWorld):
    def run(self, args: list[str]) -> None:
        port = int(args[0]) if args else 8080
        host = topology.host()
        bridge = topology.create_bridge("br0", host)
        topology.set_up(bridge)
        nodes = []
        for name, ip in [("srv", "10.0.0.1/24"), ("cli", "10.0.0.2/24")]:
            node = topology.create_netns(name)
            eth, port_end = topology.create_veth("eth0", node, f"{name}0", host)
            address.add(eth, ip)
            topology.set_up(eth)
            topology.set_master(port_end, bridge)
            topology.set_up(port_end)
            nodes.append(node)
        srv, cli = nodes

        server = service.start(srv, "http-server", HTTP_SERVER, ["http-server", "8080", PAGE + "\n"])
        up = False
        for _ in range(40):
            if probe.tcp_connect(cli, SERVER, 8080, 200).outcome == probe.ConnectOutcome.CONNECTED:
                up = True
                break
            if server.wait(50) is not None:
                break
        check.report("http-server listens in srv on 8080", up, "connected from cli" if up else server.output())

        tcp = probe.tcp_connect(cli, SERVER, port, 1000)
        check.report(f"tcp {SERVER}:{port} from cli", tcp.outcome == probe.ConnectOutcome.CONNECTED,
                     f"{tcp.outcome.name.lower().replace('_', ' ')} in {tcp.ms:.3f} ms")

        url = f"http://{SERVER}:{port}/"
        get = service.start(cli, "http-get", HTTP_GET, ["http-get", url, PAGE])
        ending = get.wait(10_000)
        lines = get.output().splitlines()
        ok = isinstance(ending, service.Ending_Exited) and ending.value == 0
        check.report(f"http-get {url} from cli", ok, f"{ending}: {lines[-1] if lines else ''}")
