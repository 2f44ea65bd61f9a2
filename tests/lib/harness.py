"""tests/lib/harness.py - helpers shared by the Python suites.

    sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
    import harness

One copy of what the suites used to repeat: a free TCP port, the uid/gid
the servers run their programs as when we are root, a copy of the binary
they can reach and a config only they can read, the lighttpd snippet's
var.podio_hook_* substitution and the config around it, reading a server's
logs since a mark, asking a server for its HTTP status, the processes
running a program, stopping a process by its PID, the CGI environment of a
POST, a url-encoded form, what a case raises (Failure, Skip) and the checks
that raise it, reporting (Report: the per-case lines and the last line
"N passed, M failed, K skipped" that tests/check sums) and the suites' one
main loop (Suite: the command line, the cases in order with their setup
and cleanup, the temporary tree).
Python 3 standard library only; no checks of its own: every assertion
stays in the suites.

Beside it: spool.py (a spool filled by the binary run as CGI, the drain
suites' lighttpd), fakepodio.py (the fake Podio API and what the suites
check of what it saw), fcgiclient.py (a FastCGI client).
"""

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RUN_USER = 'www-data'   # what the servers run podio-hook as when we are root
# Where the suites look for programs: the servers live in sbin.
SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


# --------------------------------------------------------------------------
# What a case raises, and the checks that raise it

class Failure(Exception):
    """The case failed: why goes on its FAIL line, each item of evidence on
    a '#   ' line below it."""

    def __init__(self, why, evidence=()):
        super().__init__(why)
        self.why = why
        self.evidence = list(evidence)


class Skip(Exception):
    """The case cannot run here; the message says why."""


class Interrupted(Exception):
    """The run must end now (its deadline passed, SIGTERM): the case in
    hand is cleaned up and no further case runs."""


def check(cond, msg, *args):
    """Fails the case with msg (% args when there are any) unless cond."""
    if not cond:
        raise Failure(msg % args if args else msg)


def expect(cond, why, evidence=()):
    """Fails the case with why and its evidence unless cond."""
    if not cond:
        raise Failure(why, evidence)


def short(v, n=600):
    """repr(v), cut to about n characters."""
    s = repr(v)
    return s if len(s) <= n else s[:n] + '...(%d chars)' % len(s)


def eq(got, want, what):
    """Fails the case unless got == want, showing both (shortened)."""
    if got != want:
        raise Failure('%s: got %s, want %s' % (what, short(got), short(want)))


def enc(s):
    """Percent-encodes every byte of s but the unreserved ones (what a
    browser does)."""
    return urllib.parse.quote(s, safe='-_.~')


def form(pairs):
    """pairs -> 'k=v&k=v', each key and value percent-encoded."""
    return '&'.join(enc(k) + '=' + enc(v) for k, v in pairs)


# --------------------------------------------------------------------------
# Ports and users

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_ids():
    """(uid, gid) the servers' programs run as; None when we are not root."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def chown_run(path, mode):
    """Gives path to the servers' user (when root) and sets its mode."""
    ids = run_ids()
    if ids is not None:
        os.chown(path, ids[0], ids[1])
    os.chmod(path, mode)


def subdir(top, name, run_owned=False):
    """Makes the folder top/name (and what leads to it), mode 0755: the
    servers' user's when run_owned (see chown_run).  Returns its path."""
    d = os.path.join(top, name)
    os.makedirs(d)
    if run_owned:
        chown_run(d, 0o755)
    else:
        os.chmod(d, 0o755)
    return d


def copy_binary(binary, top):
    """Copies binary to top/bin/podio-hook.cgi (folder and file mode 0755)
    and returns that path: a copy the servers' user can reach wherever the
    checkout lives (a fresh machine's /root is mode 0700), at a path no
    other run uses, so any process running it is this run's."""
    bindir = os.path.join(top, 'bin')
    os.mkdir(bindir)
    os.chmod(bindir, 0o755)
    path = os.path.join(bindir, 'podio-hook.cgi')
    shutil.copy(binary, path)
    os.chmod(path, 0o755)
    return path


def give_config(path):
    """Makes the config path readable by the servers' user and nobody else
    (it may hold the secret, and podio-hook warns about a config others
    can read): root's, group RUN_USER, mode 0640 when we are root; mode
    0600 otherwise."""
    ids = run_ids()
    if ids is not None:
        os.chown(path, 0, ids[1])
        os.chmod(path, 0o640)
    else:
        os.chmod(path, 0o600)


def run_as(ids):
    """subprocess keyword arguments that run a program as ids ((uid, gid)
    from run_ids()), or none when ids is None."""
    if ids is None:
        return {}
    return dict(user=ids[0], group=ids[1], extra_groups=[])


# --------------------------------------------------------------------------
# lighttpd

def substitute_lighttpd(text, values):
    """Replaces the values of the snippet's var.podio_hook_* lines."""
    seen = set()

    def repl(m):
        key = m.group(2)
        if key not in values:
            raise RuntimeError('unexpected variable var.podio_hook_%s' % key)
        seen.add(key)
        return '%s"%s"' % (m.group(1), values[key])
    out = re.sub(r'(?m)^(var\.podio_hook_(\w+)\s*=\s*)"[^"\n]*"', repl, text)
    if seen != set(values):
        raise RuntimeError('snippet lacks var.podio_hook_%s'
                           % ', '.join(sorted(set(values) - seen)))
    return out


def write_lighttpd_conf(d, src, values, docroot, port, pid_file, error_log,
                        as_run_user):
    """Writes into d the snippet src with values substituted and a
    lighttpd.conf (mod_access, docroot, 127.0.0.1:port, pid file, error log,
    RUN_USER when as_run_user) including it; returns the config's path."""
    with open(src) as f:
        snippet = substitute_lighttpd(f.read(), values)
    snippet_path = os.path.join(d, os.path.basename(src))
    with open(snippet_path, 'w') as f:
        f.write(snippet)
    lines = [
        'server.modules = ( "mod_access" )',
        'server.document-root = "%s"' % docroot,
        'server.bind = "127.0.0.1"',
        'server.port = %d' % port,
        'server.pid-file = "%s"' % pid_file,
        'server.errorlog = "%s"' % error_log,
    ]
    if as_run_user:
        lines += ['server.username = "%s"' % RUN_USER,
                  'server.groupname = "%s"' % RUN_USER]
    lines.append('include "%s"' % snippet_path)
    path = os.path.join(d, 'lighttpd.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


class Lighttpd:
    """lighttpd -D with the shipped FastCGI snippet
    (lighttpd/podio-hook-fastcgi.conf, only its var.podio_hook_* values
    replaced) running binary with the config ini.  Its files are in d:
    run/ (the servers' user's: the socket, error.log, breakage.log -- the
    snippet's server.breakagelog, podio-hook's standard error -- and the
    pid file), docroot/, and server.stderr (lighttpd's own output).  A
    suite's subclass starts self.proc its own way with argv() for
    self.port, then calls wait_ready()."""

    SNIPPET = os.path.join(REPO, 'lighttpd', 'podio-hook-fastcgi.conf')

    def __init__(self, d, binary, ini, env=None):
        self.dir = d
        self.bin = binary
        self.ini = ini
        self.run = os.path.join(d, 'run')
        os.mkdir(self.run)
        chown_run(self.run, 0o755)
        self.docroot = os.path.join(d, 'docroot')
        os.mkdir(self.docroot, 0o755)
        self.error_log = os.path.join(self.run, 'error.log')
        self.breakage_log = os.path.join(self.run, 'breakage.log')
        self.stderr_path = os.path.join(d, 'server.stderr')
        self.pid_file = os.path.join(self.run, 'lighttpd.pid')
        self.env = env or {}    # for lighttpd and the podio-hook it starts
        self.proc = None
        self.port = None

    def argv(self):
        """lighttpd's command line, its config written now for self.port."""
        conf = write_lighttpd_conf(
            self.dir, self.SNIPPET,
            {'bin': self.bin, 'config': self.ini,
             'socket': os.path.join(self.run, 'podio-hook.sock'),
             'log': self.breakage_log},
            self.docroot, self.port, self.pid_file, self.error_log,
            run_ids() is not None)
        return ['lighttpd', '-D', '-f', conf]

    def log_paths(self):
        return [self.error_log, self.breakage_log, self.stderr_path]

    def wait_ready(self, timeout=15):
        """self once lighttpd answers on self.port; fails the case when it
        exits first (its logs' last lines as evidence) or not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure('lighttpd exited with status %s at start'
                              % self.proc.returncode,
                              read_logs(self.log_paths()).splitlines()[-10:])
            code = http_code('http://127.0.0.1:%d/ready' % self.port)
            if code.strip() not in ('', '000'):
                return self
            time.sleep(0.05)
        raise Failure('lighttpd did not answer within %d s' % timeout)

    def children(self):
        """The podio-hook processes lighttpd started."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return pids(self.bin, self.proc.pid)


# --------------------------------------------------------------------------
# nginx

NGINX_TEMPS = ('client_body', 'fastcgi', 'proxy', 'uwsgi', 'scgi')


def substitute_nginx(text, backend):
    """The snippet with the address after its one fastcgi_pass replaced."""
    out, n = re.subn(r'(?m)^(\s*fastcgi_pass\s+)[^;\s]+;',
                     lambda m: '%s%s;' % (m.group(1), backend), text)
    if n != 1:
        raise RuntimeError('snippet has %d fastcgi_pass lines, want 1' % n)
    return out


def write_nginx_conf(d, src, backend, port, pid_file, error_log,
                     as_run_user, daemon=False):
    """Writes into d the snippet src with fastcgi_pass pointing at backend
    and an nginx.conf (127.0.0.1:port, pid file, error log, temporary
    paths under d, RUN_USER's workers when as_run_user) whose one server
    includes it; returns the config's path.  Run it as
    ['nginx', '-p', d, '-e', error_log, '-c', path]."""
    with open(src) as f:
        snippet = substitute_nginx(f.read(), backend)
    snippet_path = os.path.join(d, os.path.basename(src))
    with open(snippet_path, 'w') as f:
        f.write(snippet)
    temps = os.path.join(d, 'nginx-temp')
    os.makedirs(temps, exist_ok=True)
    os.chmod(temps, 0o755)
    lines = ['daemon %s;' % ('on' if daemon else 'off'),
             'worker_processes 2;',
             'pid "%s";' % pid_file,
             'error_log "%s" warn;' % error_log]
    if as_run_user:
        lines.append('user %s %s;' % (RUN_USER, RUN_USER))
    lines += ['events { worker_connections 256; }',
              'http {',
              '    access_log off;',
              '    default_type text/plain;']
    for t in NGINX_TEMPS:
        path = os.path.join(temps, t)
        os.makedirs(path, exist_ok=True)
        chown_run(path, 0o700)
        lines.append('    %s_temp_path "%s";' % (t, path))
    lines += ['    server {',
              '        listen 127.0.0.1:%d;' % port,
              '        server_name 127.0.0.1;',
              '        root "%s";' % os.path.join(d, 'docroot'),
              '        include "%s";' % snippet_path,
              '    }',
              '}']
    os.makedirs(os.path.join(d, 'docroot'), exist_ok=True)
    path = os.path.join(d, 'nginx.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def nginx_argv(d, conf, error_log):
    return ['nginx', '-p', d, '-e', error_log, '-c', conf]


def http_code(url):
    """curl's %{http_code} for a GET of url (at most 2 s), as printed."""
    r = subprocess.run(['curl', '-s', '-o', '/dev/null', '--max-time', '2',
                        '-w', '%{http_code}', url],
                       capture_output=True, text=True)
    return r.stdout


# --------------------------------------------------------------------------
# Server logs

def log_mark(paths):
    """The sizes of the log files paths, for read_logs(paths, mark)."""
    mark = {}
    for path in paths:
        try:
            mark[path] = os.path.getsize(path)
        except OSError:
            mark[path] = 0
    return mark


def read_logs(paths, mark=None):
    """Everything logged to paths (since mark), file by file, each ending in
    a newline."""
    out = []
    for path in paths:
        try:
            with open(path, 'rb') as f:
                f.seek(mark.get(path, 0) if mark else 0)
                out.append(f.read().decode('utf-8', 'replace'))
        except OSError:
            pass
    return ''.join(t if t.endswith('\n') or not t else t + '\n'
                   for t in out)


# --------------------------------------------------------------------------
# Processes

def terminate(proc, timeout):
    """SIGTERM to proc by its PID, SIGKILL if it has not exited within
    timeout seconds; True when it had to be killed."""
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    return False


def proc_info(pid):
    """(ppid, argv[0]) of the process pid, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read()
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv0 = f.read().split(b'\0')[0].decode('utf-8', 'replace')
    except OSError:
        return None
    fields = stat[stat.rfind(b')') + 2:].split()
    return int(fields[1]), argv0


def pids(argv0=None, parent=None):
    """PIDs of the processes running now whose argv[0] is argv0 (a path, or
    a function of the path that says yes or no; any when None) and, when
    parent is given, whose parent is parent."""
    if isinstance(argv0, str):
        path = argv0
        argv0 = path.__eq__
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        info = proc_info(int(d))
        if info is None or (argv0 is not None and not argv0(info[1])):
            continue
        if parent is None or info[0] == parent:
            out.append(int(d))
    return out


def sigkill_pids(pids):
    """SIGKILL to each of pids, ignoring those already gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# --------------------------------------------------------------------------
# The binary as CGI

def cgi_post_env(path, software, body, query, ini):
    """The CGI/1.1 environment of a form POST of body to
    /cgi-bin/podio-hook.cgi from 192.0.2.10, config ini."""
    return {'PATH': path, 'GATEWAY_INTERFACE': 'CGI/1.1',
            'SERVER_PROTOCOL': 'HTTP/1.1', 'SERVER_SOFTWARE': software,
            'SCRIPT_NAME': '/cgi-bin/podio-hook.cgi', 'REQUEST_METHOD': 'POST',
            'CONTENT_TYPE': 'application/x-www-form-urlencoded',
            'CONTENT_LENGTH': str(len(body)), 'QUERY_STRING': query,
            'REMOTE_ADDR': '192.0.2.10', 'PODIO_HOOK_CONFIG': ini}


# --------------------------------------------------------------------------
# Reporting: the one place that prints a suite's results

class Report:
    """A suite's results, one line per case, and its last line.

        rep = harness.Report()
        rep.ok('name')                     # ok - name
        rep.fail('name', 'why', evidence)  # FAIL - name: why  (+ '#   ' lines)
        rep.skip('name', 'why')            # skip - name: why
        sys.exit(rep.finish())             # N passed, M failed, K skipped

    A skipped case is counted as skipped, never as passed.  A suite whose
    run ends with no case at all (nothing passed, failed or skipped) is a
    failure: a suite that cannot run here must say so with skip() (or
    skip_all()) for each case it leaves out.
    """

    def __init__(self, out=None):
        self.out = out if out is not None else sys.stdout
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.held = []

    def _print(self, text):
        self.out.write(text + '\n')
        self.out.flush()

    def _case_line(self, text, evidence=()):
        self._print(text)
        for line in evidence:
            for sub in str(line).splitlines() or ['']:
                self._print('#   %s' % sub)
        held, self.held = self.held, []
        for note in held:
            self.note(note)

    def ok(self, name, note=None):
        self.passed += 1
        self._case_line('ok - %s%s' % (name, ' (%s)' % note if note else ''))

    def fail(self, name, why, evidence=()):
        self.failed += 1
        self._case_line('FAIL - %s: %s' % (name, why), evidence)

    def skip(self, name, why):
        self.skipped += 1
        self._case_line('skip - %s: %s' % (name, why))

    def skip_all(self, names, why):
        """Skips every case in names for one reason (the suite cannot run
        here at all)."""
        for name in names:
            self.skip(name, why)

    def note(self, text):
        """A '# ' line: evidence or figures, counted nowhere."""
        for sub in str(text).splitlines() or ['']:
            self._print('# %s' % sub)

    def later(self, text):
        """A note printed after the next case line (and its evidence): the
        figures a case gathers before its verdict."""
        self.held.append(text)

    def summary(self):
        return '%d passed, %d failed, %d skipped' % (self.passed, self.failed,
                                                     self.skipped)

    def finish(self):
        """Prints the last line; returns the exit status (1 when a case
        failed or when no case ran at all)."""
        if self.passed + self.failed + self.skipped == 0:
            self.fail('suite', 'no case ran and none was skipped with a '
                      'reason (an --only that matches nothing?)')
        self._print(self.summary())
        return 1 if self.failed else 0


# --------------------------------------------------------------------------
# The suites' main loop

def registrar(cases):
    """A decorator that appends (name, fn) to the list cases:

        CASES = []
        case = harness.registrar(CASES)

        @case('what it proves')
        def t_something(env): ...
    """
    def case(name):
        def reg(fn):
            cases.append((name, fn))
            return fn
        return reg
    return case


class Suite:
    """A suite's command line, its cases run in order, its temporary tree
    and its Report (suite.rep).

        suite = harness.Suite(__doc__, CASES)   # CASES: (name, fn, ...)
        args = suite.parse()                    # --list prints and exits
        if not suite.ready(tools=('curl',)):    # FAIL - setup: ...
            return suite.finish()
        world = World(suite.bin)
        suite.tmp = world.tmp                   # removed by finish() unless
        try:                                    # a case failed or --keep
            suite.run(start=lambda case: world, stop=World.stop_all)
        finally:
            world.stop_all()
        return suite.finish()                   # sys.exit() its result

    The command line every suite shares: --bin PATH (the binary under
    test), -k/--only SUBSTR (the cases whose name contains SUBSTR; may be
    given more than once), --list (the names of the cases it would run, and
    nothing run), --keep (the temporary tree kept even when all passed),
    -v (a case that raised something unexpected shows its whole traceback,
    not only its end).  A suite adds options of its own to suite.parser
    before parse(); one whose --only means something else passes
    only=False.
    """

    def __init__(self, doc, cases=(), only=True):
        self.cases = list(cases)
        self.rep = Report()
        self.tmp = None
        self.args = None
        self.bin = None
        self.started = time.monotonic()
        self.parser = argparse.ArgumentParser(
            description=doc.strip().split('\n')[0])
        p = self.parser
        p.add_argument('--bin', default=os.path.join(REPO, 'cgi-bin',
                                                     'podio-hook.cgi'),
                       help='the binary under test (default: %(default)s)')
        if only:
            p.add_argument('-k', '--only', action='append', default=[],
                           metavar='SUBSTR',
                           help='run the cases whose name contains SUBSTR '
                           '(may be given more than once)')
            p.add_argument('--list', action='store_true',
                           help='print the names of the cases it would run '
                           'and run none')
        p.add_argument('--keep', action='store_true',
                       help='keep the temporary tree even when all passed')
        p.add_argument('-v', dest='verbose', action='store_true',
                       help='whole tracebacks of unexpected exceptions')

    def parse(self, argv=None):
        """The command line (exits after --list); sets self.bin."""
        self.args = self.parser.parse_args(argv)
        self.bin = os.path.abspath(self.args.bin)
        if getattr(self.args, 'list', False):
            for case in self.selected():
                print(case[0])
            sys.exit(0)
        return self.args

    def selected(self, cases=None):
        """The cases (self.cases by default) that --only lets run."""
        only = getattr(self.args, 'only', None) or []
        return [c for c in (self.cases if cases is None else cases)
                if not only or any(o in c[0] for o in only)]

    def ready(self, tools=()):
        """True when the binary is executable and every program of tools is
        installed; else False after a FAIL - setup line naming what is
        missing."""
        if not os.access(self.bin, os.X_OK):
            self.rep.fail('setup', '%s is not an executable (run make)'
                          % self.bin)
            return False
        path = os.environ.get('PATH', '') + ':' + SYS_PATH
        for tool in tools:
            if shutil.which(tool, path=path) is None:
                self.rep.fail('setup', '%s is not installed' % tool)
                return False
        return True

    def run(self, cases=None, start=None, call=None, stop=None, timed=False,
            slow=None, deadline=None):
        """Runs the selected cases (self.cases by default) in order, each
        reported by its name as it ends:

          start(case)      what the case's function is called with (it is
                           called with nothing when start is None);
          call(case, arg)  runs the case (default: case[1](arg));
          stop(arg)        after each case that started, whatever happened:
                           a list of what was left behind (a process that
                           would not stop ...), which fails a case that
                           passed and is evidence for one that failed.

        Skip is a skip line, Failure a FAIL line with its evidence, any
        other exception a FAIL line naming it and where it was raised.
        timed: the ok line notes what the case returned (when not None)
        and its seconds.  slow: a '# NAME took N s' note for a case that
        took longer than slow seconds.  deadline: SIGALRM after deadline
        seconds, and SIGTERM, end the run (a FAIL - run line)."""
        if deadline is not None:
            def interrupt(sig, frame):
                raise Interrupted('the run exceeded %d s' % deadline
                                  if sig == signal.SIGALRM
                                  else 'signal %d' % sig)
            old = [signal.signal(s, interrupt)
                   for s in (signal.SIGALRM, signal.SIGTERM)]
            signal.alarm(deadline)
        try:
            for case in self.selected(cases):
                self._run_one(case, start, call, stop, timed, slow)
        except Interrupted as e:
            self.rep.fail('run', 'interrupted: %s' % e)
        finally:
            if deadline is not None:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old[0])
                signal.signal(signal.SIGTERM, old[1])

    def _run_one(self, case, start, call, stop, timed, slow):
        name = case[0]
        t0 = time.monotonic()
        left = []
        try:
            arg = None
            started = False
            try:
                if start is not None:
                    arg = start(case)
                    started = True
                if call is not None:
                    note = call(case, arg)
                elif started:
                    note = case[1](arg)
                else:
                    note = case[1]()
            finally:
                if started and stop is not None:
                    left = self._stop(stop, arg)
        except Skip as e:
            verdict = ('skip', str(e), [])
        except Failure as e:
            verdict = ('fail', e.why, e.evidence)
        except Interrupted:
            raise
        except Exception as e:
            verdict = ('fail',) + self._unexpected(e)
        else:
            verdict = ('ok', note, [])
        took = time.monotonic() - t0
        kind, why, evidence = verdict
        if left and kind != 'fail':
            kind, why, evidence = 'fail', 'cleanup: ' + '; '.join(left), []
        elif left:
            evidence = list(evidence) + ['cleanup: ' + p for p in left]
        if kind == 'fail':
            self.rep.fail(name, why, evidence)
        elif kind == 'skip':
            self.rep.skip(name, why)
        elif timed:
            self.rep.ok(name, '%.1f s' % took if why is None
                        else '%s; %.1f s' % (why, took))
        else:
            self.rep.ok(name)
        if slow is not None and took > slow:
            self.rep.note('%s took %.1f s' % (name, took))

    @staticmethod
    def _stop(stop, arg):
        try:
            return list(stop(arg) or [])
        except Interrupted:
            raise
        except Exception as e:
            return ['%s: %s' % (type(e).__name__, e)]

    def _unexpected(self, e):
        """(why, evidence) of an exception no case meant to raise."""
        frames = traceback.extract_tb(e.__traceback__)
        where = ''
        if frames:
            where = ' (%s:%d)' % (os.path.relpath(frames[-1].filename, REPO),
                                  frames[-1].lineno)
        lines = traceback.format_exception(type(e), e, e.__traceback__)
        lines = ''.join(lines).rstrip('\n').splitlines()
        if not self.args.verbose:
            lines = lines[-7:-1]
        return '%s: %s%s' % (type(e).__name__, e, where), lines

    def finish(self):
        """Removes the temporary tree self.tmp (kept, and named, when a case
        failed or with --keep), notes the seconds the run took, prints the
        last line; returns the exit status."""
        if self.tmp is not None:
            if self.rep.failed or self.args.keep:
                self.rep.note('files kept in %s' % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        self.rep.note('%.1f s' % (time.monotonic() - self.started))
        return self.rep.finish()
