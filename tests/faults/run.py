#!/usr/bin/env python3
"""tests/faults/run.py - podio-hook under injected faults.

    python3 tests/faults/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                [-v]

Real lighttpd (lighttpd/podio-hook-fastcgi.conf, only the var.podio_hook_*
values replaced, as tests/integration/run.py does) and the binary run as
CGI, with the faults a host really meets:

  1. ENOSPC: the spool on a 64 KiB tmpfs filled up by a filler file;
     through lighttpd FastCGI and through CGI (also a CGI hook.verify, whose
     token cache cannot be written either).  503, only whole lines left,
     200 again once space is freed.
  2. The spool directory removed, made read-only (mode 0555, owned by root
     while the server runs as www-data) and mounted read-only under a
     running FastCGI process: 503 with a log line naming the spool; 200
     again once repaired.
  3. kill -9 of one FastCGI process (a child of lighttpd, max-procs 2)
     every ~100 ms while waves of 1000 events are posted at concurrency 8
     (curl --parallel; more waves until 20 kills, at most 15 s): every 2xx
     answer's event spooled exactly once; then a torn tail made by hand must
     be ended by the next writer; `podio-hook drain` (print mode) hands over
     every whole line and quarantines every torn one into bad/.
  4. The Podio API misbehaving during hook.verify (slow, random bytes, bytes
     inside TLS, HTML 500, a certificate from another CA, connection
     refused): 200 within [podio] timeout + 1 s, verification "failed" with
     a detail naming the problem.
  5. fdatasync failing (an LD_PRELOAD shim built with cc at test time):
     503 and a log line, through CGI and through lighttpd FastCGI; the
     shim can also fail fsync (of the directory, for a new spool file).

Prints "ok - NAME", "skip - NAME: WHY" or "FAIL - NAME: WHY" (followed by
"#" lines of evidence) per case and, as the very last line,
"N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which also
gives the options; a skip is never a pass).  Stopping the servers and
unmounting after the cases only adds a FAIL line when something was left
behind.  Exit status 1 when anything failed.  Python 3 standard library
only; needs root for the mounts (those cases are skipped otherwise) and
the Debian packages lighttpd, curl, openssl, build-essential (cc and libc
headers for the shim) and mount.  About 25 s.

The fake Podio API is tests/lib/fakepodio.py's.  Every server is stopped
by its PID, every mount unmounted and the temporary tree removed (unless
--keep or a failure).
"""

import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Skip, form  # noqa: E402
from harness import expect as check  # noqa: E402
import fakepodio as pod  # noqa: E402  (the fake Podio)

FORM = 'application/x-www-form-urlencoded'
TIMEOUT = 3             # [podio] timeout of the hook.verify cases
KILL_N = 1000           # events posted while the FastCGI processes die
KILL_MIN = 20           # ... in waves of KILL_N until this many kills
KILL_WAVES = 30         # ... but at most this many waves
KILL_BUDGET = 15.0      # ... or this many seconds
TORN = b'{"id":"torn-by-the-test","received":"2026-11-2'
KILL_PARALLEL = 8
KILL_EVERY = 0.1        # seconds between kill rounds
DEADLINE = 170          # the whole run, seconds (a watchdog, not a goal)


# --------------------------------------------------------------------------
# The temporary world: directories, mounts, processes

class World:
    def __init__(self, binary):
        self.top = tempfile.mkdtemp(prefix='podio-hook-faults-')
        os.chmod(self.top, 0o755)
        self.bin = harness.copy_binary(binary, self.top)
        self.mounts = []        # mount points, unmounted in reverse
        self.servers = []       # Lighttpd, Fake, ... with .stop()
        self.threads = []       # (stop event, thread)
        self.ids = harness.run_ids()  # (uid, gid) of www-data when root
        self.certs = None

    def sub(self, name, run_owned=False):
        return harness.subdir(self.top, name, run_owned)

    # -- mounts --

    def mount(self, argv, where):
        r = subprocess.run(['mount'] + argv + [where], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            return ('mount %s %s: %s' % (' '.join(argv), where,
                                          (r.stderr or r.stdout).strip()))
        self.mounts.append(where)
        return None

    def umount(self, where):
        if where not in self.mounts:
            return None
        r = subprocess.run(['umount', where], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            r2 = subprocess.run(['umount', '-l', where],
                                capture_output=True, text=True, timeout=20)
            if r2.returncode != 0:
                return 'umount %s: %s' % (where, r.stderr.strip())
        self.mounts.remove(where)
        return None

    def mount_tmpfs(self, where, size):
        opts = 'size=%s,mode=0755' % size
        if self.ids is not None:
            opts += ',uid=%d,gid=%d' % self.ids
        return self.mount(['-t', 'tmpfs', '-o', opts, 'tmpfs'], where)

    # -- processes --

    def leftovers(self, wait=3.0):
        """Processes still running our copy of the binary, killed by PID."""
        deadline = time.monotonic() + wait
        while True:
            pids = harness.pids(self.bin)
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        harness.sigkill_pids(pids)
        return pids

    def stop_servers(self, keep=0):
        """Stops the threads and servers started after the first keep."""
        problems = []
        for stop, t in self.threads:
            stop.set()
        for stop, t in self.threads:
            t.join(5)
        self.threads = []
        while len(self.servers) > keep:
            s = self.servers.pop()
            try:
                p = s.stop()
                if p:
                    problems += p if isinstance(p, list) else []
            except Exception as e:  # keep cleaning up
                problems.append('stopping %r: %s' % (s, e))
        return problems

    def close(self):
        problems = self.stop_servers()
        left = self.leftovers()
        if left:
            problems.append('podio-hook processes %s still running after '
                            'the servers stopped (killed)' % left)
        for m in reversed(list(self.mounts)):
            err = self.umount(m)
            if err:
                problems.append(err)
        return problems

def write_ini(world, d, spool, sync='yes', podio=None, name='podio-hook.ini'):
    text = '[spool]\ndir = %s\nsync = %s\nfile_mode = 0640\n\n' % (spool,
                                                                  sync)
    if podio:
        text += '[podio]\n' + ''.join('%s = %s\n' % kv
                                      for kv in podio.items()) + '\n'
    text += '[log]\nlevel = debug\n'
    path = os.path.join(d, name)
    with open(path, 'w') as f:
        f.write(text)
    harness.give_config(path)
    return path


# --------------------------------------------------------------------------
# lighttpd with the shipped FastCGI snippet

class Lighttpd(harness.Lighttpd):
    """The shipped FastCGI snippet (harness.Lighttpd), on a new free port
    at each start; stopped with the case's other servers."""

    def __init__(self, world, d, ini, env=None):
        super().__init__(d, world.bin, ini, env)
        world.servers.append(self)

    def start(self):
        self.port = harness.free_port()
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C'}
        env.update(self.env)
        with open(self.stderr_path, 'ab') as err:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=err,
                stderr=err, env=env, start_new_session=True)
        return self.wait_ready()

    def url(self, query=''):
        return 'http://127.0.0.1:%d/hook%s' % (self.port,
                                               '?' + query if query else '')

    def post(self, body, query='', timeout=30):
        return curl_post(self.url(query), body, self.dir, timeout)

    def logs(self):
        return self.log_paths()

    def log_mark(self):
        return harness.log_mark(self.logs())

    def read_logs(self, mark=None):
        return harness.read_logs(self.logs(), mark)

    def logs_after(self, mark, status, wait=3.0):
        """What was logged since mark; for a non-2xx answer, waits (up to
        wait seconds) for a podio-hook error line: lighttpd passes the
        backend's stderr on asynchronously."""
        deadline = time.monotonic() + wait
        while True:
            text = self.read_logs(mark)
            if 200 <= status < 300 or podio_log_lines(text, 'error') or \
                    time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    def stop(self):
        problems = []
        if self.proc is None or self.proc.poll() is not None:
            return problems
        if harness.terminate(self.proc, 10):
            problems.append('lighttpd %d ignored SIGTERM; killed'
                            % self.proc.pid)
        return problems


class Answer:
    def __init__(self, status, body, elapsed, err):
        self.status = status
        self.body = body
        self.elapsed = elapsed
        self.err = err

    def __repr__(self):
        return 'status %s body %r after %.2f s%s' % (
            self.status, self.body[:200], self.elapsed,
            ' (%s)' % self.err if self.err else '')


_SEQ = [0]


def curl_post(url, body, d, timeout=30):
    _SEQ[0] += 1
    base = os.path.join(d, 'req%05d' % _SEQ[0])
    with open(base + '.req', 'wb') as f:
        f.write(body.encode('utf-8') if isinstance(body, str) else body)
    argv = ['curl', '-sS', '--max-time', str(timeout), '-o', base + '.body',
            '-w', '%{http_code}', '-H', 'Expect:', '-H',
            'Content-Type: ' + FORM, '--data-binary', '@' + base + '.req',
            url]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout + 10)
    elapsed = time.monotonic() - t0
    try:
        with open(base + '.body', 'rb') as f:
            out = f.read()
    except OSError:
        out = b''
    return Answer(int(r.stdout.strip() or 0), out, elapsed,
                  r.stderr.strip() if r.returncode else None)


def cgi_run(world, ini, body, extra_env=None, timeout=30):
    """The binary as CGI (as www-data when root); returns (status, out, err)."""
    if isinstance(body, str):
        body = body.encode('utf-8')
    env = harness.cgi_post_env('/usr/bin:/bin', 'faults', body, '', ini)
    env.update(extra_env or {})
    kw = harness.run_as(world.ids)
    p = subprocess.run([world.bin], input=body, env=env, capture_output=True,
                       timeout=timeout, cwd='/', **kw)
    out = p.stdout
    m = re.match(rb'(?s)(.*?)\r?\n\r?\n', out)
    status = 0
    if m:
        s = re.search(rb'(?mi)^Status:\s*(\d+)', m.group(1))
        status = int(s.group(1)) if s else 200
    return status, out, p.stderr.decode('utf-8', 'replace')


# --------------------------------------------------------------------------
# The spool

def read_lines(path):
    """(whole lines as bytes with '\\n', torn tail bytes)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return [], b''
    parts = data.split(b'\n')
    tail = parts.pop()
    return [p + b'\n' for p in parts], tail


def parse(line):
    try:
        rec = json.loads(line.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def marker_of(rec):
    if rec is None:
        return None
    params = rec.get('params')
    if isinstance(params, dict):
        return params.get('marker')
    if isinstance(params, list):
        for p in params:
            if isinstance(p, list) and len(p) == 2 and p[0] == 'marker':
                return p[1]
    return None


def check_whole(path, what):
    """Every line of path is '\\n'-terminated JSON; returns the records."""
    lines, tail = read_lines(path)
    check(tail == b'', '%s ends in a partial line %r' % (what, tail[:200]))
    recs = []
    for i, line in enumerate(lines):
        rec = parse(line)
        check(rec is not None, '%s line %d is not JSON: %r'
              % (what, i + 1, line[:200]))
        recs.append(rec)
    return recs


def podio_log_lines(text, level=None):
    out = []
    for line in text.splitlines():
        i = line.find('podio-hook[')
        if i < 0:
            continue
        if level is None or (': %s: ' % level) in line[i:]:
            out.append(line[i:])
    return out


# --------------------------------------------------------------------------
# 1. ENOSPC

PAD = 'p' * 700


def event_body(marker, etype='item.create'):
    return form([('type', etype), ('item_id', '42'), ('hook_id', '1001'),
                 ('marker', marker), ('pad', PAD)])


def fill(path):
    """Writes 4 KiB blocks to path until ENOSPC; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    block = b'f' * 4096
    try:
        while total < 64 * 1024 * 1024:
            try:
                n = os.write(fd, block)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    break
                raise
            total += n
            if n < len(block):
                break
    finally:
        os.close(fd)
    return total


def enospc_scenario(name, post, spool, filler):
    """post(body) -> (status, log text of that request).  Runs the ENOSPC
    script; returns a note for the ok line."""
    path = os.path.join(spool, 'item.create.jsonl')
    acked = []
    for i in range(3):
        m = '%s-pre-%d' % (name, i)
        st, _ = post(event_body(m))
        check(st == 200, 'POST %d with free space answered %s, want 200'
              % (i, st))
        acked.append(m)
    filled = fill(filler)
    refused = None
    refusal_log = ''
    for i in range(60):
        m = '%s-full-%d' % (name, i)
        before = open(path, 'rb').read()
        st, log = post(event_body(m))
        if st == 200:
            acked.append(m)
            continue
        check(st == 503, 'POST on a full filesystem answered %s, want 503'
              % st, log.splitlines()[-5:])
        after = open(path, 'rb').read()
        check(after == before, 'a 503 changed %s: %d -> %d bytes, new tail '
              '%r' % (path, len(before), len(after), after[len(before):][
                  :200]))
        refused = m
        refusal_log = log
        break
    check(refused is not None, 'still 200 after 60 POSTs on a full '
          'filesystem (filler %d bytes)' % filled)
    errs = podio_log_lines(refusal_log, 'error')
    check(any(spool in l for l in errs),
          'no podio-hook error line naming the spool for the 503',
          refusal_log.splitlines()[-8:])
    how = 'short write' if any('short write' in l for l in errs) else (
        'ENOSPC' if any('No space left' in l for l in errs) else '?')
    # A second refusal on the same full file, and a new type's file.
    st, _ = post(event_body(name + '-again'))
    check(st == 503, 'second POST on the full filesystem answered %s' % st)
    newpath = os.path.join(spool, 'task.create.jsonl')
    st, _ = post(event_body(name + '-newtype', 'task.create'))
    check(st == 503, 'POST of a new type on the full filesystem answered %s'
          % st)
    if os.path.exists(newpath):
        check(os.path.getsize(newpath) == 0, 'the refused new type left %r'
              % open(newpath, 'rb').read()[:200])
    recs = check_whole(path, os.path.basename(path))
    got = [marker_of(r) for r in recs]
    check(got == acked, 'spool markers %s, want exactly the acknowledged %s'
          % (got, acked))
    before = open(path, 'rb').read()
    # Free the space: the next event lands cleanly after the others.
    os.unlink(filler)
    m = name + '-after'
    st, log = post(event_body(m))
    check(st == 200, 'POST after freeing space answered %s, want 200' % st,
          log.splitlines()[-5:])
    after = open(path, 'rb').read()
    check(after.startswith(before), '%s was rewritten, not appended to'
          % path)
    new = after[len(before):]
    check(new.endswith(b'\n') and new.count(b'\n') == 1,
          'appended %r, want exactly one line' % new[:300])
    check(marker_of(parse(new)) == m, 'appended line is not the event: %r'
          % new[:300])
    check_whole(path, os.path.basename(path))
    return ('%d acknowledged, refused by %s after a %d-byte filler'
            % (len(acked), how, filled))


def t_enospc_fastcgi(world):
    if os.geteuid() != 0:
        raise Skip('mounting a tmpfs needs root')
    d = world.sub('enospc-fcgi')
    fs = os.path.join(d, 'fs')
    os.mkdir(fs)
    err = world.mount_tmpfs(fs, '64k')
    if err:
        raise Skip('mount not permitted: ' + err)
    spool = os.path.join(fs, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    srv = Lighttpd(world, d, write_ini(world, d, spool)).start()

    def post(body):
        mark = srv.log_mark()
        a = srv.post(body, timeout=20)
        return a.status, srv.logs_after(mark, a.status)
    return enospc_scenario('fcgi', post, spool, os.path.join(fs, 'filler'))


def t_enospc_cgi(world):
    if os.geteuid() != 0:
        raise Skip('mounting a tmpfs needs root')
    d = world.sub('enospc-cgi')
    fs = os.path.join(d, 'fs')
    os.mkdir(fs)
    err = world.mount_tmpfs(fs, '64k')
    if err:
        raise Skip('mount not permitted: ' + err)
    spool = os.path.join(fs, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    ini = write_ini(world, d, spool)

    def post(body):
        st, _, err = cgi_run(world, ini, body)
        return st, err
    return enospc_scenario('cgi', post, spool, os.path.join(fs, 'filler'))


def t_enospc_cgi_verify(world):
    """hook.verify through CGI on a full spool: the token cannot be cached
    there either.  Validated at the fake, then 503 (not spooled); no
    temporary token file left taking space; 200 once space is freed."""
    if os.geteuid() != 0:
        raise Skip('mounting a tmpfs needs root')
    certs = get_certs(world)
    d = world.sub('enospc-verify')
    fs = os.path.join(d, 'fs')
    os.mkdir(fs)
    err = world.mount_tmpfs(fs, '64k')
    if err:
        raise Skip('mount not permitted: ' + err)
    spool = os.path.join(fs, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    fake = fake_url(world, 'enospc-verify')
    ini = write_ini(world, d, spool, podio={
        'api_url': fake.url, 'client_id': pod.CLIENT_ID,
        'client_secret': pod.CLIENT_SECRET, 'app_id': pod.APP_ID,
        'app_token': pod.APP_TOKEN, 'timeout': str(TIMEOUT),
        'ca_file': certs.ca})
    filler = os.path.join(fs, 'filler')
    filled = fill(filler)
    body = pod.verify_body(42, pod.CODE42)
    st, out, err = cgi_run(world, ini, body)
    check(st == 503, 'hook.verify on a full spool: status %s, want 503' % st,
          [out[:200], err])
    check(any(spool in l for l in podio_log_lines(err, 'error')),
          'no podio-hook error line naming the spool', err.splitlines())
    left = sorted(os.listdir(spool))
    # An empty hook.verify.jsonl may stay, and the empty lock file of the
    # inline verification slot ([podio] inline_verifications): an inode,
    # no data.
    check(all((f == 'hook.verify.jsonl' or f == '.verify-slot-0') and
              os.path.getsize(os.path.join(spool, f)) == 0 for f in left),
          'the spool holds %s after the refusal, want nothing (or an empty '
          'hook.verify.jsonl, .verify-slot-0)' % left)
    check(pod.CODE42 not in err, 'the verification code was logged')
    os.unlink(filler)
    st, out, err = cgi_run(world, ini, body)
    check(st == 200, 'after freeing space: status %s, want 200' % st,
          [out[:200], err])
    recs = check_whole(os.path.join(spool, 'hook.verify.jsonl'),
                       'hook.verify.jsonl')
    check(len(recs) == 1 and recs[0].get('verification', {}).get('status')
          == 'validated', 'hook.verify.jsonl holds %r' % recs)
    check(os.path.exists(os.path.join(spool, '.podio-token')),
          'no token cache after a run with free space (spool has %s)'
          % sorted(os.listdir(spool)))
    return 'filler %d bytes; spool afterwards %s' % (
        filled, sorted(os.listdir(spool)))


# --------------------------------------------------------------------------
# 2. The spool directory removed / read-only under a running FastCGI process

def post_logged(srv, body):
    mark = srv.log_mark()
    a = srv.post(body, timeout=20)
    return a, srv.logs_after(mark, a.status)


def expect_503_named(srv, body, spool, what):
    a, log = post_logged(srv, body)
    check(a.status == 503, '%s: answered %r, want 503' % (what, a),
          log.splitlines()[-6:])
    errs = [l for l in podio_log_lines(log, 'error') if spool in l]
    check(errs, '%s: no podio-hook error line naming the spool %s'
          % (what, spool), log.splitlines()[-6:] or ['(nothing logged)'])
    return errs[0]


def spool_server(world, name):
    d = world.sub(name)
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    srv = Lighttpd(world, d, write_ini(world, d, spool)).start()
    a = srv.post(event_body(name + '-warm'))
    check(a.status == 200, 'warm-up POST answered %r' % a)
    return srv, spool


def t_spool_removed(world):
    srv, spool = spool_server(world, 'removed')
    pids = srv.children()
    shutil.rmtree(spool)
    line = expect_503_named(srv, event_body('rm-1'), spool,
                            'spool directory removed')
    check(not os.path.exists(spool), 'the 503 recreated %s' % spool)
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    a = srv.post(event_body('rm-2'))
    check(a.status == 200, 'after recreating the directory: %r, want 200'
          % a)
    recs = check_whole(os.path.join(spool, 'item.create.jsonl'), 'spool')
    check([marker_of(r) for r in recs] == ['rm-2'],
          'spool holds %s, want [rm-2]' % [marker_of(r) for r in recs])
    same = sorted(pids) == sorted(srv.children())
    return 'same FastCGI processes throughout: %s; logged: %s' % (
        same, line[:160])


def t_spool_missing_at_start(world):
    d = world.sub('missing')
    spool = os.path.join(d, 'spool')
    srv = Lighttpd(world, d, write_ini(world, d, spool)).start()
    line = expect_503_named(srv, event_body('ms-1'), spool,
                            'spool directory missing since start')
    check(not os.path.exists(spool), 'the 503 created %s' % spool)
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    a = srv.post(event_body('ms-2'))
    check(a.status == 200, 'after creating the directory: %r, want 200 (the '
          'FastCGI process must not keep the missing spool as a config '
          'error)' % a)
    recs = check_whole(os.path.join(spool, 'item.create.jsonl'), 'spool')
    check([marker_of(r) for r in recs] == ['ms-2'],
          'spool holds %s, want [ms-2]' % [marker_of(r) for r in recs])
    return 'logged: %s' % line[:160]


def t_spool_fifo(world):
    srv, spool = spool_server(world, 'fifo')
    fifo = os.path.join(spool, 'task.create.jsonl')
    os.mkfifo(fifo, 0o660)
    harness.chown_run(fifo, 0o660)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        line = expect_503_named(srv, event_body('ff-1', 'task.create'),
                                fifo, 'a FIFO as task.create.jsonl')
        check('is not a regular file' in line, 'logged: %s' % line)
        # More than a pipe holds: each answered at once, none taken.
        for i in range(8):
            a = srv.post(event_body('ff-big-%d' % i, 'task.create'),
                         timeout=10)
            check(a.status == 503, 'POST %d to the FIFO: %r, want 503'
                  % (i, a))
        a = srv.post(event_body('ff-2'))
        check(a.status == 200, 'item.create beside the FIFO: %r' % a)
        try:
            got = os.read(reader, 65536)
        except BlockingIOError:
            got = b''
        check(got == b'', 'the FIFO got %d bytes' % len(got))
    finally:
        os.close(reader)
    os.unlink(fifo)
    a = srv.post(event_body('ff-3', 'task.create'))
    check(a.status == 200, 'FIFO removed: %r, want 200' % a)
    recs = check_whole(os.path.join(spool, 'task.create.jsonl'), 'spool')
    check([marker_of(r) for r in recs] == ['ff-3'],
          'task.create holds %s' % [marker_of(r) for r in recs])
    return 'logged: %s' % line[:160]


def t_spool_readonly_mode(world):
    srv, spool = spool_server(world, 'readonly')
    if os.geteuid() == 0:
        os.chown(spool, 0, 0)
    # Not root: the server runs as us, and mode 0555 alone forbids
    # creating files to a user that is not root.
    os.chmod(spool, 0o555)
    try:
        line = expect_503_named(srv, event_body('ro-1', 'task.create'),
                                spool, 'new type, directory 0555 root')
        check(not os.path.exists(os.path.join(spool, 'task.create.jsonl')),
              'a file was created in the read-only directory')
        # An existing spool file (www-data's, 0640) stays writable: the
        # writer protocol needs no directory write to append.
        a = srv.post(event_body('ro-2'))
        check(a.status == 200, 'existing item.create.jsonl in the 0555 '
              'directory: %r, want 200 (the file itself is writable)' % a)
    finally:
        harness.chown_run(spool, 0o755)
    a = srv.post(event_body('ro-3', 'task.create'))
    check(a.status == 200, 'after chmod 0755 / chown back: %r, want 200' % a)
    recs = check_whole(os.path.join(spool, 'task.create.jsonl'), 'spool')
    check([marker_of(r) for r in recs] == ['ro-3'],
          'task.create holds %s' % [marker_of(r) for r in recs])
    recs = check_whole(os.path.join(spool, 'item.create.jsonl'), 'spool')
    check([marker_of(r) for r in recs] == ['readonly-warm', 'ro-2'],
          'item.create holds %s' % [marker_of(r) for r in recs])
    return 'logged: %s' % line[:160]


def t_spool_readonly_mount(world):
    if os.geteuid() != 0:
        raise Skip('a read-only bind mount needs root')
    srv, spool = spool_server(world, 'romount')
    path = os.path.join(spool, 'item.create.jsonl')
    before = open(path, 'rb').read()
    err = world.mount(['--bind', spool], spool)
    if err:
        raise Skip('bind mount not permitted: ' + err)
    err = world.mount(['-o', 'remount,bind,ro'], spool)
    world.mounts.pop()  # the same mount point, unmounted once
    if err:
        raise Skip('read-only remount not permitted: ' + err)
    try:
        line = expect_503_named(srv, event_body('rom-1'), spool,
                                'existing spool file on a read-only mount')
        check(open(path, 'rb').read() == before, '%s changed' % path)
    finally:
        err = world.umount(spool)
        check(err is None, err)
    a = srv.post(event_body('rom-2'))
    check(a.status == 200, 'after unmounting: %r, want 200' % a)
    recs = check_whole(path, 'spool')
    check([marker_of(r) for r in recs] == ['romount-warm', 'rom-2'],
          'spool holds %s' % [marker_of(r) for r in recs])
    return 'logged: %s' % line[:160]


# --------------------------------------------------------------------------
# 3. kill -9 of the FastCGI processes under load

def t_kill9(world):
    d = world.sub('kill9')
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    ini = write_ini(world, d, spool)
    srv = Lighttpd(world, d, ini).start()
    a = srv.post(form([('type', 'item.update'), ('marker', 'warm')]))
    check(a.status == 200, 'warm-up POST answered %r' % a)
    # The shipped snippet's max-procs: 2 children of lighttpd.
    check(len(srv.children()) == 2, 'lighttpd has %d podio-hook children, '
          'want 2 (max-procs)' % len(srv.children()))
    kills = []
    stop = threading.Event()
    rng = random.Random(9)

    def killer():
        # One process per round, so lighttpd mostly has the other one to
        # pass requests to while it respawns the killed one.
        while not stop.wait(KILL_EVERY):
            pids = srv.children()
            if not pids:
                continue
            pid = rng.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except OSError:
                pass
    t = threading.Thread(target=killer, daemon=True)
    world.threads.append((stop, t))
    markers = []
    statuses = {}
    problems = []
    t0 = time.monotonic()
    t.start()
    try:
        # Waves of KILL_N events back to back, at least one, until the
        # killer has struck KILL_MIN times: a fast host answers 1000
        # events in half a second, a few kills only.
        for wave in range(KILL_WAVES):
            if wave > 0 and (len(kills) >= KILL_MIN or
                             time.monotonic() - t0 > KILL_BUDGET):
                break
            out = os.path.join(d, 'out%d' % wave)
            os.mkdir(out)
            cfg = os.path.join(d, 'curl%d.cfg' % wave)
            with open(cfg, 'w') as f:
                for i in range(KILL_N):
                    m = 'k9-%d-%05d' % (wave, i)
                    markers.append(m)
                    body = form([('type', 'item.update'),
                                 ('item_id', str(i)), ('hook_id', '1001'),
                                 ('marker', m)])
                    f.write('url = "%s"\n' % srv.url())
                    f.write('data-binary = "%s"\n' % body)
                    f.write('header = "Content-Type: %s"\n' % FORM)
                    f.write('header = "Expect:"\n')
                    f.write('output = "%s/%05d"\n' % (out, i))
                    f.write('write-out = "%{http_code} '
                            '%{filename_effective}\\n"\n')
                    f.write('max-time = 20\n')
                    if i != KILL_N - 1:
                        f.write('next\n')
            r = subprocess.run(['curl', '-sS', '--parallel',
                                '--parallel-max', str(KILL_PARALLEL), '-K',
                                cfg], capture_output=True, text=True,
                               timeout=60)
            n = 0
            for line in r.stdout.splitlines():
                code, _, fname = line.partition(' ')
                statuses['k9-%d-%s' % (wave, os.path.basename(fname))] = code
                n += 1
            if n != KILL_N:
                problems.append('wave %d: curl reported %d transfers, want '
                                '%d: %s' % (wave, n, KILL_N,
                                            r.stderr.strip()[:300]))
    finally:
        stop.set()
        t.join(5)
    took = time.monotonic() - t0
    counts = {}
    for c in statuses.values():
        counts[c] = counts.get(c, 0) + 1
    acked = {m for m, c in statuses.items() if c.startswith('2')}
    summary = ('%d requests in %.1f s, %d SIGKILLs, answers %s'
               % (len(markers), took, len(kills),
                  dict(sorted(counts.items()))))
    check(not problems, problems[0] if problems else '', [summary])
    check(len(kills) >= 5, 'only %d processes killed: the test did not '
          'exercise anything' % len(kills), [summary])
    check(acked, 'no request answered 2xx', [summary])
    # lighttpd respawns its backends: a POST now succeeds.
    recovered = None
    for i in range(40):
        a = srv.post(form([('type', 'item.update'),
                           ('marker', 'after-%d' % i)]), timeout=10)
        if a.status == 200:
            recovered = 'after-%d' % i
            break
        time.sleep(0.25)
    check(recovered, 'no 200 within 10 s after the kills stopped: %r' % a,
          [summary])
    acked.add(recovered)
    # A kill inside write() is next to impossible to hit from outside, so
    # a torn tail is also made by hand: the next writer must end it with
    # '\n' before its record, and drain must quarantine it.
    path = os.path.join(spool, 'item.update.jsonl')
    with open(path, 'ab') as f:
        f.write(TORN)
    size = os.path.getsize(path)
    a = srv.post(form([('type', 'item.update'), ('marker', 'after-torn')]))
    check(a.status == 200, 'POST after a torn tail: %r, want 200' % a)
    with open(path, 'rb') as f:
        f.seek(size)
        new = f.read()
    check(new.startswith(b'\n') and new.count(b'\n') == 2 and
          marker_of(parse(new[1:])) == 'after-torn',
          'after the torn tail the writer appended %r, want "\\n" then the '
          'record' % new[:300])
    acked.add('after-torn')
    # The spool: whole lines, every acknowledged marker exactly once.
    files = sorted(f for f in os.listdir(spool) if f.endswith('.jsonl'))
    whole, torn, seen = [], [], {}
    for fn in files:
        lines, tail = read_lines(os.path.join(spool, fn))
        for line in lines:
            rec = parse(line)
            if rec is None:
                torn.append(line)
                continue
            whole.append(line)
            mk = marker_of(rec)
            seen[mk] = seen.get(mk, 0) + 1
        if tail:
            torn.append(tail)
    missing = sorted(m for m in acked if seen.get(m, 0) == 0)
    twice = sorted(m for m in seen if seen[m] > 1)
    unacked_spooled = sorted(m for m in markers
                             if m in seen and m not in acked)
    summary += ('; spool: %d whole lines, %d torn, %d spooled without a 2xx'
                % (len(whole), len(torn), len(unacked_spooled)))
    check(not missing, '%d markers answered 2xx are not in the spool, e.g. '
          '%s' % (len(missing), missing[:5]), [summary])
    check(not twice, '%d markers spooled more than once, e.g. %s'
          % (len(twice), twice[:5]), [summary])
    # drain (print mode) hands over every whole line and quarantines torn
    # ones into bad/.
    kw = harness.run_as(world.ids)
    dr = subprocess.run([world.bin, '--config', ini, 'drain'],
                        capture_output=True, timeout=60, cwd='/',
                        env={'PATH': '/usr/bin:/bin'}, **kw)
    got = dr.stdout.split(b'\n')
    check(got[-1] == b'', 'drain output ends in a partial line',
          [summary])
    got = [l + b'\n' for l in got[:-1]]
    check(sorted(got) == sorted(whole),
          'drain handed over %d lines, the spool held %d whole ones '
          '(%d missing, %d extra)' % (
              len(got), len(whole), len(set(whole) - set(got)),
              len(set(got) - set(whole))),
          [summary, 'drain rc %d stderr %r' % (dr.returncode,
                                               dr.stderr[-300:])])
    bad = b''
    bad_dir = os.path.join(spool, 'bad')
    if os.path.isdir(bad_dir):
        for fn in sorted(os.listdir(bad_dir)):
            with open(os.path.join(bad_dir, fn), 'rb') as f:
                bad += f.read()
    check(any(TORN in p for p in torn), 'the torn line made by hand is not '
          'in the spool', [summary])
    for piece in torn:
        check(piece.rstrip(b'\n') in bad, 'torn line %r not quarantined in '
              'bad/' % piece[:120], [summary, 'bad/ holds %r' % bad[:300]])
    check(dr.returncode in (0, 1), 'drain exited %d: %r'
          % (dr.returncode, dr.stderr[-300:]), [summary])
    return summary + '; drain: %d lines handed over, rc %d' % (
        len(got), dr.returncode)


# --------------------------------------------------------------------------
# 4. The Podio API misbehaving during hook.verify

class GarbageServer:
    """Accepts TCP connections and writes random bytes (optionally after a
    TLS handshake with a trusted certificate and reading the request)."""

    def __init__(self, world, tls_cert=None, tls_key=None):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ctx = None
        if tls_cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls_cert, tls_key)
        self.stopped = threading.Event()
        self.connections = 0
        self.rng = random.Random(20261127)
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()
        world.servers.append(self)

    def garbage(self, n):
        b = bytearray(self.rng.getrandbits(8) for _ in range(n))
        if b[0] in range(0x14, 0x19):  # not a TLS record type
            b[0] = 0x00
        return bytes(b)

    def loop(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,),
                             daemon=True).start()

    def serve(self, conn):
        try:
            conn.settimeout(5)
            if self.ctx is not None:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                data = b''
                while b'\r\n\r\n' not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            end = time.monotonic() + 5
            while not self.stopped.is_set() and time.monotonic() < end:
                conn.sendall(self.garbage(1024))
                time.sleep(0.05)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopped.set()
        self.sock.close()
        self.t.join(2)


def get_certs(world):
    if world.certs is None:
        if shutil.which('openssl') is None:
            raise Skip('openssl is not installed')
        d = world.sub('certs')
        world.certs = pod.Certs(d)
        d2 = world.sub('certs-other-ca')
        world.other_certs = pod.Certs(d2)
        for dd in (d, d2):
            for fn in os.listdir(dd):
                os.chmod(os.path.join(dd, fn), 0o644)
    return world.certs


class FakeHandle:
    def __init__(self, fake):
        self.fake = fake

    def stop(self):
        self.fake.stop()
        return []


def verify_case(world, name, api_url, detail_re, want_seen=None):
    certs = get_certs(world)
    d = world.sub('verify-' + name)
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    ini = write_ini(world, d, spool, sync='yes', podio={
        'api_url': api_url, 'client_id': pod.CLIENT_ID,
        'client_secret': pod.CLIENT_SECRET, 'app_id': pod.APP_ID,
        'app_token': pod.APP_TOKEN, 'timeout': str(TIMEOUT),
        'ca_file': certs.ca})
    srv = Lighttpd(world, d, ini).start()
    mark = srv.log_mark()
    a = srv.post(pod.verify_body(42, pod.CODE42), timeout=30)
    deadline = time.monotonic() + 2
    log = srv.read_logs(mark)
    while 'hook.verify' not in log and time.monotonic() < deadline:
        time.sleep(0.02)  # lighttpd passes the backend's stderr on later
        log = srv.read_logs(mark)
    ev = ['answer: %r' % a] + log.splitlines()[-6:]
    check(a.status == 200 and a.body == b'OK\n', 'answer %r, want 200 OK'
          % a, ev)
    check(a.elapsed <= TIMEOUT + 1, 'answered after %.2f s, bound %d s'
          % (a.elapsed, TIMEOUT + 1), ev)
    recs = check_whole(os.path.join(spool, 'hook.verify.jsonl'),
                       'hook.verify.jsonl')
    check(len(recs) == 1, '%d hook.verify lines, want 1' % len(recs))
    v = recs[0].get('verification')
    check(isinstance(v, dict) and list(v) == ['status', 'detail'],
          'verification %r' % (v,))
    check(v['status'] == 'failed', 'verification.status %r (detail %r), '
          'want "failed"' % (v['status'], v['detail']), ev)
    check(re.search(detail_re, v['detail'], re.I),
          'detail %r does not match /%s/' % (v['detail'], detail_re), ev)
    check(pod.CODE42 not in log, 'the verification code was logged', ev)
    return 'in %.2f s, detail %r' % (a.elapsed, v['detail'])


def fake_url(world, name, **scenario):
    certs = get_certs(world)
    d = world.sub('fake-' + name)
    fake = pod.Fake(d, certs, pod.base_scenario(**scenario))
    world.servers.append(FakeHandle(fake))
    return fake


def t_verify_slow(world):
    fake = fake_url(world, 'slow', hang_seconds=30)
    note = verify_case(world, 'slow', fake.url, r'time[d ]?out|timeout')
    seen = [(e.get('path'), e.get('hang_seconds')) for e in fake.requests()]
    check(seen == [('/oauth/token', None), ('/hook/42/verify/validate', 30)],
          'the fake saw %s, want token then one hanging validate (a '
          'hanging call is not retried)' % seen)
    return note


def t_verify_slow_token(world):
    fake = fake_url(world, 'slow-token', hang_seconds=30, hang_on=['token'])
    return verify_case(world, 'slow-token', fake.url,
                       r'time[d ]?out|timeout')


def t_verify_slow_both(world):
    # Token and validate 2 s each: 4 s in all unless the whole
    # verification is bounded by [podio] timeout (SPEC 6).
    fake = fake_url(world, 'slow-both', hang_seconds=2,
                    hang_on=['token', 'validate'])
    note = verify_case(world, 'slow-both', fake.url,
                       r'time[d ]?out|timeout')
    seen = [(e.get('path'), e.get('hang_seconds')) for e in fake.requests()]
    check(seen == [('/oauth/token', 2), ('/hook/42/verify/validate', 2)],
          'the fake saw %s, want token then validate, each hanging' % seen)
    return note


def t_verify_garbage(world):
    g = GarbageServer(world)
    note = verify_case(world, 'garbage', 'https://127.0.0.1:%d' % g.port,
                       r'SSL|TLS|handshake|wrong version|record|protocol')
    check(g.connections >= 1, 'podio-hook never connected to the garbage '
          'server')
    return note


def t_verify_garbage_tls(world):
    certs = get_certs(world)
    g = GarbageServer(world, certs.cert, certs.key)
    note = verify_case(world, 'garbage-tls', 'https://127.0.0.1:%d' % g.port,
                       r'HTTP|reply|header|response|non-JSON|protocol')
    check(g.connections >= 1, 'podio-hook never connected to the garbage '
          'server')
    return note


def t_verify_html(world):
    fake = fake_url(world, 'html', html_error=True)
    note = verify_case(world, 'html', fake.url, r'HTTP 500.*non-JSON|'
                       r'non-JSON.*HTTP 500')
    seen = [(e.get('path'), e.get('status')) for e in fake.requests()]
    check(seen == [('/oauth/token', 200), ('/hook/42/verify/validate', 500)],
          'the fake saw %s' % seen)
    return note


def t_verify_bad_cert(world):
    get_certs(world)
    other = world.other_certs
    d = world.sub('fake-badcert')
    fake = pod.Fake(d, other, pod.base_scenario())
    world.servers.append(FakeHandle(fake))
    note = verify_case(world, 'badcert', fake.url,
                       r'SSL|certificate|TLS|issuer')
    reqs = [e for e in fake.requests() if e.get('method')]
    check(reqs == [], 'HTTP requests reached the fake with the untrusted '
          'certificate: %s' % [e['path'] for e in reqs])
    return note


def t_verify_refused(world):
    port = harness.free_port()
    return verify_case(world, 'refused', 'https://127.0.0.1:%d' % port,
                       r'connect|refused')


# --------------------------------------------------------------------------
# 5. fdatasync failing

SHIM_C = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
/*
 * podio-hook faults test: every fdatasync fails with EIO; fsync too when
 * FAULTS_FSYNC_EIO is set (otherwise the real fsync runs).
 */
int fdatasync(int fd)
{
	(void)fd;
	errno = EIO;
	return -1;
}

int fsync(int fd)
{
	if (getenv("FAULTS_FSYNC_EIO") != NULL) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}
'''


def sanitized(binary):
    """True for an ASan build: its runtime must load first, so an
    LD_PRELOAD shim makes it refuse to start."""
    r = subprocess.run(['ldd', binary], capture_output=True, text=True)
    return 'libasan' in r.stdout


def build_shim(world):
    if sanitized(world.bin):
        raise Skip('the binary is an ASan build, which refuses LD_PRELOAD; '
                   'the plain build runs this case')
    cc = shutil.which('cc') or shutil.which('gcc')
    if cc is None:
        raise Skip('no C compiler (gcc) to build the LD_PRELOAD shim; the '
                   'unit tests cover fdatasync failures with --wrap')
    d = os.path.join(world.top, 'shim')
    if not os.path.isdir(d):
        os.mkdir(d)
        os.chmod(d, 0o755)
    so = os.path.join(d, 'fail_fdatasync.so')
    if not os.path.exists(so):
        src = os.path.join(d, 'fail_fdatasync.c')
        with open(src, 'w') as f:
            f.write(SHIM_C)
        r = subprocess.run([cc, '-shared', '-fPIC', '-O2', '-o', so, src,
                            '-ldl'],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise Skip('building the shim failed: %s' % r.stderr.strip()[:200])
        os.chmod(so, 0o755)
    return so


def t_fdatasync_cgi(world):
    so = build_shim(world)
    d = world.sub('fdatasync-cgi')
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    ini = write_ini(world, d, spool, sync='yes')
    ini_nosync = write_ini(world, d, spool, sync='no', name='nosync.ini')
    path = os.path.join(spool, 'item.create.jsonl')
    # Control: without the shim the same run answers 200.
    st, out, err = cgi_run(world, ini, event_body('fd-ok'))
    check(st == 200, 'control run without the shim: status %s %r' % (st, err))
    st, out, err = cgi_run(world, ini, event_body('fd-eio'),
                           {'LD_PRELOAD': so})
    check(st == 503, 'with fdatasync failing: status %s, want 503' % st,
          [out[:200], err])
    lines = [l for l in podio_log_lines(err, 'error')
             if 'fdatasync' in l and spool in l]
    check(lines, 'no podio-hook error line naming fdatasync and the spool',
          err.splitlines())
    recs = check_whole(path, 'item.create.jsonl')
    stays = [marker_of(r) for r in recs]
    # sync = no never calls fdatasync: 200 even with the shim.
    st, _, err2 = cgi_run(world, ini_nosync, event_body('fd-nosync'),
                          {'LD_PRELOAD': so})
    check(st == 200, 'sync = no with the shim: status %s, want 200 (%r)'
          % (st, err2))
    return ('logged: %s; the refused event\'s line %s in the spool'
            % (lines[0][:140], 'stays' if 'fd-eio' in stays
               else 'is not'))


def t_fsync_dir_cgi(world):
    so = build_shim(world)
    d = world.sub('fsync-cgi')
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    ini = write_ini(world, d, spool, sync='yes')
    path = os.path.join(spool, 'item.create.jsonl')
    st, out, err = cgi_run(world, ini, event_body('fs-eio'),
                           {'LD_PRELOAD': so, 'FAULTS_FSYNC_EIO': '1'})
    check(st == 503, 'a new spool file whose directory cannot be fsynced: '
          'status %s, want 503' % st, [out[:200], err])
    lines = [l for l in podio_log_lines(err, 'error') if spool in l]
    check(lines, 'no podio-hook error line naming the spool', err.splitlines())
    if os.path.exists(path):
        check(os.path.getsize(path) == 0, 'the refused event left %r'
              % open(path, 'rb').read()[:200])
    return 'logged: %s' % lines[0][:160]


def t_fdatasync_fastcgi(world):
    so = build_shim(world)
    d = world.sub('fdatasync-fcgi')
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    # lighttpd passes its whole environment to bin-path processes (no
    # bin-copy-environment in the snippet), so LD_PRELOAD reaches them.
    srv = Lighttpd(world, d, write_ini(world, d, spool, sync='yes'),
                   env={'LD_PRELOAD': so}).start()
    pids = srv.children()
    envs = []
    for pid in pids:
        try:
            with open('/proc/%d/environ' % pid, 'rb') as f:
                envs.append(b'LD_PRELOAD=' + so.encode() in f.read().split(
                    b'\0'))
        except OSError:
            pass
    if not envs or not all(envs):
        raise Skip('LD_PRELOAD did not reach the FastCGI processes')
    line = expect_503_named(srv, event_body('fdf-1'), spool,
                            'fdatasync failing under lighttpd FastCGI')
    check('fdatasync' in line, 'the error line does not name fdatasync: %s'
          % line)
    check_whole(os.path.join(spool, 'item.create.jsonl'), 'spool')
    return 'logged: %s' % line[:160]


# --------------------------------------------------------------------------

CASES = [
    ('1. ENOSPC through lighttpd FastCGI: 503, only whole lines, 200 once '
     'space is freed', t_enospc_fastcgi),
    ('1. ENOSPC through CGI: 503, only whole lines, 200 once space is freed',
     t_enospc_cgi),
    ('1. ENOSPC during hook.verify through CGI (token cache and event): '
     '503, no temporary file left; 200 once space is freed',
     t_enospc_cgi_verify),
    ('2. spool directory removed under FastCGI: 503 + error naming the '
     'spool; recreated: 200', t_spool_removed),
    ('2. spool directory missing when the FastCGI processes start: 503 + '
     'error naming the spool; created: 200', t_spool_missing_at_start),
    ('2. spool directory read-only (0555, root-owned; the server is '
     'www-data): new type 503 + error; existing file 200; restored: 200',
     t_spool_readonly_mode),
    ('2. spool directory on a read-only bind mount: 503 + error, file '
     'unchanged; unmounted: 200', t_spool_readonly_mount),
    ('2. a FIFO planted as task.create.jsonl under FastCGI: every POST of '
     'that type 503 at once, nothing written into it, other types 200; '
     'removed: 200', t_spool_fifo),
    ('3. kill -9 of a FastCGI process every 100 ms under waves of %d POSTs '
     'at concurrency %d: 2xx spooled exactly once, drain hands over whole '
     'lines, quarantines torn ones' % (KILL_N, KILL_PARALLEL), t_kill9),
    ('4. hook.verify, validate hangs 30 s: 200 within timeout+1, failed, '
     'detail says timeout', t_verify_slow),
    ('4. hook.verify, /oauth/token hangs 30 s: 200 within timeout+1, failed, '
     'detail says timeout', t_verify_slow_token),
    ('4. hook.verify, token and validate hang 2 s each: the whole '
     'verification bounded by timeout, failed, detail says timeout',
     t_verify_slow_both),
    ('4. hook.verify, api_url a TCP server writing random bytes: 200 in '
     'time, failed, detail names TLS', t_verify_garbage),
    ('4. hook.verify, random bytes after a good TLS handshake: 200 in time, '
     'failed, detail names the bad answer', t_verify_garbage_tls),
    ('4. hook.verify, HTML 500 from validate: 200 in time, failed, detail '
     'HTTP 500 non-JSON', t_verify_html),
    ('4. hook.verify, certificate from another CA than ca_file: 200 in '
     'time, failed, detail names the certificate', t_verify_bad_cert),
    ('4. hook.verify, connection refused: 200 in time, failed, detail names '
     'the connection', t_verify_refused),
    ('5. fdatasync failing (LD_PRELOAD shim) in a CGI run: 503 + error line',
     t_fdatasync_cgi),
    ('5. fsync of the spool directory failing when a new spool file is '
     'created (CGI): 503 + error line, no line left', t_fsync_dir_cgi),
    ('5. fdatasync failing (LD_PRELOAD shim) under lighttpd FastCGI: 503 + '
     'error line', t_fdatasync_fastcgi),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready(tools=('lighttpd', 'curl')):
        return suite.finish()
    world = World(suite.bin)
    suite.tmp = world.top
    left = []
    try:
        # Each case's servers end with it; problems stopping them show in
        # the cleanup line.
        suite.run(start=lambda case: world,
                  stop=lambda w: left.extend(w.stop_servers()),
                  timed=True, deadline=DEADLINE)
    finally:
        problems = left + world.close()
        # Not a case of its own: it only fails (a server that outlived its
        # case, a podio-hook process left, a mount not removed).
        if problems:
            suite.rep.fail('cleanup: servers stopped by PID, no podio-hook '
                           'process left, mounts removed', problems[0],
                           problems[1:])
        if world.mounts:  # never remove a tree something is mounted in
            suite.rep.note('mounts left, tree kept: %s'
                           % ' '.join(world.mounts))
            suite.tmp = None
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
