#!/usr/bin/env python3
"""nsw beside the baselines, in one run (see scripts/bench; run as root).

  scripts/bench [--ns 2,10,50,200,1000] [--runs 5] [--runs-200 3] [--full] [--quick]

Star topology: nsw (IPv6 link-local on, and off with `nov6`; run by root
without the privilege boundary (`nsw-testing` with `NSW_NO_BOUNDARY=1`), as `nsw-open`; and run by an
ordinary user, no root, as `nsw-user`, checked from inside with `nsw exec`) and the
baselines of ../shared/bench (the tutorial's one `ip` per step, `ip -batch`,
pyroute2, Mininet with Linux bridges; `ip -batch` with NOV6=1 for the
link-local-off comparison). Every repetition runs every method once, in
rotated order, inside an outer namespace `bxhost`, so that machine noise
hits them alike. Every topology is checked with real pings before it is
torn down, and after every teardown the driver waits until the kernel's
own threads are idle again (the kernel frees namespaces asynchronously),
recorded as async_s. Peak RSS is that of the largest process of each
method (GNU time's %M). Then the tutorial-sized pbj lab (the tutorial's
script against `nsw run --rm`) and nsw's own start-up (a script that does
nothing: load from the compiled cache, instantiate, call run). Then labs
that do things: a service's start-up, `nsw test web.wasm`, and
probe.throughput against iperf3. At every N, `nsw show` and `nsw graph` of
the star are timed too.

Prints a markdown table of medians and ratios against `ip -batch`, checks
the targets, and writes bench/results.md and bench/results.json; when a
bench/results.json from an earlier run exists, it prints the change too.
Figures only: nothing here fails on timing.
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.environ.get('NSW_BASELINES') or os.path.join(ROOT, '..', 'shared', 'bench')
NSW = os.path.join(ROOT, 'target', 'release', 'nsw')
# The same nsw with the benchmarks' hooks (NSW_TIMINGS); scripts/build makes both.
NSW_TESTING = os.path.join(ROOT, 'target', 'release', 'nsw-testing')
GUESTS = os.path.join(ROOT, 'guests', 'target', 'wasm32-wasip2', 'release')
RESULTS = os.path.join(ROOT, 'bench')
LAB = 'bxs'          # the star lab: namespaces bxs, bxs-h1 ... (bx prefix, like the baselines)
# The ordinary user of method nsw-user (no root: a user namespace of its
# own): a uid nobody has, a home made for the run.
USER_UID = 61999
USER_HOME = os.path.join(tempfile.gettempdir(), 'nsw-bench-user')


def load_baselines():
    """The baselines' own driver, as a library (its helpers and methods)."""
    path = os.path.join(BASE, 'bench.py')
    if not os.path.exists(path):
        raise SystemExit('no baselines at %s (set NSW_BASELINES to the folder with bench.py)' % BASE)
    spec = importlib.util.spec_from_file_location('baseline_bench', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bl = load_baselines()
median = bl.median
now = bl.now

# Peak RSS of every timed command, baselines included: wrap them in GNU time.
RSS = []
_timed = bl.timed


def timed_with_rss(cmd, env=None):
    with tempfile.NamedTemporaryFile('r') as f:
        t, out = _timed(['/usr/bin/time', '-f', '%M', '-o', f.name] + list(cmd), env)
        RSS.append(int(f.read().split()[-1]))
    return t, out


bl.timed = timed_with_rss


def user_setup():
    """A home for USER_UID with copies of nsw and the star it runs."""
    subprocess.run(['pkill', '-KILL', '-u', str(USER_UID)])
    shutil.rmtree(USER_HOME, ignore_errors=True)
    for d in (USER_HOME, os.path.join(USER_HOME, 'run')):
        os.makedirs(d, mode=0o700)
        os.chown(d, USER_UID, USER_UID)
    for f in (NSW, os.path.join(GUESTS, 'star.wasm')):
        shutil.copy(f, USER_HOME)
        os.chmod(os.path.join(USER_HOME, os.path.basename(f)), 0o755)


def as_user(args):
    """nsw ARGS as USER_UID, and its environment."""
    cmd = ['setpriv', '--reuid=%d' % USER_UID, '--regid=%d' % USER_UID, '--clear-groups', os.path.join(USER_HOME, 'nsw')] + args
    env = {'HOME': USER_HOME, 'XDG_RUNTIME_DIR': os.path.join(USER_HOME, 'run'), 'PATH': os.environ.get('PATH', '/usr/bin:/bin')}
    return cmd, env


def nsw(args, env=None, timings=False, user=False, testing=False):
    """Run nsw (as USER_UID if user); return (wall seconds, peak RSS kB, timings dict or None)."""
    with tempfile.NamedTemporaryFile('r') as rss, tempfile.NamedTemporaryFile('r') as tm:
        e = dict(os.environ, **(env or {}))
        cmd = [NSW_TESTING if timings or testing else NSW] + args
        if user:
            cmd, e = as_user(args)
            os.chmod(rss.name, 0o666)
        if timings:
            e['NSW_TIMINGS'] = tm.name
        t0 = now()
        p = subprocess.run(['/usr/bin/time', '-f', '%M', '-o', rss.name] + cmd, env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = now() - t0
        if p.returncode != 0:
            raise SystemExit('nsw %s failed:\n%s%s' % (' '.join(args), p.stdout, p.stderr))
        data = tm.read()
        return t, int(rss.read().split()[-1]), (json.loads(data) if timings and data else None)


def verify_nsw_star(n):
    """The same checks as the baselines: N bridge ports, pings across."""
    out = subprocess.run(['bridge', '-j', '-n', LAB, 'link', 'show'], stdout=subprocess.PIPE, text=True, check=True).stdout
    ports = sum(1 for p in json.loads(out) if p.get('master') == 'br0')
    del bl.PING_TRIES[:]
    ok = (ports == n and bl.ping(LAB, bl.hostaddr(n)) and bl.ping(LAB + '-h1', bl.hostaddr(n))
          and bl.ping(LAB + '-h1', bl.hostaddr(max(1, n // 2))))
    if not ok:
        raise SystemExit('nsw star verification failed for N=%d (ports=%d)' % (n, ports))


def verify_user_star(n):
    """The same checks, from inside the user's lab (nsw exec)."""
    def inside(node, *cmd):
        c, e = as_user(['exec', LAB, node, '--'] + list(cmd))
        return subprocess.run(c, env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ports = sum(1 for p in json.loads(inside('host', 'bridge', '-j', 'link', 'show').stdout or '[]') if p.get('master') == 'br0')

    def ping(node, addr):
        return any(inside(node, 'ping', '-c', '1', '-W', '1', addr).returncode == 0 for _ in range(20))
    if not (ports == n and ping('host', bl.hostaddr(n)) and ping('h1', bl.hostaddr(n)) and ping('h1', bl.hostaddr(max(1, n // 2)))):
        raise SystemExit('nsw star verification (as a user) failed for N=%d (ports=%d)' % (n, ports))


def run_nsw_star(method, n):
    rec = {'method': method, 'n': n, 'load': bl.loadavg()}
    user = method == 'nsw-user'
    star_wasm = os.path.join(USER_HOME if user else GUESTS, 'star.wasm')
    args = ['run', star_wasm, '--name', LAB, '--', str(n)]
    if method == 'nsw-nov6':
        args.append('nov6')
    # Root without the privilege boundary, to show what the boundary costs.
    env = {'NSW_NO_BOUNDARY': '1'} if method == 'nsw-open' else None
    # (only nsw-testing reads NSW_NO_BOUNDARY: the release nsw has no such switch)
    rec['setup_s'], rec['rss_kb'], _ = nsw(args, env=env, user=user, testing=method == 'nsw-open')
    if user:
        verify_user_star(n)
        rec['verified'] = True
        rec['down_s'], _, _ = nsw(['down', LAB], user=True)
        rec['async_s'] = bl.settle(now())
        # (A zombie has ended already: init reaps the keeper when it gets to it.)
        ps = subprocess.run(['ps', '-u', str(USER_UID), '-o', 'stat=,args='], stdout=subprocess.PIPE, text=True).stdout
        if any(not line.strip().startswith('Z') for line in ps.splitlines()):
            raise SystemExit('nsw down (as a user) left processes behind:\n' + ps)
        return rec
    verify_nsw_star(n)
    rec['verified'] = True
    rec['ping_tries'] = max(bl.PING_TRIES)
    if method == 'nsw':
        # Seeing the lab: the kernel read back over netlink, every node.
        rec['show_s'], _, _ = nsw(['show', LAB, '--json'])
        rec['graph_s'], _, _ = nsw(['graph', LAB, '--format', 'dot'])
    rec['down_s'], _, _ = nsw(['down', LAB])
    rec['async_s'] = bl.settle(now())
    if any(os.path.exists('/run/netns/' + x) for x in (LAB, LAB + '-h1')):
        raise SystemExit('nsw down left namespaces behind')
    return rec


def run_baseline(method, n):
    del RSS[:]
    rec = bl.run_method(method, n)
    rec['rss_kb'] = max(RSS) if RSS else None
    return rec


def star(a):
    """Inside bxhost: every method, every N, rotated."""
    bl.assert_clean('start')
    if os.path.exists('/run/nsw/%s.journal' % LAB):
        raise SystemExit('lab %s exists; take it down first (nsw down %s)' % (LAB, LAB))
    # Compile star.wasm into the cache first: every measured run loads it
    # compiled, as any run after the first does.
    nsw(['run', '--rm', os.path.join(GUESTS, 'star.wasm'), '--name', LAB, '--', '1'])
    user_setup()
    nsw(['run', '--rm', os.path.join(USER_HOME, 'star.wasm'), '--name', LAB, '--', '1'], user=True)
    bl.settle(now())
    recs = []
    for n in [int(x) for x in a.ns.split(',')]:
        methods = ['nsw', 'nsw-open', 'nsw-nov6', 'nsw-user', 'batch', 'batch-nov6', 'pyroute2', 'ip', 'mininet']
        runs = a.runs if n <= 50 else (a.runs_200 if n <= 200 else 1)
        if a.quick:
            runs = 1
        if n >= 1000 and not a.full:
            methods = ['nsw', 'nsw-open', 'nsw-nov6', 'nsw-user', 'batch', 'batch-nov6', 'pyroute2']   # ip, mininet: 80 s each
        print('== N=%d runs=%d methods=%s load=%.2f' % (n, runs, methods, bl.loadavg()), flush=True)
        for r in range(runs):
            for m in methods[r % len(methods):] + methods[:r % len(methods)]:
                rec = run_nsw_star(m, n) if m.startswith('nsw') else run_baseline(m, n)
                rec['run'] = r
                recs.append(rec)
                print('  %-12s N=%-5d setup %8.3fs  down %8.3fs  async %6.3fs  rss %7s kB'
                      % (m, n, rec['setup_s'], rec['down_s'], rec['async_s'], rec.get('rss_kb')), flush=True)
    shutil.rmtree(USER_HOME, ignore_errors=True)
    with open(a.inner_out, 'w') as f:
        json.dump(recs, f)


def pbj(a):
    """The tutorial's script (one process per step) against nsw run --rm."""
    recs = []
    pbj_wasm = os.path.join(GUESTS, 'pbj.wasm')
    nsw(['run', '--rm', pbj_wasm, '--name', 'bxpbj'])          # warm the compiled cache
    bl.settle(now())
    for r in range(a.pbj_runs):
        order = ['tutorial', 'nsw'] if r % 2 == 0 else ['nsw', 'tutorial']
        for m in order:
            if m == 'tutorial':
                t0 = now()
                subprocess.run(['./seed-pbj.sh', 'up'], cwd=BASE, check=True, stdout=subprocess.DEVNULL)
                up = now() - t0
                subprocess.run(['./seed-pbj.sh', 'verify'], cwd=BASE, check=True, stdout=subprocess.DEVNULL)
                t0 = now()
                subprocess.run(['./seed-pbj.sh', 'down'], cwd=BASE, check=True)
                recs.append({'method': 'pbj-tutorial', 'setup_s': up, 'down_s': now() - t0, 'total_s': up + now() - t0})
            else:
                t, rss, tm = nsw(['run', '--rm', pbj_wasm, '--name', 'bxpbj'], timings=True)
                recs.append({'method': 'pbj-nsw', 'total_s': t, 'setup_s': tm['build_s'], 'down_s': tm['down_s'], 'rss_kb': rss})
            bl.settle(now())
    return recs


def startup(a):
    noop = os.path.join(GUESTS, 'noop.wasm')
    nsw(['run', '--rm', noop, '--name', 'bxnoop'])
    out = []
    for _ in range(a.startup_runs):
        t, rss, tm = nsw(['run', '--rm', noop, '--name', 'bxnoop'], timings=True)
        assert tm['from_cache'], 'the noop script did not come from the compiled cache'
        out.append({'wall_s': t, 'load_s': tm['load_s'], 'instantiate_s': tm['instantiate_s'], 'run_s': tm['run_s'],
                    'start_s': tm['load_s'] + tm['instantiate_s'] + tm['run_s'], 'rss_kb': rss})
    return out


def doing(a):
    """Labs that do things: service start-up from the compiled cache (the web
    lab's http-server: asked for -> its run called in its node), `nsw test
    web.wasm` end to end, and probe.throughput against iperf3 on one path."""
    web = os.path.join(GUESTS, 'web.wasm')
    nsw(['test', web, '--name', 'bxweb'])                       # warm the cache
    out = {'service_start_s': [], 'web_test_s': [], 'iperf3_gbps': [], 'probe_gbps': []}
    for _ in range(a.doing_runs):
        t, _, tm = nsw(['test', web, '--name', 'bxweb'], timings=True)
        out['web_test_s'].append(t)
        out['service_start_s'] += tm['service_starts_s']
    for _ in range(a.doing_runs):
        p = subprocess.run([NSW, 'run', '--rm', os.path.join(GUESTS, 'iperf.wasm'), '--name', 'bxiperf', '--allow', 'exec=iperf3', '--', '2'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise SystemExit('the iperf lab failed:\n' + p.stdout)
        for line in p.stdout.splitlines():
            for key, label in (('iperf3_gbps', 'iperf3: '), ('probe_gbps', 'probe.throughput: ')):
                if label in line:
                    out[key].append(float(line.split(label)[1].split()[0]))
    return out


def programs(a):
    """Programs in a node: starting 100 (per program, timed by the script
    itself), and `nsw down` of a lab running them: 100 that end on SIGTERM,
    and 100 that ignore it (one grace period for all, then SIGKILL)."""
    spawner = os.path.join(GUESTS, 'spawner.wasm')
    out = {'spawn_ms': [], 'down_s': [], 'down_stubborn_s': []}
    for _ in range(a.doing_runs):
        for extra, key in (([], 'down_s'), (['stubborn'], 'down_stubborn_s')):
            p = subprocess.run([NSW, 'run', spawner, '--name', 'bxprog', '--allow', 'exec=sleep,sh', '--', 'many', '100'] + extra,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                subprocess.run([NSW, 'down', 'bxprog'], stderr=subprocess.DEVNULL)
                raise SystemExit('the spawner lab failed:\n' + p.stdout)
            for line in p.stdout.splitlines():
                if 'programs started in' in line:
                    out['spawn_ms'].append(float(line.split('started in ')[1].split()[0]) / 100)
            t0 = now()
            subprocess.run([NSW, 'down', 'bxprog'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out[key].append(now() - t0)
    return out


def med(recs, method, n, key):
    xs = [r[key] for r in recs if r['method'] == method and r.get('n') == n and r.get(key) is not None]
    return median(xs) if xs else None


def fmt(x, unit='s'):
    if x is None:
        return '-'
    if unit == 'kB':
        return '%.1f MiB' % (x / 1024)
    return '%.4f' % x if x < 10 else '%.2f' % x


def ratio(x, ref):
    return '%.2f×' % (x / ref) if x is not None and ref else '-'


def report(star_recs, pbj_recs, start_recs, doing_recs, previous, program_recs=None):
    lines = []
    p = lines.append
    ns = sorted(set(r['n'] for r in star_recs))
    methods = []
    for r in star_recs:
        if r['method'] not in methods:
            methods.append(r['method'])
    p('Machine: %d cores, kernel %s; load average %s at the end.' % (os.cpu_count(), platform.release(), open('/proc/loadavg').read().split()[0]))
    p('Medians; ratios against `ip -batch` (method `batch`) measured in the same run.')
    p('')
    p('| method | N | runs | setup (s) | × batch | teardown (s) | × batch | + kernel async (s) | peak RSS | × batch | load |')
    p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for n in ns:
        rs, rd, rr = (med(star_recs, 'batch', n, k) for k in ('setup_s', 'down_s', 'rss_kb'))
        for m in methods:
            runs = sum(1 for r in star_recs if r['method'] == m and r['n'] == n)
            if not runs:
                continue
            s, d, rss = (med(star_recs, m, n, k) for k in ('setup_s', 'down_s', 'rss_kb'))
            asy, load = med(star_recs, m, n, 'async_s'), med(star_recs, m, n, 'load')
            p('| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %.2f |' % (
                m, n, runs, fmt(s), ratio(s, rs), fmt(d), ratio(d, rd), fmt(asy), fmt(rss, 'kB'), ratio(rss, rr), load))
    p('')
    tut = [r for r in pbj_recs if r['method'] == 'pbj-tutorial']
    ours = [r for r in pbj_recs if r['method'] == 'pbj-nsw']
    t_tot, n_tot = median([r['total_s'] for r in tut]), median([r['total_s'] for r in ours])
    p('| pbj lab, up + down | runs | total (s) | up (s) | down (s) |')
    p('|---|---:|---:|---:|---:|')
    p('| tutorial script (one `ip`/`iptables` process per step) | %d | %.4f | %.4f | %.4f |' % (
        len(tut), t_tot, median([r['setup_s'] for r in tut]), median([r['down_s'] for r in tut])))
    p('| `nsw run --rm pbj.wasm` (warm cache; whole process) | %d | %.4f | %.4f | %.4f |' % (
        len(ours), n_tot, median([r['setup_s'] for r in ours]), median([r['down_s'] for r in ours])))
    p('')
    p('nsw start-up from the compiled cache (a script that does nothing, %d runs, medians): '
      'load %.2f ms + instantiate %.3f ms + call run %.3f ms = %.2f ms; the whole `nsw run --rm` process %.1f ms, peak RSS %s.' % (
          len(start_recs), 1e3 * median([r['load_s'] for r in start_recs]), 1e3 * median([r['instantiate_s'] for r in start_recs]),
          1e3 * median([r['run_s'] for r in start_recs]), 1e3 * median([r['start_s'] for r in start_recs]),
          1e3 * median([r['wall_s'] for r in start_recs]), fmt(median([r['rss_kb'] for r in start_recs]), 'kB')))
    svc_ms = 1e3 * median(doing_recs['service_start_s'])
    iperf, probe = median(doing_recs['iperf3_gbps']), median(doing_recs['probe_gbps'])
    p('Labs that do things (medians): a service starts from the compiled cache in %.2f ms (%d starts: '
      'asked for -> its run called in its node); `nsw test web.wasm` takes %.3f s end to end (%d runs); '
      'on one veth path iperf3 moves %.2f Gbit/s and probe.throughput %.2f Gbit/s (%.2f× iperf3, %d runs of 2 s).' % (
          svc_ms, len(doing_recs['service_start_s']), median(doing_recs['web_test_s']), len(doing_recs['web_test_s']),
          iperf, probe, probe / iperf, len(doing_recs['probe_gbps'])))
    p('')
    # The targets of the performance issue.
    top = max(ns)
    targets = []

    def target(what, value, limit, shown):
        if value is None:
            targets.append((what, 'not measured', ''))
        else:
            targets.append((what, shown, 'met' if value <= limit else 'NOT met'))
    s_b = med(star_recs, 'batch', top, 'setup_s')
    target('star N=%d setup ≤ 0.6 × ip -batch' % top, (med(star_recs, 'nsw', top, 'setup_s') or 0) / s_b if s_b else None, 0.6,
           ratio(med(star_recs, 'nsw', top, 'setup_s'), s_b))
    pyr = med(star_recs, 'pyroute2', top, 'setup_s')
    if pyr:
        target('star N=%d setup faster than pyroute2' % top, med(star_recs, 'nsw', top, 'setup_s') / pyr, 1.0,
               ratio(med(star_recs, 'nsw', top, 'setup_s'), pyr) + ' of pyroute2')
    b6 = med(star_recs, 'batch-nov6', top, 'setup_s')
    if b6:
        target('star N=%d, IPv6 link-local off on both sides, ≤ 0.3 × ip -batch' % top,
               med(star_recs, 'nsw-nov6', top, 'setup_s') / b6, 0.3, ratio(med(star_recs, 'nsw-nov6', top, 'setup_s'), b6) + ' of batch-nov6')
    for n in (200, top):
        user, rooted = med(star_recs, 'nsw-user', n, 'setup_s'), med(star_recs, 'nsw', n, 'setup_s')
        if user is not None and rooted:
            target('star N=%d as an ordinary user (no root) ≤ 1.3 × as root' % n, user / rooted, 1.3, ratio(user, rooted) + ' of root')
        open_ = med(star_recs, 'nsw-open', n, 'setup_s')
        if open_ and rooted:
            target('star N=%d as root behind the privilege boundary ≤ 1.1 × without it' % n, rooted / open_, 1.1,
                   ratio(rooted, open_) + ' of NSW_NO_BOUNDARY=1')
    d_b = med(star_recs, 'batch', top, 'down_s')
    nd = med(star_recs, 'nsw', top, 'down_s')
    if d_b:
        target('teardown N=%d ≤ 0.1 × ip -batch per-link delete' % top, nd / d_b, 0.1, ratio(nd, d_b))
        na = med(star_recs, 'nsw', top, 'async_s')
        target('  ... counting the kernel\'s asynchronous cleanup too', (nd + na) / d_b, 0.1, ratio(nd + na, d_b))
    target('pbj end to end ≥ 4 × faster than the tutorial', n_tot / t_tot, 0.25, '%.1f× faster' % (t_tot / n_tot))
    start_ms = 1e3 * median([r['start_s'] for r in start_recs])
    target('Rust guest start from the warm cache < 5 ms', start_ms, 5.0, '%.2f ms' % start_ms)
    rss = med(star_recs, 'nsw', top, 'rss_kb')
    target('nsw peak RSS at N=%d < 100 MiB' % top, (rss or 0) / 1024, 100.0, fmt(rss, 'kB'))
    target('service start-up from the compiled cache < 5 ms', svc_ms, 5.0, '%.2f ms' % svc_ms)
    target('probe.throughput within 2× of iperf3', max(iperf / probe, probe / iperf), 2.0, '%.2f× iperf3' % (probe / iperf))
    if program_recs and program_recs['spawn_ms']:
        spawn = median(program_recs['spawn_ms'])
        target('start a program in a node < 10 ms', spawn, 10.0, '%.2f ms' % spawn)
        d = median(program_recs['down_s'])
        target('nsw down of a lab of 100 programs < 3 s', d, 3.0, '%.2f s' % d)
        ds = median(program_recs['down_stubborn_s'])
        target('  ... 100 programs that ignore SIGTERM < 3 s', ds, 3.0, '%.2f s' % ds)
    show = med(star_recs, 'nsw', top, 'show_s')
    target('nsw show --json at N=%d < 1 s' % top, show, 1.0, '%.3f s' % show if show is not None else '-')
    graph = med(star_recs, 'nsw', top, 'graph_s')
    target('nsw graph at N=%d < 1 s' % top, graph, 1.0, '%.3f s' % graph if graph is not None else '-')
    p('| target | measured | |')
    p('|---|---|---|')
    for what, shown, verdict in targets:
        p('| %s | %s | %s |' % (what, shown, verdict))
    if previous:
        p('')
        p('Change since the previous run (%s), setup medians:' % previous.get('when', '?'))
        p('')
        p('| method | N | before (s) | now (s) |')
        p('|---|---:|---:|---:|')
        for n in ns:
            for m in methods:
                before, after = med(previous['star'], m, n, 'setup_s'), med(star_recs, m, n, 'setup_s')
                if before is not None and after is not None:
                    p('| %s | %d | %s | %s |' % (m, n, fmt(before), fmt(after)))
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ns', default='2,10,50,200,1000')
    ap.add_argument('--runs', type=int, default=5, help='repetitions for N <= 50 (N=200: --runs-200, N=1000: 1)')
    ap.add_argument('--runs-200', type=int, default=3, help='repetitions for 50 < N <= 200 (more for a steadier boundary ratio)')
    ap.add_argument('--full', action='store_true', help='at N=1000 also the ip-per-step and Mininet methods (80 s each)')
    ap.add_argument('--quick', action='store_true', help='one repetition of everything')
    ap.add_argument('--pbj-runs', type=int, default=15)
    ap.add_argument('--startup-runs', type=int, default=30)
    ap.add_argument('--doing-runs', type=int, default=5, help='runs of the web test and the iperf lab')
    ap.add_argument('--inner-out', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('run as root')
    if a.inner_out:
        return star(a)
    for f in (NSW, NSW_TESTING, *(os.path.join(GUESTS, g + '.wasm') for g in ('star', 'noop', 'web', 'iperf', 'spawner'))):
        if not os.path.exists(f):
            raise SystemExit('%s is missing: run scripts/build first' % f)
    # The star runs inside an outer namespace bxhost, as the baselines need.
    if os.path.exists('/run/netns/bxhost'):
        raise SystemExit('bxhost exists already; remove it first')
    inner = tempfile.NamedTemporaryFile(suffix='.json', delete=False).name
    subprocess.run(['ip', 'netns', 'add', 'bxhost'], check=True)
    try:
        argv = [sys.executable, os.path.abspath(__file__), '--inner-out', inner, '--ns', a.ns, '--runs', str(a.runs), '--runs-200', str(a.runs_200)]
        argv += ['--full'] if a.full else []
        argv += ['--quick'] if a.quick else []
        rc = subprocess.run(['ip', 'netns', 'exec', 'bxhost'] + argv).returncode
    finally:
        for p in os.listdir('/run/netns'):
            if p.startswith('bxh') and p != 'bxhost' or p.startswith(LAB):
                subprocess.run(['ip', 'netns', 'del', p], stderr=subprocess.DEVNULL)
        subprocess.run(['ip', 'netns', 'del', 'bxhost'])
    if rc != 0:
        raise SystemExit('the star benchmark failed')
    with open(inner) as f:
        star_recs = json.load(f)
    os.unlink(inner)
    print('== pbj: the tutorial script against nsw run --rm (%d runs each)' % a.pbj_runs, flush=True)
    pbj_recs = pbj(a)
    print('== nsw start-up (%d runs)' % a.startup_runs, flush=True)
    start_recs = startup(a)
    print('== labs that do things (%d runs each)' % a.doing_runs, flush=True)
    doing_recs = doing(a)
    print('== programs in a node (%d runs each)' % a.doing_runs, flush=True)
    program_recs = programs(a)
    os.makedirs(RESULTS, exist_ok=True)
    previous = None
    prev_path = os.path.join(RESULTS, 'results.json')
    if os.path.exists(prev_path):
        with open(prev_path) as f:
            previous = json.load(f)
    table = report(star_recs, pbj_recs, start_recs, doing_recs, previous, program_recs)
    print()
    print(table)
    when = time.strftime('%Y-%m-%d %H:%M:%S')
    with open(os.path.join(RESULTS, 'results.md'), 'w') as f:
        f.write('# nsw beside the baselines (%s)\n\nWritten by `scripts/bench`.\n\n' % when + table)
    with open(prev_path, 'w') as f:
        json.dump({'when': when, 'host': bl.host_info(), 'star': star_recs, 'pbj': pbj_recs, 'startup': start_recs, 'doing': doing_recs,
                   'programs': program_recs}, f, indent=1)
    print('written: bench/results.md, bench/results.json')


if __name__ == '__main__':
    sys.exit(main())
