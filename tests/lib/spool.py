"""tests/lib/spool.py - spools for the consumer-side suites (drain, engine,
brokers).

    sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
    import spool

Workspace: one run's temporary directory, the suite's own copy of the
binary (which lighttpd's www-data can reach) and what each case started,
stopped by cleanup_case().  Spool: a spool directory with its config,
filled by the real binary run as a CGI program (post) or with lines
written byte for byte (write, make_line), and the binary's drain and
status run on it.  script/recorder/read_calls: handlers for drain --exec
and what they were given.  Lighttpd: the shipped FastCGI snippet in
front of a spool; post_many: curl --parallel against it.  Python 3
standard library only; every assertion stays in the suites.
"""

import grp
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time

import harness
from harness import SYS_PATH, Failure, check, eq, form

REPO = harness.REPO
RUN_USER = harness.RUN_USER  # what lighttpd runs podio-hook as when root
OLD = '2020-01-02T03:04:05.123456Z'
NOW_ISH = '2026-11-27T05:48:19.123456Z'


# --------------------------------------------------------------------------
# One run's temporary directory

class Workspace:
    """A temporary directory (prefix) holding the run's own copy of the
    binary (self.bin), the processes a case started (self.procs, killed by
    cleanup_case) and what stops its servers (self.stoppers, called in
    reverse by cleanup_case); self.notes: lines for the end of the run."""

    def __init__(self, binary, prefix):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.tmp, 0o755)
        self.bin = harness.copy_binary(binary, self.tmp)
        self.procs = []
        self.stoppers = []
        self.notes = []

    def note(self, s):
        self.notes.append(s)

    def cleanup_case(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
        self.procs = []
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print('# stopping: %s' % e)
        self.stoppers = []


def make_line(eid, etype, params=(), received=NOW_ISH, remote='127.0.0.1'):
    """A spool line as the receiver writes it (SPEC section 5)."""
    p = {'type': etype}
    p.update(params)
    obj = {'id': eid, 'received': received, 'type': etype,
           'remote_addr': remote, 'params': p}
    return (json.dumps(obj, separators=(',', ':'), ensure_ascii=False)
            + '\n').encode()


def lines_of(data):
    """bytes -> list of lines, each with its '\\n' (a torn tail kept)."""
    return data.splitlines(keepends=True)



def wait_for(cond, timeout, what):
    """Polls cond() until it is true; fails the case after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise Failure('timed out waiting for ' + what)


# --------------------------------------------------------------------------
# One spool with its config

class Spool:
    def __init__(self, h, name, extra=''):
        self.h = h
        self.dir = os.path.join(h.tmp, name)
        os.makedirs(self.dir)
        self.spool = os.path.join(self.dir, 'spool')
        os.mkdir(self.spool)
        self.ini = os.path.join(self.dir, 'podio-hook.ini')
        with open(self.ini, 'w') as f:
            f.write('[spool]\ndir = %s\nsync = no\n%s' % (self.spool, extra))
        os.chmod(self.ini, 0o600)
        self.failed = os.path.join(self.spool, 'failed')
        self.bad = os.path.join(self.spool, 'bad')

    def env(self, **extra):
        e = {'PATH': SYS_PATH, 'LANG': 'C', 'PODIO_HOOK_CONFIG': self.ini}
        for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS'):  # for SANITIZE=1 builds
            if k in os.environ:
                e[k] = os.environ[k]
        e.update(extra)
        return e

    def path(self, *names):
        return os.path.join(self.spool, *names)

    # -- filling -----------------------------------------------------------

    def post(self, pairs, query='', remote='127.0.0.1'):
        """Runs the binary as CGI; returns the spooled line (bytes)."""
        body = form(pairs).encode() if not isinstance(pairs, bytes) else pairs
        before = self.snapshot_pending()
        env = self.env(GATEWAY_INTERFACE='CGI/1.1', REQUEST_METHOD='POST',
                       CONTENT_TYPE='application/x-www-form-urlencoded',
                       CONTENT_LENGTH=str(len(body)), QUERY_STRING=query,
                       REMOTE_ADDR=remote, SERVER_PROTOCOL='HTTP/1.1',
                       SCRIPT_NAME='/hook')
        r = subprocess.run([self.h.bin], input=body, env=env,
                           capture_output=True, timeout=20)
        head = r.stdout.split(b'\r\n', 1)[0].split(b'\n', 1)[0]
        check(r.returncode == 0 and head.startswith(b'Status: 200'),
              'CGI post %r answered %r (exit %d, stderr %r)', body[:80],
              r.stdout[:200], r.returncode, r.stderr[-300:])
        after = self.snapshot_pending()
        new = [n for n in after if after[n] != before.get(n, b'')]
        check(len(new) == 1, 'CGI post changed %r', new)
        added = after[new[0]][len(before.get(new[0], b'')):]
        check(added.endswith(b'\n') and added.count(b'\n') == 1,
              'CGI post appended %r', added)
        return added

    def snapshot_pending(self):
        out = {}
        for n in os.listdir(self.spool):
            if n.endswith('.jsonl'):
                with open(self.path(n), 'rb') as f:
                    out[n] = f.read()
        return out

    def write(self, name, data, mode='wb'):
        with open(self.path(name), mode) as f:
            f.write(data)

    def read(self, *names):
        with open(self.path(*names), 'rb') as f:
            return f.read()

    def exists(self, *names):
        return os.path.exists(self.path(*names))

    # -- running -----------------------------------------------------------

    def run(self, args, timeout=60, stdout=None, **kw):
        argv = [self.h.bin] + list(args)
        if stdout is not None:
            r = subprocess.run(argv, env=self.env(), stdout=stdout,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               timeout=timeout, **kw)
        else:
            r = subprocess.run(argv, env=self.env(), capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=timeout, **kw)
        return r

    def drain(self, *args, **kw):
        return self.run(['drain'] + list(args), **kw)

    def popen_drain(self, *args, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL):
        p = subprocess.Popen([self.h.bin, 'drain'] + list(args),
                             env=self.env(), stdin=subprocess.DEVNULL,
                             stdout=stdout, stderr=stderr)
        self.h.procs.append(p)
        return p

    def status(self, want_exit=None):
        r = self.run(['status', '--json'])
        if want_exit is not None:
            check(r.returncode == want_exit,
                  'status --json exited %d, want %d (stderr %r)',
                  r.returncode, want_exit, r.stderr[-300:])
        out = r.stdout.decode()
        check(out.endswith('\n') and out.count('\n') == 1,
              'status --json printed %r, want one line', out)
        j = json.loads(out)
        check(j.get('spool') == self.spool, 'status spool %r', j.get('spool'))
        return j, r.returncode

    def counts(self, etype, want_exit=None):
        j, _ = self.status(want_exit)
        zero = {'pending': 0, 'oldest_pending_age_s': 0, 'in_progress': 0,
                'failed': 0, 'quarantined': 0}
        return j['types'].get(etype, zero)

    def work_files(self):
        return sorted(n for n in os.listdir(self.spool)
                      if re.fullmatch(r'.+\.jsonl\.claim-[0-9-]+', n))

    def leftovers(self):
        """Files in the spool other than the lock and the two folders."""
        names = [n for n in os.listdir(self.spool)
                 if n not in ('.drain.lock', 'failed', 'bad')]
        for sub in ('failed', 'bad'):
            if os.path.isdir(self.path(sub)):
                names += [sub + '/' + n for n in os.listdir(self.path(sub))]
        return sorted(names)

    def expect_empty(self):
        eq(self.leftovers(), [], 'files left in the spool')


# --------------------------------------------------------------------------
# Handlers (shell scripts run by drain --exec / --batch)

def script(sp, name, text):
    path = os.path.join(sp.dir, name)
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + text)
    os.chmod(path, 0o755)
    return path


def recorder(sp, fail_file=None):
    """--exec handler: saves stdin and env per call, in call order."""
    calls = os.path.join(sp.dir, 'calls')
    os.mkdir(calls)
    fail = ('if [ -f %s ] && grep -qxF "$PODIO_EVENT_ID" %s; then '
            'exit 3; fi\n' % (fail_file, fail_file)) if fail_file else ''
    return calls, script(sp, 'handler.sh', (
        'd=%s\n'
        'n=$(ls "$d" | wc -l)\n'
        'n=$(printf %%05d $((n / 2)))\n'
        'cat > "$d/$n.in"\n'
        'env -0 > "$d/$n.env"\n' % calls) + fail)


def read_calls(calls):
    """[(stdin bytes, env dict)] in call order."""
    out = []
    names = sorted(n for n in os.listdir(calls) if n.endswith('.in'))
    for n in names:
        with open(os.path.join(calls, n), 'rb') as f:
            data = f.read()
        with open(os.path.join(calls, n[:-3] + '.env'), 'rb') as f:
            env = dict(kv.split(b'=', 1) for kv in f.read().split(b'\0')
                       if b'=' in kv)
        env = {k.decode(): v.decode('utf-8', 'replace')
               for k, v in env.items()}
        out.append((data, env))
    return out



# --------------------------------------------------------------------------
# lighttpd in front of a spool

class Lighttpd:
    def __init__(self, h, sp):
        self.h = h
        self.sp = sp
        self.run = os.path.join(sp.dir, 'run')
        os.mkdir(self.run)
        os.chmod(sp.dir, 0o755)
        ids = harness.run_ids()
        if ids is not None:
            for p in (self.run, sp.spool):
                os.chown(p, ids[0], ids[1])
        harness.give_config(sp.ini)
        os.chmod(sp.spool, 0o755)
        self.port = harness.free_port()
        src = os.path.join(REPO, 'lighttpd', 'podio-hook-fastcgi.conf')
        with open(src) as f:
            snippet = harness.substitute_lighttpd(f.read(), {
                'bin': h.bin, 'config': sp.ini,
                'socket': os.path.join(self.run, 'podio-hook.sock'),
                'log': os.path.join(self.run, 'breakage.log')})
        snippet_path = os.path.join(sp.dir, 'podio-hook-fastcgi.conf')
        with open(snippet_path, 'w') as f:
            f.write(snippet)
        docroot = os.path.join(sp.dir, 'docroot')
        os.mkdir(docroot)
        self.error_log = os.path.join(self.run, 'error.log')
        lines = ['server.document-root = "%s"' % docroot,
                 'server.bind = "127.0.0.1"',
                 'server.port = %d' % self.port,
                 'server.errorlog = "%s"' % self.error_log]
        if ids is not None:
            lines += ['server.username = "%s"' % RUN_USER,
                      'server.groupname = "%s"'
                      % grp.getgrgid(ids[1]).gr_name]
        lines.append('include "%s"' % snippet_path)
        self.conf = os.path.join(sp.dir, 'lighttpd.conf')
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.proc = None

    def start(self):
        self.stderr = open(os.path.join(self.sp.dir, 'lighttpd.out'), 'wb')
        self.proc = subprocess.Popen(
            ['lighttpd', '-D', '-f', self.conf], stdin=subprocess.DEVNULL,
            stdout=self.stderr, stderr=self.stderr, start_new_session=True,
            env={'PATH': SYS_PATH, 'LANG': 'C'})
        self.h.stoppers.append(self.stop)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure('lighttpd exited %d: %s' % (
                    self.proc.returncode, self.logs()))
            if harness.http_code(self.url()) == '405':
                return
            time.sleep(0.05)
        raise Failure('lighttpd did not answer 405 to GET: %s' % self.logs())

    def url(self):
        return 'http://127.0.0.1:%d/hook' % self.port

    def logs(self):
        out = ''
        for p in (self.error_log, os.path.join(self.run, 'breakage.log'),
                  os.path.join(self.sp.dir, 'lighttpd.out')):
            try:
                with open(p, errors='replace') as f:
                    out += f.read()[-1500:]
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        harness.terminate(self.proc, 15)
        self.stderr.close()


def post_many(h, server, prefix, n, parallel=8, rounds=10):
    """Posts n events with curl --parallel, in rounds with short pauses so
    that drains run while writers append; returns the answer codes."""
    codes = []
    rnd = random.Random(prefix)
    per = (n + rounds - 1) // rounds
    for r0 in range(0, n, per):
        cfg = os.path.join(server.sp.dir, 'curl-%s%d.cfg' % (prefix, r0))
        with open(cfg, 'w') as f:
            for i in range(r0, min(n, r0 + per)):
                if i > r0:
                    f.write('next\n')
                f.write('url = "%s"\nsilent\nmax-time = 20\n'
                        'data = "type=item.create&item_id=%d&hook_id=7'
                        '&marker=%s%04d"\noutput = "/dev/null"\n'
                        'write-out = "%%{http_code}\\n"\n'
                        % (server.url(), i, prefix, i))
        r = subprocess.run(['curl', '--parallel', '--parallel-max',
                            str(parallel), '-K', cfg], capture_output=True,
                           text=True, timeout=120)
        codes += r.stdout.split()
        time.sleep(rnd.uniform(0.05, 0.3))
    return codes



# --------------------------------------------------------------------------
# A suite whose cases share one Workspace

def run_suite(suite, ws, slow=None):
    """Runs suite's cases (harness.Suite, parsed), each called with ws and
    followed by ws.cleanup_case(); ws's notes come after the cases and
    ws.tmp is suite's temporary tree.  Returns suite.finish()."""
    suite.tmp = ws.tmp
    try:
        suite.run(start=lambda case: ws, stop=Workspace.cleanup_case,
                  slow=slow)
    finally:
        ws.cleanup_case()
        for n in ws.notes:
            suite.rep.note(n)
    return suite.finish()
