#!/usr/bin/env python3
"""podio-hook memory tests: no growth under load, valgrind-clean.

    python3 tests/leak/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                              [-v]

Cases:

  rss-fastcgi-listen      `podio-hook --listen 127.0.0.1:PORT` (sync = no,
                          temporary spool, 4 threads), driven by the small
                          FastCGI client of tests/lib/fcgiclient.py: 100
                          requests and 10,000 of a mix (valid events of
                          several types, hook.verify without credentials,
                          rejected requests) to settle the heap, VmRSS,
                          10,000 more, VmRSS again.  The growth must stay
                          within RSS_BOUND_KB and every valid event must be
                          in the spool.
  valgrind-fastcgi-listen The same receiver under valgrind memcheck, about
                          2,000 requests of the same mix (bounded in time),
                          then SIGTERM: exit 0, 0 errors, and (valgrind
                          3.19 still runs its leak check when the stop
                          handler calls _exit(0) while idle) no definite or
                          indirect leaks.
  valgrind-cgi-*          One CGI request of each kind under valgrind (each
                          exits through main): 0 errors, no definite or
                          indirect leaks.
  valgrind-drain-status   `status --json` and `drain` (print, --exec,
                          --batch, a failing --exec, a quarantined line)
                          under valgrind on a small spool: 0 errors, no
                          definite or indirect leaks.

The FastCGI client opens a connection per request, as lighttpd and
mod_proxy_fcgi (enablereuse=off) do; half the valid events instead share a
connection kept with FCGI_KEEP_CONN.  Only requests whose body the
receiver reads go over a kept connection: libfcgi does not skip a body
left unread (a 413, 415, 405 ...), so the next request on that connection
would be dropped.

Prints "ok - name" or "FAIL - name: why" per case ("# " lines carry the
figures and evidence; "skip - name: why" for a case that cannot run here)
and, as its last line, "N passed, M failed, K skipped"
(tests/lib/harness.py's Suite, which also gives the options); exits 1
when a case failed.  An ASan
build skips every case, saying why.
Every process it starts is stopped by its pid.  The temporary directory is
removed when everything passed (kept, and named, otherwise or with --keep).

Python 3 standard library only; needs valgrind for the valgrind cases.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, Skip, check  # noqa: E402
from fcgiclient import (FcgiClient, cgi_post, parse_cgi_reply,  # noqa: E402
                        tail, wait_listening)

# Small, so that "too large" is cheap to send and the largest accepted body
# (exactly MAX_BODY bytes, part of the mix) is reached during the warm-up.
MAX_BODY = 8192

WARMUP = 100
LOAD = 10000

# Allowed VmRSS growth between the warm-up and the end of the load.
#
# After the warm-up every kind of request in the mix has run six times,
# including the largest allocations (a body of exactly max_body and its
# spool line), so glibc's heap and the stack have reached their working
# size; a leak-free receiver then stays flat but for a page or two
# (measured: +8 KiB, every run).  A leak is linear in the requests but
# only shows once it has used up the free heap that is already resident:
# glibc keeps up to M_TRIM_THRESHOLD (128 KiB) of free top-of-heap, which
# the big requests of the warm-up touched.  So the smallest leak caught is
# about the bound + 128 KiB.  The smallest one-per-request leak, a single
# forgotten malloc() of a few bytes, is a 32-byte chunk * ~10,000 requests
# = ~310 KiB: it must be caught, so the bound is 64 KiB (8x the noise;
# such a leak, injected with an LD_PRELOAD shim that skips free() of
# 24-byte blocks, i.e. the query-string copy, grew VmRSS by 144 KiB).
# Smaller leaks, or leaks in one rare kind of request, are what the
# valgrind cases are for.
RSS_BOUND_KB = 64

# valgrind: requests sent to the FastCGI server, and the time allowed.
VG_REQUESTS = 2000
VG_SEND_SECONDS = 35
VG_MIN_REQUESTS = 300  # fewer than this proves little: a failure

VALGRIND = ['valgrind', '--error-exitcode=99', '--leak-check=full',
            '--errors-for-leak-kinds=definite,indirect', '--track-fds=no',
            '--show-leak-kinds=definite,indirect', '--num-callers=30']


# --------------------------------------------------------------------------
# The request mix (sent with tests/lib/fcgiclient.py)


def _big(n):
    """item.update whose body is exactly MAX_BODY bytes (accepted)."""
    head = 'type=item.update&item_id=%d&item_revision_id=3&pad=' % n
    return cgi_post(head + 'x' * (MAX_BODY - len(head)))


# name -> (builder(n) -> (env, body), status, spooled type, id param).
# n is unique per request; a valid event carries it in its id param so the
# spool can be compared with what was sent.
KINDS = [
    ('item.create', lambda n: cgi_post(
        'type=item.create&item_id=%d&item_revision_id=1&external_id=ext-%d'
        '&hook_id=7' % (n, n)), 200, 'item.create', 'item_id'),
    ('comment.create', lambda n: cgi_post(
        'type=comment.create&item_id=11&comment_id=%d' % n),
     200, 'comment.create', 'comment_id'),
    ('file.change', lambda n: cgi_post(
        'type=file.change&item_id=%d&action_type=file_created'
        '&file_ids=1%%2C2%%2C3' % n), 200, 'file.change', 'item_id'),
    ('task.update+query', lambda n: cgi_post(
        'type=task.update&task_id=%d&hook_id=9' % n, query='hook_id=9'),
     200, 'task.update', 'task_id'),
    ('tag.add+utf8', lambda n: cgi_post(
        'type=tag.add&item_id=%d&target_type=item&note=caf%%C3%%A9+%%E2'
        '%%9C%%93%%0A%%22q%%22' % n), 200, 'tag.add', 'item_id'),
    ('item.update-max-body', _big, 200, 'item.update', 'item_id'),
    ('hook.verify-no-credentials', lambda n: cgi_post(
        'type=hook.verify&hook_id=%d&code=c0de%d' % (n, n)),
     200, 'hook.verify', 'hook_id'),
    ('bad-escape', lambda n: cgi_post('type=item.create&item_id=%zz'),
     400, None, None),
    ('wrong-content-type', lambda n: cgi_post(
        'type=item.create&item_id=%d' % n, ctype='text/plain'),
     415, None, None),
    # The body is sent, as a web server would, and left unread (413).
    ('too-large', lambda n: cgi_post('type=item.create&item_id=1&pad=' +
                                  'y' * (MAX_BODY - 30)), 413, None, None),
    ('GET', lambda n: ({'REQUEST_METHOD': 'GET', 'QUERY_STRING':
                        'type=item.create&item_id=%d' % n,
                        'REMOTE_ADDR': '192.0.2.7',
                        'GATEWAY_INTERFACE': 'CGI/1.1'}, b''),
     405, None, None),
    ('bad-utf8', lambda n: cgi_post('type=item.create&item_id=%FF%FE'),
     400, None, None),
    ('duplicate-key',
     lambda n: cgi_post('type=item.create&item_id=1&item_id=2'),
     400, None, None),
    ('query-body-conflict', lambda n: cgi_post(
        'type=item.create&item_id=1', query='item_id=2'), 400, None, None),
    ('hook.verify-without-code', lambda n: cgi_post(
        'type=hook.verify&hook_id=5'), 400, None, None),
    ('no-content-length', lambda n: cgi_post('', clen=''), 411, None, None),
]


def send_mix(client, start, count, expected, deadline=None):
    """Sends requests start..start+count-1 of the mix, checking each status;
    valid events are recorded in expected[type].  Half the valid events go
    over a kept connection (FCGI_KEEP_CONN, as nginx does).  -> (sent,
    list of mismatches)."""
    bad = []
    sent = 0
    for n in range(start, start + count):
        if deadline is not None and time.monotonic() > deadline:
            break
        name, build, status, stype, idkey = KINDS[n % len(KINDS)]
        env, body = build(n)
        # Rejected requests too: a body left unread must not break the
        # next request on a kept connection.
        keep = (n // len(KINDS)) % 2 == 0
        try:
            got, _, _ = client.request(env, body, keep=keep)
        except (OSError, Failure) as e:
            got = 'error %s' % e
        sent += 1
        if got != status:
            bad.append('request %d (%s): status %s, want %s'
                       % (n, name, got, status))
        elif stype is not None:
            expected.setdefault(stype, set()).add(str(n))
    client.close()
    return sent, bad


def check_spool(spool, expected):
    """Every valid event sent is in the spool, once; nothing else is."""
    problems = []
    files = sorted(f for f in os.listdir(spool) if f.endswith('.jsonl'))
    want_files = sorted(t + '.jsonl' for t in expected)
    if files != want_files:
        problems.append('spool files %s, want %s' % (files, want_files))
    idkey = {k[3]: k[4] for k in KINDS if k[3] is not None}
    total = 0
    for stype, ns in sorted(expected.items()):
        path = os.path.join(spool, stype + '.jsonl')
        if not os.path.exists(path):
            problems.append('%s missing' % path)
            continue
        with open(path, 'rb') as f:
            data = f.read()
        if not data.endswith(b'\n'):
            problems.append('%s does not end in a newline' % path)
        got = []
        for line in data.splitlines():
            try:
                rec = json.loads(line)
                got.append(rec['params'][idkey[stype]])
                if rec['type'] != stype:
                    problems.append('%s: a record of type %s'
                                    % (path, rec['type']))
            except (ValueError, KeyError, TypeError) as e:
                problems.append('%s: bad line %r: %s' % (path, line[:100], e))
        total += len(got)
        if len(got) != len(ns) or set(got) != ns:
            missing = sorted(ns - set(got), key=int)[:5]
            problems.append('%s: %d lines for %d events sent; missing e.g. %s'
                            % (stype, len(got), len(ns), missing))
    return total, problems


# --------------------------------------------------------------------------
# Processes

class World:
    def __init__(self, binary):
        self.bin = binary
        self.tmp = tempfile.mkdtemp(prefix='podio-hook-leak-')
        self.procs = []
        self.n = 0

    def sub(self, name):
        self.n += 1
        d = os.path.join(self.tmp, '%02d-%s' % (self.n, name))
        os.makedirs(d)
        return d

    def write_ini(self, d, level='info'):
        spool = os.path.join(d, 'spool')
        os.makedirs(spool, exist_ok=True)
        ini = os.path.join(d, 'podio-hook.ini')
        with open(ini, 'w') as f:
            f.write('[spool]\ndir = %s\nsync = no\nfile_mode = 0640\n\n'
                    '[receiver]\nmax_body = %d\n\n[log]\nlevel = %s\n'
                    % (spool, MAX_BODY, level))
        os.chmod(ini, 0o600)
        return ini, spool

    def start(self, argv, log):
        with open(log, 'wb') as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=subprocess.STDOUT,
                                 cwd=self.tmp, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, wait=30):
        """Stops p (by its pid) and returns its exit status."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            return p.wait(wait)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            raise Failure('pid %d did not exit within %d s of signal %d'
                          % (p.pid, wait, sig))
        finally:
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs = []


def vm_kb(pid, field='VmRSS'):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise Failure('%s not in /proc/%d/status' % (field, pid))


# --------------------------------------------------------------------------
# valgrind's report

def valgrind_summary(text):
    """-> dict(errors, definite, indirect, blocks): errors from the ERROR
    SUMMARY line (None when absent), leaked bytes (0 when the leak summary
    says nothing), and the text of each error or loss record."""
    lines = []
    for line in text.splitlines():
        m = re.match(r'==\d+== ?(.*)$', line)
        if m:
            lines.append(m.group(1))
    errors = None
    for line in lines:
        m = re.match(r'ERROR SUMMARY: ([\d,]+) errors', line)
        if m:
            errors = int(m.group(1).replace(',', ''))
    leaked = {}
    for kind in ('definitely', 'indirectly'):
        leaked[kind] = 0
        for line in lines:
            m = re.match(r'\s*%s lost: ([\d,]+) bytes' % kind, line)
            if m:
                leaked[kind] = int(m.group(1).replace(',', ''))
    # Blocks: paragraphs after the preamble that are not summaries.
    blocks = []
    cur = []
    started = False
    for line in lines + ['']:
        if line.startswith('Command:'):
            started = True
            continue
        if not started:
            continue
        if line.strip() == '':
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append(line)
    boring = re.compile(r'(HEAP SUMMARY|LEAK SUMMARY|ERROR SUMMARY|'
                        r'For lists of|For counts of|Rerun with|'
                        r'All heap blocks|in use at exit|total heap usage|'
                        r'Use --track-origins|To see them, rerun|'
                        r'Reachable blocks|still reachable|possibly lost|'
                        r'suppressed:|definitely lost:|indirectly lost:|'
                        r'Parent PID|FILE DESCRIPTORS|Open file descriptor)')
    kept = [b for b in blocks if not boring.search(b[0])]
    return {'errors': errors, 'definite': leaked['definitely'],
            'indirect': leaked['indirectly'], 'blocks': kept}


def valgrind_verdict(what, rc, logs):
    """Fails unless every log is clean; what names the run.  The log of the
    process this script started must hold valgrind's summary; the logs of
    the children it forked (which exec()ed /bin/sh, where valgrind lets go)
    may hold only the preamble, but no error either."""
    problems = []
    evidence = []
    if rc == 99:
        problems.append('valgrind exit status 99 (errors found)')
    for log in logs:
        with open(log, 'rb') as f:
            text = f.read().decode('utf-8', 'replace')
        s = valgrind_summary(text)
        name = os.path.basename(log)
        m = re.search(r'Parent PID: (\d+)', text)
        started_here = m is not None and int(m.group(1)) == os.getpid()
        if s['errors'] is None and started_here:
            problems.append('%s: no ERROR SUMMARY (killed?)' % name)
        if s['errors']:
            problems.append('%s: %d errors' % (name, s['errors']))
        elif s['blocks']:
            problems.append('%s: error reports' % name)
        if s['definite'] or s['indirect']:
            problems.append('%s: %d bytes definitely, %d indirectly lost'
                            % (name, s['definite'], s['indirect']))
        for b in s['blocks'][:6]:
            evidence.extend(['%s: %s' % (name, line) for line in b])
    if problems:
        raise Failure('%s: %s\n%s' % (what, '; '.join(problems),
                                       '\n'.join('# ' + e
                                                 for e in evidence[:150])))


# --------------------------------------------------------------------------
# Cases

def t_rss(world, note):
    if is_asan(world.bin):
        # ASan holds freed memory in quarantine (256 MB by default), so
        # RSS grows by design; the plain build's run applies the bound.
        raise Skip('%s is an ASan build; its RSS grows by design'
                   % world.bin)
    d = world.sub('rss')
    ini, spool = world.write_ini(d)
    port = harness.free_port()
    log = os.path.join(d, 'podio-hook.log')
    p = world.start([world.bin, '--config', ini, '--listen',
                     '127.0.0.1:%d' % port], log)
    wait_listening(p, port, log, 10)
    client = FcgiClient(port)
    expected = {}
    t0 = time.monotonic()
    sent, bad = send_mix(client, 0, WARMUP, expected)
    time.sleep(0.2)
    check(p.poll() is None, 'receiver exited (%s) during the warm-up: %s',
          p.returncode, tail(log))
    rss_warm = vm_kb(p.pid)
    # The receiver's threads ([receiver] threads) overlap: one may still
    # free its buffers while another allocates for the next request: the heap
    # settles over the first thousands of requests, by a page or a few at
    # a time.  So the first LOAD requests only settle it; the bound
    # applies to the next LOAD, where a leak grows as it did in the first.
    sent1, bad1 = send_mix(client, WARMUP, LOAD, expected)
    time.sleep(0.2)
    check(p.poll() is None, 'receiver exited (%s) under load: %s',
          p.returncode, tail(log))
    rss0 = vm_kb(p.pid)
    sent2, bad2 = send_mix(client, WARMUP + LOAD, LOAD, expected)
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    check(p.poll() is None, 'receiver exited (%s) under load: %s',
          p.returncode, tail(log))
    rss1 = vm_kb(p.pid)
    hwm = vm_kb(p.pid, 'VmHWM')
    rc = world.stop(p)
    note('VmRSS after %d requests: %d kB; after %d: %d kB; after %d: %d kB '
         '(growth %+d kB, bound %d kB); VmHWM %d kB; %.1f s, %.0f '
         'requests/s'
         % (sent, rss_warm, sent + sent1, rss0, sent + sent1 + sent2, rss1,
            rss1 - rss0, RSS_BOUND_KB, hwm, elapsed,
            (sent + sent1 + sent2) / elapsed))
    bad += bad1 + bad2
    check(not bad, '%d requests answered wrongly, e.g. %s', len(bad),
          '; '.join(bad[:5]))
    check(rss1 - rss0 <= RSS_BOUND_KB,
          'VmRSS grew by %d kB (from %d to %d) over %d requests; bound %d kB',
          rss1 - rss0, rss0, rss1, sent2, RSS_BOUND_KB)
    total, problems = check_spool(spool, expected)
    check(not problems, 'spool: %s', '; '.join(problems[:5]))
    note('%d valid events sent, %d spooled lines' %
         (sum(len(v) for v in expected.values()), total))
    check(rc == 0, 'exit status %s after SIGTERM, want 0', rc)


def is_asan(binary):
    out = subprocess.run(['nm', binary], capture_output=True, text=True)
    return '__asan_init' in out.stdout


def need_valgrind(world):
    if shutil.which('valgrind') is None:
        raise Skip('valgrind is not installed')
    if is_asan(world.bin):
        raise Skip('%s is an ASan build; valgrind cannot run it'
                   % world.bin)


def vg_argv(log_pattern):
    return VALGRIND + ['--log-file=' + log_pattern]


def t_valgrind_fastcgi(world, note):
    need_valgrind(world)
    d = world.sub('vg-fastcgi')
    ini, spool = world.write_ini(d)
    port = harness.free_port()
    out = os.path.join(d, 'podio-hook.out')
    vlog = os.path.join(d, 'valgrind.%p.log')
    p = world.start(vg_argv(vlog) + [world.bin, '--config', ini, '--listen',
                                     '127.0.0.1:%d' % port], out)
    wait_listening(p, port, out, 60)
    client = FcgiClient(port, timeout=60)
    expected = {}
    t0 = time.monotonic()
    sent, bad = send_mix(client, 0, VG_REQUESTS, expected,
                         deadline=t0 + VG_SEND_SECONDS)
    elapsed = time.monotonic() - t0
    time.sleep(0.3)  # back in accept(): SIGTERM then exits at once
    rc = world.stop(p, wait=60)
    logs = sorted(glob.glob(os.path.join(d, 'valgrind.*.log')))
    note('%d requests in %.1f s under valgrind; exit status %s'
         % (sent, elapsed, rc))
    check(logs, 'no valgrind log')
    # _exit() from the signal handler: valgrind still prints its summary,
    # and the blocks still held (config, request state on main's stack) are
    # reachable, not lost; so leaks are judged here too.
    valgrind_verdict('FastCGI --listen', rc, logs)
    check(not bad, '%d requests answered wrongly, e.g. %s', len(bad),
          '; '.join(bad[:5]))
    check(sent >= VG_MIN_REQUESTS, 'only %d requests in %d s', sent,
          VG_SEND_SECONDS)
    check(rc == 0, 'exit status %s after SIGTERM, want 0', rc)
    total, problems = check_spool(spool, expected)
    check(not problems, 'spool: %s', '; '.join(problems[:5]))


def cgi_env(ini, env):
    e = {'PATH': '/usr/bin:/bin', 'PODIO_HOOK_CONFIG': ini}
    e.update(env)
    e['GATEWAY_INTERFACE'] = 'CGI/1.1'
    return e


def run_vg(world, d, name, argv, env=None, stdin=b'', timeout=60):
    """Runs argv under valgrind -> (rc, stdout, stderr, logs)."""
    vdir = os.path.join(d, 'vg-' + name)
    os.makedirs(vdir)
    try:
        r = subprocess.run(vg_argv(os.path.join(vdir, 'valgrind.%p.log'))
                           + argv, input=stdin, capture_output=True,
                           env=env, cwd=d, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure('%s: did not finish under valgrind in %d s'
                      % (name, timeout))
    logs = sorted(glob.glob(os.path.join(vdir, 'valgrind.*.log')),
                  key=lambda p: int(re.search(r'\.(\d+)\.log$', p).group(1)))
    return r.returncode, r.stdout, r.stderr, logs


def make_cgi_case(kind):
    name, build, status, stype, _ = kind

    def t(world, note):
        need_valgrind(world)
        d = world.sub('vg-cgi-' + re.sub(r'[^a-z0-9]+', '-', name.lower()))
        ini, spool = world.write_ini(d)
        env, body = build(4242)
        rc, out, err, logs = run_vg(world, d, 'cgi', [world.bin],
                                    env=cgi_env(ini, env), stdin=body)
        check(logs, 'no valgrind log')
        valgrind_verdict('CGI ' + name, rc, logs)
        check(rc == 0, 'exit status %d, want 0; stderr: %s', rc,
              err.decode('utf-8', 'replace')[-300:])
        got, _, _ = parse_cgi_reply(out)
        check(got == status, 'status %d, want %d', got, status)
        spooled = sorted(os.listdir(spool))
        want = [stype + '.jsonl'] if stype else []
        check(spooled == want, 'spool holds %s, want %s', spooled, want)
    return t


def t_valgrind_drain(world, note):
    need_valgrind(world)
    d = world.sub('vg-drain')
    ini, spool = world.write_ini(d)
    # A small spool, written by the receiver itself (natively, as CGI).
    events = [
        'type=item.create&item_id=1&hook_id=3',
        'type=item.create&item_id=2',
        'type=item.update&item_id=2&item_revision_id=5',
        'type=comment.create&item_id=2&comment_id=8&note=caf%C3%A9%0A',
        'type=comment.create&item_id=2&comment_id=9',
        'type=task.create&task_id=4',
        'type=task.update&task_id=4',
        'type=tag.add&item_id=1&target_type=item',
        'type=hook.verify&hook_id=77&code=abc',
    ]
    for ev in events:
        env, body = cgi_post(ev)
        r = subprocess.run([world.bin], input=body, capture_output=True,
                           env=cgi_env(ini, env), timeout=20)
        check(b'Status: 200' in r.stdout, 'spooling %s: %r %r', ev,
              r.stdout[:200], r.stderr[-200:])
    # A torn line and a line that is not JSON: both are quarantined.
    with open(os.path.join(spool, 'item.create.jsonl'), 'ab') as f:
        f.write(b'{"not json\n')
    with open(os.path.join(spool, 'tag.add.jsonl'), 'ab') as f:
        f.write(b'{"id":"torn')

    def vg(name, args, want_rc):
        rc, out, err, logs = run_vg(world, d, name,
                                    [world.bin, '--config', ini] + args)
        check(logs, '%s: no valgrind log', name)
        valgrind_verdict(' '.join(args), rc, logs)
        check(rc in want_rc, '%s: exit status %d, want %s; stderr: %s',
              ' '.join(args), rc, want_rc,
              err.decode('utf-8', 'replace')[-300:])
        return out

    out = vg('status-before', ['status', '--json'], (0, 1))
    st = json.loads(out)
    check(st['types']['item.create']['pending'] >= 2,
          'status before: %r', st)
    out = vg('status-text', ['status'], (0, 1))
    out = vg('drain-print', ['drain', '--type', 'item.*'], (0, 1))
    lines = out.splitlines()
    check(len(lines) == 3, 'drain printed %d lines, want 3: %r', len(lines),
          out[:300])
    vg('drain-exec', ['drain', '--type', 'comment.*', '--exec',
                      'cat >/dev/null'], (0,))
    vg('drain-batch', ['drain', '--type', 'task.*', '--batch',
                       'cat >/dev/null'], (0,))
    vg('drain-fail', ['drain', '--exec', 'exit 3', '--max-attempts', '1',
                      '-v'], (1,))
    out = vg('status-after', ['status', '--json'], (1,))
    st = json.loads(out)
    failed = sum(t['failed'] for t in st['types'].values())
    quarantined = sum(t['quarantined'] for t in st['types'].values())
    check(failed >= 2 and quarantined >= 1,
          'status after: failed %d, quarantined %d: %r', failed, quarantined,
          st)
    vg('drain-retry-failed', ['drain', '--retry-failed', '--exec', 'true'],
       (0, 1))
    out = vg('status-end', ['status', '--json'], (0, 1))
    json.loads(out)
    note('status --json, status, drain (print, --exec, --batch, failing '
         '--exec, --retry-failed) under valgrind: clean')


def cases():
    out = [('rss-fastcgi-listen', t_rss),
           ('valgrind-fastcgi-listen', t_valgrind_fastcgi)]
    for kind in KINDS:
        out.append(('valgrind-cgi-' + kind[0], make_cgi_case(kind)))
    out.append(('valgrind-drain-status', t_valgrind_drain))
    return out


def main():
    suite = harness.Suite(__doc__, cases())
    suite.parse()
    if not suite.ready():
        return suite.finish()
    if is_asan(suite.bin):
        # Every case measures memory of a plain build: ASan's quarantine
        # grows RSS by design and valgrind cannot run an ASan binary.
        suite.rep.skip_all([name for name, _ in suite.selected()],
                           '%s is an ASan build; the RSS and valgrind cases '
                           'run on the plain build (make check without '
                           'SANITIZE=1)' % suite.bin)
        return suite.finish()
    world = World(suite.bin)
    suite.tmp = world.tmp
    try:
        # A case's figures: '# ' lines after its own line.
        suite.run(start=lambda case: world,
                  call=lambda case, w: case[1](w, suite.rep.later),
                  stop=World.stop_all)
    finally:
        world.stop_all()
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
