"""tests/lib/harness.py - helpers shared by the Python suites.

    sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
    import harness

One copy of what tests/integration, tests/drain, tests/faults, tests/podio
and tests/leak used to repeat: a free TCP port, the uid/gid the servers run
their programs as when we are root, the lighttpd snippet's var.podio_hook_*
substitution and the config around it, reading a server's logs since a mark,
asking a server for its HTTP status, stopping a process by its PID, the
CGI environment of a POST, and reporting (Report: the per-case lines and
the last line "N passed, M failed, K skipped" that tests/check sums).
Python 3 standard library only; no checks of its own: every assertion
stays in the suites.
"""

import os
import pwd
import re
import signal
import socket
import subprocess
import sys

RUN_USER = 'www-data'   # what the servers run podio-hook as when we are root


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

    def _print(self, text):
        self.out.write(text + '\n')
        self.out.flush()

    def ok(self, name, note=None):
        self.passed += 1
        self._print('ok - %s%s' % (name, ' (%s)' % note if note else ''))

    def fail(self, name, why, evidence=()):
        self.failed += 1
        self._print('FAIL - %s: %s' % (name, why))
        for line in evidence:
            for sub in str(line).splitlines() or ['']:
                self._print('#   %s' % sub)

    def skip(self, name, why):
        self.skipped += 1
        self._print('skip - %s: %s' % (name, why))

    def skip_all(self, names, why):
        """Skips every case in names for one reason (the suite cannot run
        here at all)."""
        for name in names:
            self.skip(name, why)

    def note(self, text):
        """A '# ' line: evidence or figures, counted nowhere."""
        for sub in str(text).splitlines() or ['']:
            self._print('# %s' % sub)

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
