#!/usr/bin/env python3
"""tests/threads/run.py - concurrency inside a FastCGI process ([receiver]
threads, group commit, [podio] inline_verifications) and the --listen log
lines and SIGHUP reload.

    python3 tests/threads/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                 [-v]

Real servers only: lighttpd with the shipped
lighttpd/podio-hook-fastcgi.conf (only its var.podio_hook_* values
replaced), `podio-hook --listen` driven by a small FastCGI client
(tests/lib/fcgiclient.py), the fake Podio API over HTTPS
(tests/podio/fake_podio.py, driven by tests/lib/fakepodio.py), curl for
HTTP, `podio-hook drain` for the consumer side.  Cases:

  threads-at-once      one --listen process, [receiver] threads = 4,
                       inline_verifications = 3, validate hanging: three
                       hook.verify in flight at once, an ordinary event
                       answered meanwhile, a fourth hook.verify deferred.
  verify-flood         lighttpd, shipped config, defaults (2 processes x
                       4 threads, inline_verifications = 1), validate
                       hanging: a flood of hook.verify never delays an
                       ordinary event beyond 1 s; validations never
                       overlap; the rest spooled as deferred.
  shipped-slots        the shipped server configs give more request slots
                       (processes x threads) than inline_verifications.
  group-commit         lighttpd, sync = yes, fdatasync slowed by an
                       LD_PRELOAD shim: concurrent events all answered 200
                       and spooled once, with fewer fdatasync calls than
                       events.
  sync-fails           the shim failing every fdatasync: every concurrent
                       event is answered 503 (each was covered by a failed
                       sync), lines stay whole; 200 once syncs succeed.
  claims-during-load   drains claiming the spool again and again while
                       threads append: every acknowledged event handed
                       over exactly once.
  listen-lines         --listen logs one line at start, one at the stop;
                       SIGTERM exits 0.
  sighup-reload        SIGHUP re-reads the config before the next request
                       (logged); a bad config keeps the one in use and says
                       why.
  config-late          --listen without its config: 500 naming it (from
                       several threads at once); once it is written, the
                       next requests load it and answer 200.
  term-in-flight       SIGTERM with several requests in flight: each is
                       answered and spooled, then exit 0.
  mixed-load           events of several types (sync yes), verifications
                       and SIGHUP reloads at once: every 2xx spooled once.
                       With a ThreadSanitizer build (make tsan) this is
                       the load it watches.

With a ThreadSanitizer build (or ASan + UBSan) every process writes its
reports under the temporary tree (TSAN_OPTIONS, ASAN_OPTIONS and
UBSAN_OPTIONS log_path); any report fails the run.

Prints "ok - NAME", "skip - NAME: WHY" or "FAIL - NAME: WHY" (then "#"
lines of evidence) per case and, as its last line, "N passed, M failed,
K skipped" (tests/lib/harness.py's Suite, which also gives the options).
Exit status 1 when anything failed.  Python 3 standard
library only; needs lighttpd, curl, openssl, cc (for the shim).  As root
the servers run podio-hook as www-data.  About 40 s (a few minutes under
ThreadSanitizer).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, Skip, form  # noqa: E402
from harness import expect as check  # noqa: E402
import fakepodio as pod  # noqa: E402  (the fake Podio)
import fcgiclient  # noqa: E402  (a FastCGI client)

FORM = 'application/x-www-form-urlencoded'
TIMEOUT = 3             # [podio] timeout where a validate hangs
HANG = 30               # ... and how long the fake hangs
FLOOD_SECONDS = 6.0     # verify-flood: how long the flood lasts
FLOOD_PARALLEL = 8      # ... concurrent hook.verify
ORDINARY_EVERY = 0.1    # ... an ordinary event this often
ORDINARY_MAX = 1.0      # the bound on an ordinary event's latency (s)
DEADLINE = 600          # the whole run, seconds (a watchdog, not a goal)


# --------------------------------------------------------------------------
# The temporary world

def nm_has(binary, symbol):
    r = subprocess.run(['nm', binary], capture_output=True, text=True)
    return symbol in r.stdout


class World:
    def __init__(self, binary):
        self.top = tempfile.mkdtemp(prefix='podio-hook-threads-')
        os.chmod(self.top, 0o755)
        self.bin = harness.copy_binary(binary, self.top)
        self.ids = harness.run_ids()
        self.tsan = nm_has(binary, '__tsan_init')
        self.asan = nm_has(binary, '__asan_init')
        self.tsan_dir = self.sub('tsan', run_owned=True)
        os.chmod(self.tsan_dir, 0o777)
        self.procs = []         # Popen of everything we started
        self.fakes = []
        self.certs = None
        self.seq = 0

    def sub(self, name, run_owned=False):
        return harness.subdir(self.top, name, run_owned)

    def env(self, extra=None):
        """The environment every podio-hook (and the servers starting it)
        gets: under ThreadSanitizer, where its reports go."""
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C'}
        if self.tsan:
            env['TSAN_OPTIONS'] = ('log_path=%s/report halt_on_error=0 '
                                   'second_deadlock_stack=1'
                                   % self.tsan_dir)
        if self.asan:
            env['ASAN_OPTIONS'] = 'log_path=%s/report' % self.tsan_dir
            env['UBSAN_OPTIONS'] = ('log_path=%s/report print_stacktrace=1'
                                    % self.tsan_dir)
        env.update(extra or {})
        return env

    def start(self, argv, log, extra_env=None, as_run_user=True):
        kw = harness.run_as(self.ids) if as_run_user else {}
        with open(log, 'ab') as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err,
                                 stderr=err, env=self.env(extra_env),
                                 cwd='/', start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def get_certs(self):
        if self.certs is None:
            self.certs = pod.Certs(self.sub('certs'))
            for f in os.listdir(self.certs.dir):
                os.chmod(os.path.join(self.certs.dir, f), 0o644)
        return self.certs

    def fake(self, name, **scenario):
        certs = self.get_certs()
        d = self.sub('fake-' + name)
        f = pod.Fake(d, certs, pod.base_scenario(**scenario))
        self.fakes.append(f)
        return f

    def spool(self, name):
        d = self.sub(name)
        spool = os.path.join(d, 'spool')
        os.mkdir(spool)
        harness.chown_run(spool, 0o755)
        return d, spool

    def tsan_reports(self):
        out = []
        for f in sorted(os.listdir(self.tsan_dir)):
            with open(os.path.join(self.tsan_dir, f), 'rb') as fh:
                out.append((f, fh.read().decode('utf-8', 'replace')))
        return out

    def stop_all(self):
        """Stops what the case started, by PID; -> problems."""
        problems = []
        for p in reversed(self.procs):
            if p.poll() is None:
                if harness.terminate(p, 20):
                    problems.append('pid %d ignored SIGTERM; killed' % p.pid)
        self.procs = []
        for f in self.fakes:
            f.stop()
        self.fakes = []
        # lighttpd stops its FastCGI processes; give them time to finish
        # (longer under ThreadSanitizer, which checks at exit).
        deadline = time.monotonic() + 10
        left = harness.pids(self.bin)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = harness.pids(self.bin)
        if left:
            harness.sigkill_pids(left)
            problems.append('podio-hook processes %s outlived their '
                            'servers (killed)' % left)
        return problems


def write_ini(world, d, spool, sync='yes', receiver=None, podio=None,
              name='podio-hook.ini', level='debug'):
    text = '[spool]\ndir = %s\nsync = %s\nfile_mode = 0640\n\n' % (spool,
                                                                  sync)
    if receiver:
        text += '[receiver]\n' + ''.join('%s = %s\n' % kv
                                         for kv in receiver.items()) + '\n'
    if podio:
        text += '[podio]\n' + ''.join('%s = %s\n' % kv
                                      for kv in podio.items()) + '\n'
    text += '[log]\nlevel = %s\n' % level
    path = os.path.join(d, name)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    harness.give_config(tmp)
    os.replace(tmp, path)
    return path


def podio_keys(world, fake, **over):
    keys = {'api_url': fake.url, 'client_id': pod.CLIENT_ID,
            'client_secret': pod.CLIENT_SECRET, 'app_id': pod.APP_ID,
            'app_token': pod.APP_TOKEN, 'timeout': str(TIMEOUT),
            'ca_file': world.get_certs().ca}
    keys.update({k: str(v) for k, v in over.items()})
    return keys


def event(marker, etype='item.create'):
    return form([('type', etype), ('item_id', '42'), ('hook_id', '1001'),
                 ('marker', marker)])


def read_records(spool, etype):
    """(records, torn pieces) of {spool}/{etype}.jsonl."""
    path = os.path.join(spool, etype + '.jsonl')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return [], []
    parts = data.split(b'\n')
    tail = parts.pop()
    recs, torn = [], [tail] if tail else []
    for p in parts:
        try:
            recs.append(json.loads(p))
        except ValueError:
            torn.append(p)
    return recs, torn


def podio_lines(text, level=None):
    out = []
    for line in text.splitlines():
        i = line.find('podio-hook[')
        if i >= 0 and (level is None or ': %s: ' % level in line[i:]):
            out.append(line[i:])
    return out


def read_file(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def wait_for(what, cond, seconds, evidence=()):
    deadline = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure('%s: not within %s s' % (what, seconds),
                          evidence() if callable(evidence) else evidence)
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Servers

class Lighttpd(harness.Lighttpd):
    """The shipped FastCGI snippet (harness.Lighttpd), started through the
    world (its environment carries the sanitizers' options)."""

    def __init__(self, world, d, ini, env=None):
        super().__init__(d, world.bin, ini, env)
        self.world = world
        self.port = harness.free_port()

    def start(self):
        self.proc = self.world.start(self.argv(), self.stderr_path,
                                     self.env, as_run_user=False)
        return self.wait_ready()

    def url(self):
        return 'http://127.0.0.1:%d/hook' % self.port

    def logs(self):
        return harness.read_logs(self.log_paths())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            harness.terminate(self.proc, 10)


class Curl:
    """Posts with curl: one request, or many at once (--parallel)."""

    def __init__(self, world, d):
        self.world = world
        self.dir = os.path.join(d, 'curl')
        os.makedirs(self.dir, exist_ok=True)

    def post(self, url, body, timeout=30):
        """-> (status, body, seconds) as curl measured them."""
        self.world.seq += 1
        base = os.path.join(self.dir, 'r%06d' % self.world.seq)
        with open(base + '.req', 'w') as f:
            f.write(body)
        r = subprocess.run(
            ['curl', '-sS', '--max-time', str(timeout), '-o', base + '.out',
             '-w', '%{http_code} %{time_total}', '-H', 'Expect:',
             '-H', 'Content-Type: ' + FORM, '--data-binary',
             '@' + base + '.req', url],
            capture_output=True, text=True, timeout=timeout + 10)
        code, _, secs = r.stdout.strip().partition(' ')
        return int(code or 0), read_file(base + '.out'), float(secs or 0)

    def many(self, url, bodies, parallel, timeout=60):
        """Posts bodies (a dict name -> body) at once; -> {name: status}."""
        self.world.seq += 1
        base = os.path.join(self.dir, 'm%06d' % self.world.seq)
        os.mkdir(base)
        cfg = base + '.cfg'
        with open(cfg, 'w') as f:
            for i, (name, body) in enumerate(bodies.items()):
                f.write('url = "%s"\n' % url)
                f.write('data-binary = "%s"\n' % body)
                f.write('header = "Content-Type: %s"\n' % FORM)
                f.write('header = "Expect:"\n')
                f.write('output = "%s/%s"\n' % (base, name))
                f.write('write-out = "%{http_code} %{filename_effective}'
                        '\\n"\n')
                f.write('max-time = %d\n' % timeout)
                if i != len(bodies) - 1:
                    f.write('next\n')
        r = subprocess.run(['curl', '-sS', '--parallel', '--parallel-max',
                            str(parallel), '-K', cfg], capture_output=True,
                           text=True, timeout=timeout + 60)
        out = {}
        for line in r.stdout.splitlines():
            code, _, fname = line.partition(' ')
            out[os.path.basename(fname)] = int(code or 0)
        return out


class Listener:
    """podio-hook --listen 127.0.0.1:PORT, as the run user."""

    def __init__(self, world, d, ini):
        self.world = world
        self.ini = ini
        self.port = harness.free_port()
        self.log = os.path.join(d, 'listen.log')
        self.proc = world.start([world.bin, '--config', ini, '--listen',
                                 '127.0.0.1:%d' % self.port], self.log)
        fcgiclient.wait_listening(self.proc, self.port, self.log, 20)

    def request(self, body, timeout=30):
        """-> (status, body bytes, seconds)."""
        env, raw = fcgiclient.cgi_post(body)
        t0 = time.monotonic()
        client = fcgiclient.FcgiClient(self.port, timeout)
        st, _, out = client.request(env, raw)
        return st, out, time.monotonic() - t0

    def text(self):
        return read_file(self.log)

    def stop(self, sig=signal.SIGTERM, wait=20):
        """Sends sig by PID; -> exit status (None if it had to be
        killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None


def in_background(fn, *args):
    """Runs fn(*args) in a thread; -> (thread, result list)."""
    res = []

    def run():
        try:
            res.append(fn(*args))
        except Exception as e:  # reported by the caller
            res.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def validates(fake):
    return [e for e in fake.requests()
            if e.get('path', '').endswith('/verify/validate')]


def verify_body(hook, code):
    return pod.verify_body(hook, code)


# --------------------------------------------------------------------------
# Cases

def t_threads_at_once(world):
    d, spool = world.spool('at-once')
    fake = world.fake('at-once', hang_seconds=HANG)
    ini = write_ini(world, d, spool, receiver={'threads': 4},
                    podio=podio_keys(world, fake, inline_verifications=3))
    srv = Listener(world, d, ini)
    hooks = [(42, pod.CODE42), (43, pod.CODE43), (77, pod.CODE77)]
    pending = [in_background(srv.request, verify_body(h, c))
               for h, c in hooks]
    wait_for('three validations in flight at the fake at once',
             lambda: len(validates(fake)) >= 3, 10,
             lambda: ['fake saw %s' % [e.get('path')
                                        for e in fake.requests()],
                      srv.text()[-2000:]])
    # Three threads wait on Podio; the fourth serves an ordinary event.
    st, out, secs = srv.request(event('while-verifying'))
    check(st == 200 and secs < ORDINARY_MAX,
          'an ordinary event while 3 verifications hang: %s %r after '
          '%.2f s, want 200 within %.1f s' % (st, out, secs, ORDINARY_MAX))
    busy_before = all(t.is_alive() for t, _ in pending)
    # A fourth hook.verify finds no slot: spooled as deferred at once.
    st, out, secs = srv.request(verify_body(99, 'code-99'))
    check(st == 200 and secs < ORDINARY_MAX,
          'a hook.verify with every slot taken: %s %r after %.2f s, want '
          '200 at once' % (st, out, secs))
    for t, res in pending:
        t.join(TIMEOUT + 10)
        check(res and not isinstance(res[0], Exception) and res[0][0] == 200,
              'a hanging verification was answered %r' % (res,))
    recs, torn = read_records(spool, 'hook.verify')
    check(not torn, 'torn lines in hook.verify.jsonl: %r' % torn)
    by_hook = {r['params']['hook_id']: r['verification'] for r in recs}
    check(sorted(by_hook) == ['42', '43', '77', '99'],
          'hook.verify.jsonl holds hooks %s' % sorted(by_hook))
    check(by_hook['99']['status'] == 'deferred' and
          'hook validate 99' in by_hook['99']['detail'] and
          'inline_verifications' in by_hook['99']['detail'],
          'the fourth verification: %r, want deferred naming '
          'inline_verifications and hook validate' % by_hook['99'])
    for h in ('42', '43', '77'):
        check(by_hook[h]['status'] == 'failed' and
              re.search(r'time', by_hook[h]['detail'], re.I),
              'hook %s: %r, want failed (timed out)' % (h, by_hook[h]))
    recs, _ = read_records(spool, 'item.create')
    check([r['params']['marker'] for r in recs] == ['while-verifying'],
          'item.create.jsonl holds %r' % recs)
    check(len(validates(fake)) == 3, 'the fake saw %d validations, want 3 '
          '(the deferred one never calls Podio)' % len(validates(fake)))
    check(busy_before, 'the verifications were not all still in flight '
          'when the event was answered')
    rc = srv.stop()
    check(rc == 0, '--listen exited %s after SIGTERM, want 0' % rc)
    return ('3 validations hanging in one process; event answered in '
            '%.3f s; the 4th verify deferred' % secs)


def t_verify_flood(world):
    d, spool = world.spool('flood')
    fake = world.fake('flood', hang_seconds=HANG)
    ini = write_ini(world, d, spool, podio=podio_keys(world, fake),
                    level='info')
    srv = Lighttpd(world, d, ini).start()
    curl = Curl(world, d)
    stop = threading.Event()
    flood = {}
    lock = threading.Lock()

    def flooder(k):
        n = 0
        while not stop.is_set():
            n += 1
            hook = 1000 + k * 1000 + n
            st, out, secs = curl.post(srv.url(), verify_body(hook, 'c%d'
                                                              % hook))
            with lock:
                flood[str(hook)] = (st, secs)
    threads = [threading.Thread(target=flooder, args=(k,), daemon=True)
               for k in range(FLOOD_PARALLEL)]
    for t in threads:
        t.start()
    ordinary = []
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < FLOOD_SECONDS:
        i += 1
        st, out, secs = curl.post(srv.url(), event('flood-%d' % i))
        ordinary.append(('flood-%d' % i, st, secs))
        time.sleep(ORDINARY_EVERY)
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 30)
    worst = max(s for _, _, s in ordinary)
    ev = ['ordinary events: %d, slowest %.3f s' % (len(ordinary), worst),
          'hook.verify sent: %d' % len(flood)]
    check(all(st == 200 for _, st, _ in ordinary),
          'ordinary events not all 200: %s'
          % [o for o in ordinary if o[1] != 200][:5], ev)
    check(worst < ORDINARY_MAX,
          'an ordinary event took %.3f s under the flood, bound %.1f s'
          % (worst, ORDINARY_MAX), ev + srv.logs().splitlines()[-10:])
    check(all(st == 200 for st, _ in flood.values()),
          'hook.verify not all 200: %s'
          % [(h, v) for h, v in flood.items() if v[0] != 200][:5], ev)
    check(len(flood) >= 3 * FLOOD_PARALLEL, 'only %d hook.verify sent: '
          'no flood' % len(flood), ev)
    recs, torn = read_records(spool, 'hook.verify')
    check(not torn, 'torn hook.verify lines: %r' % torn[:3], ev)
    status = {}
    for r in recs:
        status[r['verification']['status']] = status.get(
            r['verification']['status'], 0) + 1
    check(len(recs) == len(flood) and
          sorted(r['params']['hook_id'] for r in recs) == sorted(flood),
          'hook.verify.jsonl holds %d records for %d sent'
          % (len(recs), len(flood)), ev)
    check(set(status) == {'failed', 'deferred'},
          'verification statuses %s, want failed (timed out) and deferred'
          % status, ev)
    recs, torn = read_records(spool, 'item.create')
    check(sorted(r['params']['marker'] for r in recs) ==
          sorted(m for m, _, _ in ordinary) and not torn,
          'item.create.jsonl does not hold each ordinary event once', ev)
    # At most inline_verifications (1) in flight across both processes:
    # each validation hangs until [podio] timeout, so they start at least
    # that far apart.
    starts = sorted(e['time'] for e in validates(fake))
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    check(len(starts) >= 2, 'only %d validations reached the fake: the '
          'slot was never given back' % len(starts), ev)
    check(min(gaps) >= TIMEOUT - 0.5,
          'two validations overlapped: starts %.2f s apart (timeout %d s)'
          % (min(gaps), TIMEOUT), ev + ['starts: %s' % starts])
    return ('%d ordinary events, slowest %.3f s; %d hook.verify: %s; '
            '%d validations, never overlapping'
            % (len(ordinary), worst, len(flood), status, len(starts)))


def t_shipped_slots(world):
    text = read_file(os.path.join(REPO, 'lighttpd',
                                  'podio-hook-fastcgi.conf'))
    m = re.search(r'"max-procs"\s*=>\s*(\d+)', text)
    check(m, 'no max-procs in lighttpd/podio-hook-fastcgi.conf')
    procs = int(m.group(1))
    example = read_file(os.path.join(REPO, 'cgi-bin',
                                     'podio-hook.ini.example'))

    def default(key, builtin):
        mm = re.search(r'(?m)^;?\s*%s\s*=\s*(\d+)' % key, example)
        check(mm, 'cgi-bin/podio-hook.ini.example does not show %s' % key)
        check(int(mm.group(1)) == builtin, 'the example shows %s = %s, the '
              'built-in default is %d' % (key, mm.group(1), builtin))
        return builtin
    threads = default('threads', 4)
    inline = default('inline_verifications', 1)
    text = read_file(os.path.join(REPO, 'apache', 'podio-hook-fcgid.conf'))
    m = re.search(r'(?m)^\s*FcgidMaxProcessesPerClass\s+(\d+)', text)
    check(m, 'no FcgidMaxProcessesPerClass in apache/podio-hook-fcgid.conf')
    fcgid = int(m.group(1))   # mod_fcgid: one request per process
    slots = {'lighttpd FastCGI (max-procs x threads)': procs * threads,
             'Apache mod_fcgid (processes, 1 request each)': fcgid,
             'Apache mod_proxy_fcgi / systemd (--listen, threads)': threads}
    for what, n in slots.items():
        check(n > inline, '%s: %d request slots, not more than '
              'inline_verifications = %d' % (what, n, inline))
    # The real thing: the configured default, as loaded.
    d, spool = world.spool('slots')
    ini = write_ini(world, d, spool)
    srv = Listener(world, d, ini)
    # Read after the stop: the socket accepts before the line is written.
    rc = srv.stop()
    line = [l for l in podio_lines(srv.text(), 'info')
            if 'listening on' in l]
    check(line and 'threads=%d' % threads in line[0],
          '--listen with the defaults logged %r, want threads=%d'
          % (line, threads))
    check(rc == 0, 'exit status %s' % rc)
    return '; '.join('%s: %d' % kv for kv in slots.items()) + \
        '; inline_verifications = %d' % inline


SHIM_C = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
/*
 * podio-hook threads test: each fdatasync sleeps SHIM_DELAY_US first and
 * appends one byte to SHIM_COUNT (one O_APPEND write, so processes count
 * into one file); it fails with EIO while the file SHIM_FAIL exists.
 */
int fdatasync(int fd)
{
	const char *count = getenv("SHIM_COUNT");
	const char *delay = getenv("SHIM_DELAY_US");
	const char *failf = getenv("SHIM_FAIL");
	if (delay != NULL)
		usleep((useconds_t)atoi(delay));
	if (count != NULL) {
		int c = open(count, O_WRONLY | O_APPEND | O_CREAT, 0666);
		if (c >= 0) {
			if (write(c, "s", 1) != 1)
				errno = 0;
			close(c);
		}
	}
	if (failf != NULL && access(failf, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}
'''


def build_shim(world):
    if world.asan:
        raise Skip('an ASan build refuses an LD_PRELOAD shim; the plain '
                   'and ThreadSanitizer builds run this case')
    cc = shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        raise Skip('no C compiler to build the LD_PRELOAD shim')
    d = os.path.join(world.top, 'shim')
    so = os.path.join(d, 'slow_fdatasync.so')
    if not os.path.exists(so):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        src = os.path.join(d, 'slow_fdatasync.c')
        with open(src, 'w') as f:
            f.write(SHIM_C)
        r = subprocess.run([cc, '-shared', '-fPIC', '-O2', '-o', so, src,
                            '-ldl'], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0, 'building the shim failed: %s'
              % r.stderr[:300])
        os.chmod(so, 0o755)
    return so


def shim_server(world, name, delay_us):
    so = build_shim(world)
    d, spool = world.spool(name)
    count = os.path.join(d, 'syncs')
    failf = os.path.join(d, 'fail-now')
    open(count, 'w').close()
    os.chmod(count, 0o666)
    ini = write_ini(world, d, spool, sync='yes', level='info')
    srv = Lighttpd(world, d, ini, env={
        'LD_PRELOAD': so, 'SHIM_COUNT': count, 'SHIM_FAIL': failf,
        'SHIM_DELAY_US': str(delay_us)}).start()
    # lighttpd passes its environment on to bin-path processes.
    for pid in srv.children():
        env = open('/proc/%d/environ' % pid, 'rb').read().split(b'\0')
        if ('LD_PRELOAD=' + so).encode() not in env:
            raise Skip('LD_PRELOAD did not reach the FastCGI processes')
    return srv, d, spool, count, failf


def syncs(count):
    return os.path.getsize(count)


def t_group_commit(world):
    srv, d, spool, count, _ = shim_server(world, 'group', 5000)
    curl = Curl(world, d)
    warm = curl.post(srv.url(), event('warm'))
    check(warm[0] == 200, 'warm-up event answered %r' % (warm,))
    before = syncs(count)
    n = 64
    bodies = {'e%03d' % i: event('gc-%03d' % i) for i in range(n)}
    got = curl.many(srv.url(), bodies, 16)
    used = syncs(count) - before
    check(len(got) == n and all(v == 200 for v in got.values()),
          'answers %s, want %d x 200'
          % (sorted(set(got.values())), n))
    recs, torn = read_records(spool, 'item.create')
    markers = [r['params']['marker'] for r in recs]
    check(not torn and sorted(markers) == sorted(['warm'] + [
        'gc-%03d' % i for i in range(n)]),
        'item.create.jsonl does not hold each event once (%d records, %d '
        'torn)' % (len(recs), len(torn)))
    check(0 < used < n, '%d fdatasync calls for %d concurrent events: no '
          'sync served more than one' % (used, n))
    return '%d events at concurrency 16, %d fdatasync calls' % (n, used)


def t_sync_fails(world):
    srv, d, spool, count, failf = shim_server(world, 'syncfail', 100000)
    curl = Curl(world, d)
    check(curl.post(srv.url(), event('warm'))[0] == 200, 'warm-up failed')
    open(failf, 'w').close()
    n = 16
    bodies = {'f%02d' % i: event('sf-%02d' % i) for i in range(n)}
    got = curl.many(srv.url(), bodies, n)
    check(len(got) == n and all(v == 503 for v in got.values()),
          'with every fdatasync failing, answers %s: want 503 for each '
          'event a failed sync covered' % sorted(got.items()),
          srv.logs().splitlines()[-6:])
    errs = [l for l in podio_lines(srv.logs(), 'error')
            if 'fdatasync' in l and spool in l]
    check(errs, 'no error line naming fdatasync and the spool',
          srv.logs().splitlines()[-6:])
    os.unlink(failf)
    st = curl.post(srv.url(), event('after'))[0]
    check(st == 200, 'once syncs succeed again: %s, want 200' % st)
    recs, torn = read_records(spool, 'item.create')
    check(not torn, 'torn lines: %r' % torn[:3])
    markers = [r['params']['marker'] for r in recs]
    check(markers[0] == 'warm' and markers[-1] == 'after',
          'spool order %s' % markers)
    return '%d concurrent events refused; %d error lines, e.g. %s' % (
        n, len(errs), errs[0][:120])


def drain_once(world, ini, out_dir, k):
    out = os.path.join(out_dir, 'drain%04d.out' % k)
    with open(out, 'wb') as f:
        r = subprocess.run([world.bin, '--config', ini, 'drain'],
                           stdout=f, stderr=subprocess.PIPE, timeout=60,
                           cwd='/', env=world.env(),
                           **harness.run_as(world.ids))
    return r.returncode, r.stderr.decode('utf-8', 'replace'), out


def t_claims_during_load(world):
    d, spool = world.spool('claims')
    ini = write_ini(world, d, spool, sync='yes', level='info')
    srv = Lighttpd(world, d, ini).start()
    curl = Curl(world, d)
    out_dir = os.path.join(d, 'drained')
    os.mkdir(out_dir)
    stop = threading.Event()
    runs = []

    def drainer():
        k = 0
        while not stop.is_set():
            k += 1
            runs.append(drain_once(world, ini, out_dir, k))
            time.sleep(0.05)
    t = threading.Thread(target=drainer, daemon=True)
    t.start()
    n = 1500
    kinds = ('item.create', 'item.update', 'comment.create')
    bodies = {'c%05d' % i: event('cl-%05d' % i, kinds[i % 3])
              for i in range(n)}
    got = curl.many(srv.url(), bodies, 16, timeout=120)
    stop.set()
    t.join(60)
    runs.append(drain_once(world, ini, out_dir, 9999))
    acked = {'cl-' + k[1:] for k, v in got.items() if v == 200}
    seen = {}
    bad = []
    for rc, err, out in runs:
        if rc not in (0,):
            bad.append('drain exited %d: %s' % (rc, err[-300:]))
        with open(out, 'rb') as f:
            for line in f.read().split(b'\n')[:-1]:
                rec = json.loads(line)
                m = rec['params']['marker']
                seen[m] = seen.get(m, 0) + 1
    ev = ['%d events, %d answered 200, %d drain runs, %d lines handed over'
          % (n, len(acked), len(runs), sum(seen.values()))]
    check(not bad, bad[0] if bad else '', ev)
    check(len(acked) == n, '%d of %d events not answered 200'
          % (n - len(acked), n), ev)
    missing = sorted(acked - set(seen))
    twice = sorted(m for m, c in seen.items() if c > 1)
    check(not missing, '%d acknowledged events never handed over, e.g. %s'
          % (len(missing), missing[:5]), ev)
    check(not twice, '%d events handed over twice, e.g. %s'
          % (len(twice), twice[:5]), ev)
    left = [f for f in os.listdir(spool) if f.endswith('.jsonl') and
            os.path.getsize(os.path.join(spool, f)) > 0]
    check(not left, 'pending lines left after the last drain: %s' % left,
          ev)
    busy = sum(1 for rc, err, out in runs if os.path.getsize(out) > 0)
    return ev[0] + ' (%d drains found work)' % busy


def t_listen_lines(world):
    d, spool = world.spool('lines')
    ini = write_ini(world, d, spool, level='info')
    srv = Listener(world, d, ini)
    st, _, _ = srv.request(event('one'))
    check(st == 200, 'event answered %s' % st)
    rc = srv.stop(signal.SIGTERM)
    text = srv.text()
    lines = podio_lines(text)
    starts = [l for l in lines if 'listening on 127.0.0.1:%d' % srv.port in l]
    stops = [l for l in lines if 'stopped by SIGTERM' in l]
    check(rc == 0, 'exit status %s after SIGTERM, want 0' % rc, lines)
    check(len(starts) == 1 and ': info: ' in starts[0],
          'want one info line "listening on 127.0.0.1:%d" at start, got %s'
          % (srv.port, starts), lines)
    check(len(stops) == 1 and ': info: ' in stops[0] and
          'after 1 requests on 127.0.0.1:%d' % srv.port in stops[0],
          'want one info line at the stop naming SIGTERM, the address and '
          'the requests served, got %s' % stops, lines)
    check(lines.index(starts[0]) < lines.index(stops[0]) and
          lines[-1] == stops[0], 'the stop line is not the last', lines)
    return '%s / %s' % (starts[0], stops[0])


def t_listen_as_root(world):
    if os.geteuid() != 0:
        raise Skip('needs root: --listen started by root')
    d, spool = world.spool('root')   # owned by the run user
    ini = write_ini(world, d, spool, level='info')
    port = harness.free_port()
    log = os.path.join(d, 'listen.log')
    p = world.start([world.bin, '--config', ini, '--listen',
                     '127.0.0.1:%d' % port], log, as_run_user=False)
    fcgiclient.wait_listening(p, port, log, 20)
    env, raw = fcgiclient.cgi_post(event('as-root'))
    st, _, _ = fcgiclient.FcgiClient(port, 30).request(env, raw)
    check(st == 200, 'event answered %s' % st)
    uid, gid = world.ids[0], world.ids[1]
    f = os.stat(os.path.join(spool, 'item.create.jsonl'))
    check((f.st_uid, f.st_gid) == (uid, gid), 'item.create.jsonl is owned '
          'by %d:%d, want the spool owner %d:%d'
          % (f.st_uid, f.st_gid, uid, gid))
    ids = re.search(r'(?m)^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)',
                    read_file('/proc/%d/status' % p.pid))
    check(ids and set(ids.groups()) == {str(uid)},
          'the process runs as %s, want uid %d throughout'
          % (ids.groups() if ids else None, uid))
    os.kill(p.pid, signal.SIGTERM)
    check(p.wait(20) == 0, 'exit status after SIGTERM')

    def refused(config, what, reason):
        """root's --listen with config exits 1, reason in its log."""
        log = os.path.join(d, 'listen-%s.log' % what.replace(' ', '-'))
        q = world.start([world.bin, '--config', config, '--listen',
                         '127.0.0.1:%d' % harness.free_port()], log,
                        as_run_user=False)
        check(q.wait(20) == 1, '%s: exit %s, want 1' % (what, q.returncode))
        check(reason in read_file(log), '%s: no reason given: %s'
              % (what, read_file(log)))

    # Root without its config (or spool) cannot know whom to become.
    refused(os.path.join(d, 'missing.ini'), 'without its config',
            '--listen as root needs its config')
    # A config only root can read: the owner could not load it per
    # request or on SIGHUP, so it says so and exits rather than 500.
    secret_ini = os.path.join(d, 'root-only.ini')
    shutil.copy(ini, secret_ini)
    os.chown(secret_ini, 0, 0)
    os.chmod(secret_ini, 0o600)
    refused(secret_ini, 'with a config only root reads',
            'who cannot read the config %s' % secret_ini)
    return 'spool file %d:%d, process uid %d' % (f.st_uid, f.st_gid, uid)


def t_sighup_reload(world):
    d, spool = world.spool('reload')
    ini = write_ini(world, d, spool, receiver={'unknown_types': 'accept'},
                    level='info')
    srv = Listener(world, d, ini)
    body = event('custom', 'custom.thing')
    st, _, _ = srv.request(body)
    check(st == 200, 'unknown type with unknown_types = accept: %s' % st)
    write_ini(world, d, spool, receiver={'unknown_types': 'reject'},
              level='info')
    os.kill(srv.proc.pid, signal.SIGHUP)
    wait_for('a log line saying the config was reloaded',
             lambda: [l for l in podio_lines(srv.text(), 'info')
                      if 'config reloaded' in l and ini in l], 10,
             lambda: podio_lines(srv.text()))
    st, _, _ = srv.request(body)
    check(st == 400, 'after SIGHUP with unknown_types = reject: %s, want '
          '400' % st)
    # A config that fails: logged with file, line and key; the old one
    # stays.
    with open(ini, 'a') as f:
        f.write('[receiver]\nbogus_key = 1\n')
    mark = len(srv.text())
    os.kill(srv.proc.pid, signal.SIGHUP)
    why = wait_for('a log line saying why the new config was refused',
                   lambda: [l for l in podio_lines(srv.text()[mark:],
                                                   'error')
                            if 'bogus_key' in l and ini in l], 10,
                   lambda: podio_lines(srv.text()))
    keep = wait_for('a log line saying the config in use is kept',
                    lambda: [l for l in podio_lines(srv.text()[mark:],
                                                    'error')
                             if 'keeping' in l], 10,
                    lambda: podio_lines(srv.text()))
    check(srv.proc.poll() is None, '--listen exited after a bad reload')
    st, _, _ = srv.request(body)
    check(st == 400, 'after a failed reload: %s, want 400 (the config in '
          'use)' % st)
    st, _, _ = srv.request(event('ok'))
    check(st == 200, 'an ordinary event after a failed reload: %s' % st)
    rc = srv.stop()
    check(rc == 0, 'exit status %s' % rc)
    return '%s; %s' % (why[0][:100], keep[0][:100])


def t_config_late(world):
    d, spool = world.spool('late')
    ini = os.path.join(d, 'podio-hook.ini')   # not there yet
    srv = Listener(world, d, ini)
    bodies = [event('early-%d' % i) for i in range(8)]
    got = [in_background(srv.request, b) for b in bodies]
    for t, res in got:
        t.join(20)
        check(res and not isinstance(res[0], Exception) and
              res[0][0] == 500, 'with the config missing: %r, want 500'
              % (res,))
    why = [l for l in podio_lines(srv.text(), 'error') if ini in l]
    check(why, 'no error line naming the missing config',
          podio_lines(srv.text()))
    write_ini(world, d, spool, level='info')
    # Threads at once: each may load its own copy; one becomes current.
    got = [in_background(srv.request, event('late-%d' % i))
           for i in range(8)]
    for t, res in got:
        t.join(20)
        check(res and not isinstance(res[0], Exception) and
              res[0][0] == 200, 'once the config exists: %r, want 200'
              % (res,))
    st, _, _ = srv.request(event('later'))
    check(st == 200, 'the request after: %s' % st)
    recs, torn = read_records(spool, 'item.create')
    check(not torn and sorted(r['params']['marker'] for r in recs) ==
          sorted(['late-%d' % i for i in range(8)] + ['later']),
          'item.create.jsonl holds %s'
          % sorted(r['params']['marker'] for r in recs))
    rc = srv.stop()
    check(rc == 0, 'exit status %s' % rc)
    return '8 x 500 naming the config, then 9 x 200: %s' % why[0][:100]


def t_term_in_flight(world):
    d, spool = world.spool('term')
    fake = world.fake('term', hang_seconds=1.5)
    ini = write_ini(world, d, spool, podio=podio_keys(
        world, fake, inline_verifications=2))
    srv = Listener(world, d, ini)
    pending = [in_background(srv.request, verify_body(h, c))
               for h, c in ((42, pod.CODE42), (43, pod.CODE43))]
    wait_for('both validations in flight', lambda: len(validates(fake)) >= 2,
             10, lambda: [srv.text()[-1500:]])
    os.kill(srv.proc.pid, signal.SIGTERM)
    for t, res in pending:
        t.join(20)
        check(res and not isinstance(res[0], Exception) and
              res[0][0] == 200 and res[0][1] == b'OK\n',
              'a request in flight at SIGTERM was answered %r' % (res,))
    rc = srv.stop(wait=20)
    check(rc == 0, 'exit status %s after SIGTERM, want 0' % rc)
    recs, torn = read_records(spool, 'hook.verify')
    got = sorted((r['params']['hook_id'], r['verification']['status'])
                 for r in recs)
    check(not torn and got == [('42', 'validated'), ('43', 'validated')],
          'hook.verify.jsonl holds %s' % got)
    return 'both answered 200 and spooled as validated; exit 0'


def t_mixed_load(world):
    d, spool = world.spool('mixed')
    fake = world.fake('mixed')
    ini = write_ini(world, d, spool, sync='yes', podio=podio_keys(
        world, fake, inline_verifications=2), level='info')
    srv = Listener(world, d, ini)
    stop = threading.Event()
    results = []
    lock = threading.Lock()
    kinds = ('item.create', 'item.update', 'task.create')

    def client(k):
        n = 0
        while not stop.is_set():
            n += 1
            m = 'mx-%d-%05d' % (k, n)
            if n % 10 == 0:
                body = verify_body(42, pod.CODE42)
            else:
                body = event(m, kinds[n % 3])
            try:
                st, out, _ = srv.request(body)
            except Exception as e:  # counted as a wrong answer
                st, out = str(e), b''
            with lock:
                results.append((m if n % 10 else None, st))
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(8)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    reloads = 0
    while time.monotonic() - t0 < 5:
        time.sleep(1)
        os.kill(srv.proc.pid, signal.SIGHUP)
        reloads += 1
    stop.set()
    for t in threads:
        t.join(30)
    rc = srv.stop()
    bad = [r for r in results if r[1] != 200]
    check(not bad, '%d of %d requests not 200, e.g. %s'
          % (len(bad), len(results), bad[:3]))
    check(rc == 0, 'exit status %s' % rc)
    seen = {}
    for etype in kinds:
        recs, torn = read_records(spool, etype)
        check(not torn, 'torn lines in %s.jsonl' % etype)
        for r in recs:
            seen[r['params']['marker']] = seen.get(
                r['params']['marker'], 0) + 1
    sent = {m for m, _ in results if m is not None}
    check(set(seen) == sent and all(c == 1 for c in seen.values()),
          '%d events answered 200, %d spooled (%d twice)'
          % (len(sent), len(seen), sum(1 for c in seen.values() if c > 1)))
    recs, torn = read_records(spool, 'hook.verify')
    ids = [r['id'] for r in recs]
    check(not torn and len(ids) == len(set(ids)),
          'hook.verify: torn or duplicate ids')
    reloaded = [l for l in podio_lines(srv.text(), 'info')
                if 'config reloaded' in l]
    check(len(reloaded) == reloads, '%d reloads logged for %d SIGHUPs'
          % (len(reloaded), reloads))
    return ('%d requests by 8 clients (%d hook.verify), %d SIGHUP reloads'
            % (len(results), len(results) - len(sent), reloads))


CASES = [
    ('threads-at-once: one process, 4 threads: 3 hook.verify hanging at '
     'once, an ordinary event answered meanwhile, a 4th verify deferred',
     t_threads_at_once),
    ('verify-flood: hook.verify flood against a hanging API through '
     'lighttpd (shipped config, defaults): ordinary events within 1 s, '
     'validations never overlap, the rest deferred', t_verify_flood),
    ('shipped-slots: shipped server configs give more request slots than '
     'inline_verifications', t_shipped_slots),
    ('group-commit: concurrent events through lighttpd with sync = yes all '
     '200 and spooled once, fewer fdatasync calls than events',
     t_group_commit),
    ('sync-fails: every fdatasync failing: each concurrent event answered '
     '503, lines whole, 200 again once syncs succeed', t_sync_fails),
    ('claims-during-load: drains claiming while threads append: every 2xx '
     'event handed over exactly once', t_claims_during_load),
    ('listen-lines: --listen logs one line at start and one at the stop, '
     'exit 0 on SIGTERM', t_listen_lines),
    ('listen-as-root: --listen started by root runs as the spool owner (its '
     'files are the owner\'s); without its config, or with one only root '
     'reads, it exits 1 saying why',
     t_listen_as_root),
    ('sighup-reload: SIGHUP under --listen re-reads the config (logged); a '
     'bad config keeps the one in use and says why', t_sighup_reload),
    ('config-late: --listen started without its config: 500 naming it, '
     'from 8 threads at once; once written, the next requests load it: '
     '200', t_config_late),
    ('term-in-flight: SIGTERM with two requests in flight: both answered '
     'and spooled, then exit 0', t_term_in_flight),
    ('mixed-load: 8 clients, 3 types with sync, hook.verify, SIGHUP '
     'reloads: every 2xx spooled once', t_mixed_load),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready(tools=('lighttpd', 'curl', 'openssl', 'nm')):
        return suite.finish()
    world = World(suite.bin)
    suite.tmp = world.top
    try:
        suite.run(start=lambda case: world, stop=World.stop_all, timed=True,
                  deadline=DEADLINE)
    finally:
        problems = world.stop_all()
        if problems:
            suite.rep.fail('cleanup: every process stopped by its PID',
                           problems[0], problems[1:])
        if world.tsan or world.asan:
            which = 'ThreadSanitizer' if world.tsan else 'ASan/UBSan'
            reports = world.tsan_reports()
            if reports:
                suite.rep.fail('%s: no report from any podio-hook process'
                               % which, '%d report file(s)' % len(reports),
                               [line for f, text in reports[:3]
                                for line in [f] + text.splitlines()[:40]])
            else:
                suite.rep.ok('%s: no report from any podio-hook process'
                             % which, 'reports would be in %s'
                             % world.tsan_dir)
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
