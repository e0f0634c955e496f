#!/usr/bin/env python3
"""A lab across machines beside the same lab on one machine, in one run.

Three "machines" on this one (network namespaces on an underlay bridge,
each with its own /run/nsw and /run/netns, as the tests make them), a
3-member etcd (one member each), an `nsw agent` on each. The star of N
hosts (guests/star, `nov6`) is built by `nsw run` on this machine and
by `nsw run --store` over the three agents, each then taken down; the
ratio of the builds is printed
(the target: at most 1.5 at N=999 on this one physical machine, where the
three agents share its cores). Needs root; leaves nothing.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NSW = os.path.join(ROOT, 'target/release/nsw')
STAR = os.path.join(ROOT, 'guests/target/wasm32-wasip2/release/star.wasm')
TAG = f'nswb{os.getpid() % 10000}'
UNDERLAY = f'{TAG}-ul'


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def address(i):
    return f'10.98.0.{i + 1}'


class Cluster:
    def __init__(self, size, workdir):
        self.size = size
        self.dir = workdir
        self.keepers, self.members, self.agents = [], [], []
        sh('ip', 'netns', 'add', UNDERLAY)
        sh('ip', '-n', UNDERLAY, 'link', 'add', 'br0', 'type', 'bridge')
        sh('ip', '-n', UNDERLAY, 'link', 'set', 'br0', 'up')
        for i in range(size):
            m = self.machine(i)
            sh('ip', 'netns', 'add', m)
            sh('ip', '-n', m, 'link', 'set', 'lo', 'up')
            sh('ip', '-n', m, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', f'm{i}', 'netns', UNDERLAY)
            sh('ip', '-n', UNDERLAY, 'link', 'set', f'm{i}', 'master', 'br0', 'up')
            sh('ip', '-n', m, 'address', 'add', f'{address(i)}/24', 'dev', 'ul0')
            sh('ip', '-n', m, 'link', 'set', 'ul0', 'up')
            private = ('mkdir -p /run/nsw /run/netns && mount -t tmpfs nswb /run/nsw && '
                       'mount -t tmpfs nswb /run/netns && exec sleep infinity')
            self.keepers.append(subprocess.Popen(['nsenter', f'--net=/run/netns/{m}', 'unshare', '--mount', '--propagation',
                                                  'private', 'sh', '-c', private]))
        peers = ','.join(f'e{j}=http://{address(j)}:2380' for j in range(size))
        for i in range(size):
            client = f'http://{address(i)}:2379'
            log = open(os.path.join(self.dir, f'etcd{i}.log'), 'w')
            self.members.append(subprocess.Popen(
                ['nsenter', f'--net=/run/netns/{self.machine(i)}', 'etcd', '--name', f'e{i}', '--data-dir', os.path.join(self.dir, f'etcd{i}'),
                 '--listen-client-urls', client, '--advertise-client-urls', client,
                 '--listen-peer-urls', f'http://{address(i)}:2380', '--initial-advertise-peer-urls', f'http://{address(i)}:2380',
                 '--initial-cluster', peers, '--initial-cluster-state', 'new', '--initial-cluster-token', TAG,
                 '--heartbeat-interval', '100', '--election-timeout', '1000'] + (['--unsafe-no-fsync'] if os.environ.get('NOFSYNC') else []), stdout=log, stderr=log))
        self.urls = ','.join(f'http://{address(i)}:2379' for i in range(size))
        for _ in range(100):
            if sh('nsenter', f'--net=/run/netns/{self.machine(0)}', 'etcdctl', '--endpoints', self.urls, 'endpoint', 'health', check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise SystemExit('etcd did not become healthy')
        for i in range(size):
            log = open(os.path.join(self.dir, f'agent{i}.log'), 'w')
            self.agents.append(subprocess.Popen(['nsenter', '-t', str(self.keepers[i].pid), '-m', '-n', NSW, 'agent', '--machine', f'm{i}',
                                                 '--underlay', address(i), '--store', self.urls], stdout=log, stderr=log))
        for _ in range(100):
            out = self.nsw('machines', '--json', check=False)
            if out.returncode == 0 and out.stdout.count('"name"') == size:
                return
            time.sleep(0.2)
        raise SystemExit('the agents did not register')

    def machine(self, i):
        return f'{TAG}-m{i}'

    def nsw(self, *args, check=True):
        return sh('nsenter', f'--net=/run/netns/{self.machine(0)}', NSW, *args, '--store', self.urls, check=check)

    def leftovers(self):
        left = []
        for i, keeper in enumerate(self.keepers):
            netns = sh('nsenter', '-t', str(keeper.pid), '-m', '-n', 'ip', 'netns', 'list').stdout.strip()
            if netns:
                left.append(f'm{i}: {len(netns.splitlines())} namespaces')
        return left

    def close(self):
        for p in self.agents:
            p.terminate()
        for p in self.agents:
            p.wait()
        for p in self.members + self.keepers:
            p.kill()
            p.wait()
        for i in range(self.size):
            sh('ip', 'netns', 'del', self.machine(i), check=False)
        sh('ip', 'netns', 'del', UNDERLAY, check=False)


def timed(cmd):
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    took = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed:\n{out.stdout}{out.stderr}')
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=999)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--settle', type=float, default=5.0, help='seconds between runs, for the kernel to free deleted namespaces')
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('run as root: the benchmark builds network namespaces')
    workdir = tempfile.mkdtemp(prefix='nswb-')
    cluster = Cluster(3, workdir)
    one, across = [], []
    one_down, across_down = [], []
    local = [NSW]
    remote = ['nsenter', f'--net=/run/netns/{cluster.machine(0)}', NSW]
    store = ['--store', cluster.urls]
    try:
        for r in range(a.runs):
            # Built, then taken down untimed, then a pause: the kernel
            # frees deleted namespaces in the background, slowing whatever
            # runs meanwhile.
            one.append(timed(local + ['run', STAR, '--name', f'{TAG}one', '--', str(a.n), 'nov6']))
            one_down.append(timed(local + ['down', f'{TAG}one']))
            time.sleep(a.settle)
            across.append(timed(remote + ['run', STAR, '--name', f'{TAG}x'] + store + ['--', str(a.n), 'nov6']))
            across_down.append(timed(remote + ['down', f'{TAG}x'] + store))
            time.sleep(a.settle)
            left = cluster.leftovers()
            if left:
                raise SystemExit(f'left behind: {left}')
            print(f'run {r + 1}: one machine {one[-1]:.2f} s (down {one_down[-1]:.2f} s), '
                  f'across 3 agents {across[-1]:.2f} s (down {across_down[-1]:.2f} s)', file=sys.stderr)
    finally:
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
    m1, m3 = statistics.median(one), statistics.median(across)
    d1, d3 = statistics.median(one_down), statistics.median(across_down)
    fsync = 'off (--unsafe-no-fsync)' if os.environ.get('NOFSYNC') else 'on'
    print(f'star N={a.n} (nov6), median of {a.runs} (etcd fsync {fsync}):')
    print(f'  build  one machine {m1:6.2f} s   across 3 agents {m3:6.2f} s   ratio {m3 / m1:.2f}x  '
          f'(target <= 1.5x: {"met" if m3 / m1 <= 1.5 else "NOT met"})')
    print(f'  down   one machine {d1:6.2f} s   across 3 agents {d3:6.2f} s   ratio {d3 / d1:.2f}x')


if __name__ == '__main__':
    main()
