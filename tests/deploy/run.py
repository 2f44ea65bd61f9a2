#!/usr/bin/env python3
"""tests/deploy/run.py - what a user meets setting podio-hook up.

    python3 tests/deploy/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                [-v]

Cases:

  make run              `make run` as the README says (PORT, and the
                        folder and binary the suite gives it): a config
                        with a random secret, mode 0600; the printed curl
                        line, run as printed, spools the event; no secret
                        is 403, logged to the podio-hook log of the
                        daemonized lighttpd; a second `make run` keeps the
                        config; `make stop` stops lighttpd by its PID file.
  daemonized lighttpd   the shipped lighttpd snippets (FastCGI and CGI)
                        under a lighttpd that daemonizes (no -D): a GET is
                        405 and podio-hook's warn line is in the
                        server.breakagelog file; lighttpd stopped by the
                        PID in its pid file.  Control: the same without the
                        server.breakagelog line loses the line.
  make install          PREFIX=/usr and the default PREFIX into a DESTDIR:
                        the binary twice, man pages (mandoc-clean), the
                        examples; no /usr/local left in the units,
                        examples or man pages of PREFIX=/usr; every path
                        of PREFIX the examples name is installed; `make
                        uninstall` removes every file.
  example config        cgi-bin/podio-hook.ini.example begins with
                        [receiver] secret and passes `check`.
  .htaccess             Apache with Debian's stock userdir AllowOverride
                        answers 500 ("Options not allowed here"); with
                        Options=ExecCGI,Indexes added, as the README says,
                        the event is spooled.
  docs                  nothing cites a file outside the repository; every
                        crontab line in README.md and the man pages names
                        its program by an absolute path; README.md names
                        every package of tools/packages.

Prints "ok - NAME", "skip - NAME: WHY" or "FAIL - NAME: WHY" per case and,
last, "N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which
also gives the options).
Every process it starts is stopped by its PID.  Python 3 standard library
only; needs make, lighttpd, apache2, curl and mandoc.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import SYS_PATH, check  # noqa: E402

FORM = 'application/x-www-form-urlencoded'
APACHE_MODULES = '/usr/lib/apache2/modules'
# Where the docs may look outside the repository (none of these may appear).
OUTSIDE = re.compile(r'\bSPEC(\.md)?\b|\.\./shared\b|/work/')
DOC_PATHS = ['README.md', 'man', 'lighttpd', 'apache', 'nginx', 'systemd',
             'cgi-bin/.htaccess', 'cgi-bin/podio-hook.ini.example', 'lib',
             'fcgi', 'Makefile', 'tools', 'BENCHMARKS.md']
CRON_LINE = re.compile(r'^(?:@\w+|(?:\S+\s+){5})(?P<cmd>\S.*)$')
CRON_FIELD = re.compile(r'^[\d*/,\-]+$')


def run(argv, **kw):
    kw.setdefault('capture_output', True)
    kw.setdefault('text', True)
    kw.setdefault('timeout', 120)
    return subprocess.run(argv, **kw)


def curl(url, data=None, method=None):
    """(status, body) of one request made with the curl binary."""
    argv = ['curl', '-sS', '--max-time', '10', '-w', '\n%{http_code}']
    if data is not None:
        argv += ['-H', 'Content-Type: ' + FORM, '--data-binary', data]
    if method:
        argv += ['-X', method]
    r = run(argv + [url])
    body, _, code = r.stdout.rpartition('\n')
    return int(code or 0), body


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def read(path, mode='r'):
    with open(path, mode) as f:
        return f.read()


def log_has(path, needle):
    try:
        return any('podio-hook[' in line and needle in line
                   for line in read(path, 'rb').decode(
                       'utf-8', 'replace').splitlines())
    except OSError:
        return False


class World:
    """The temporary tree and every process the cases start."""

    def __init__(self, binary):
        self.top = tempfile.mkdtemp(prefix='podio-hook-deploy-')
        os.chmod(self.top, 0o755)
        self.bin = harness.copy_binary(binary, self.top)
        self.pid_files = []     # daemons to stop by their pid file
        self.procs = []         # foreground servers (Popen)
        self.seq = 0

    def sub(self, name):
        self.seq += 1
        d = os.path.join(self.top, '%02d-%s' % (self.seq, name))
        os.mkdir(d, 0o755)
        return d

    def stop_daemon(self, pid_file, timeout=10):
        """SIGTERM to the PID in pid_file; problems (as a list)."""
        try:
            pid = int(read(pid_file).strip())
        except (OSError, ValueError) as e:
            return ['no usable pid file %s: %s' % (pid_file, e)]
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as e:
            return ['kill %d: %s' % (pid, e)]
        if not wait_for(lambda: not pid_alive(pid), timeout):
            os.kill(pid, signal.SIGKILL)
            return ['%d ignored SIGTERM for %d s; killed' % (pid, timeout)]
        return []

    def stop_all(self):
        problems = []
        for pid_file in self.pid_files:
            if os.path.exists(pid_file):
                problems += self.stop_daemon(pid_file)
        self.pid_files = []
        for p in self.procs:
            if p.poll() is None and harness.terminate(p, 10):
                problems.append('server %d ignored SIGTERM' % p.pid)
        self.procs = []
        left = wait_for(lambda: not self.our_pids(), 5) or self.our_pids()
        if left is not True and left:
            harness.sigkill_pids(left)
            problems.append('podio-hook processes %s left (killed)' % left)
        return problems

    def our_pids(self):
        """Processes running a binary under our tree."""
        return harness.pids(lambda argv0: argv0.startswith(self.top + '/'))


def write_ini(d, spool, extra=''):
    """A config in d with its spool, readable by the servers' user."""
    path = os.path.join(d, 'podio-hook.ini')
    with open(path, 'w') as f:
        f.write('[spool]\ndir = %s\n\n[log]\nlevel = info\n%s' % (spool,
                                                                   extra))
    harness.give_config(path)
    return path


def make_spool(d):
    spool = os.path.join(d, 'spool')
    os.mkdir(spool)
    harness.chown_run(spool, 0o755)
    return spool


# --------------------------------------------------------------------------
# make run

URL_RE = re.compile(r'http://127\.0\.0\.1:(\d+)/hook\?secret=([0-9a-f]{32})\b')


def make_run(world, var, port):
    env = {'PATH': SYS_PATH, 'LANG': 'C', 'HOME': os.environ.get('HOME', '/'),
           'PORT': str(port), 'PODIO_HOOK_VAR': var,
           'PODIO_HOOK_BIN': world.bin}
    return run(['make', '-s', '-C', REPO, 'run'], env=env)


def t_make_run(world):
    d = world.sub('make-run')
    var = os.path.join(d, 'var')
    port = harness.free_port()
    pid_file = os.path.join(var, 'run', 'lighttpd.pid')
    world.pid_files.append(pid_file)
    r = make_run(world, var, port)
    check(r.returncode == 0, 'make run exited %d: %s %s', r.returncode,
          r.stdout[-800:], r.stderr[-800:])
    m = URL_RE.search(r.stdout)
    check(m is not None and int(m.group(1)) == port,
          'make run printed no http://127.0.0.1:%d/hook?secret=<32 hex> '
          'URL: %r', port, r.stdout[-800:])
    secret = m.group(2)
    ini = os.path.join(var, 'podio-hook.ini')
    st = os.stat(ini)
    check(stat.S_IMODE(st.st_mode) == 0o600, '%s has mode %o, want 600',
          ini, stat.S_IMODE(st.st_mode))
    text = read(ini)
    check(re.search(r'(?m)^secret = %s$' % secret, text) is not None,
          'the printed secret is not the [receiver] secret of %s:\n%s',
          ini, text)
    # lighttpd runs as a daemon: not our child, its pid in the pid file.
    pid = int(read(pid_file).strip())
    ppid = int(re.search(r'(?m)^PPid:\s+(\d+)',
                         read('/proc/%d/status' % pid)).group(1))
    check(ppid != os.getpid(), 'lighttpd %d is a child of the test, not a '
          'daemon', pid)
    # The printed curl line, run as printed.
    line = [ln.strip() for ln in r.stdout.splitlines()
            if ln.strip().startswith('curl ')]
    check(len(line) == 1, 'want one curl line in the output, got %r', line)
    c = run(['sh', '-c', line[0]], cwd=d)
    check(c.returncode == 0 and c.stdout == 'OK\n',
          'the printed curl line gave exit %d, %r %r', c.returncode,
          c.stdout, c.stderr)
    spooled = read(os.path.join(var, 'spool', 'item.create.jsonl'))
    check(spooled.count('\n') == 1 and spooled.endswith(
        '"params":{"type":"item.create","item_id":"42","hook_id":"7"}}\n'),
        'spool after the printed curl line: %r', spooled)
    check(secret not in spooled, 'the secret was spooled')
    # Without the secret: 403, and the line reaches the podio-hook log.
    log = os.path.join(var, 'log', 'podio-hook.log')
    code, body = curl('http://127.0.0.1:%d/hook' % port,
                      'type=item.create&item_id=43')
    check(code == 403, 'POST without the secret: %d %r, want 403', code,
          body)
    check(wait_for(lambda: log_has(log, 'rejected status=403'), 5),
          'no "rejected status=403" line in %s: %r', log,
          read(log) if os.path.exists(log) else None)
    check(secret not in read(log), 'the secret is in the log')
    # A second make run keeps the config as it is.
    r2 = make_run(world, var, port)
    check(r2.returncode == 0, 'second make run exited %d: %s',
          r2.returncode, r2.stderr[-800:])
    check(read(ini) == text, 'the second make run changed %s', ini)
    check(secret in r2.stdout, 'the second make run printed another '
          'secret: %r', r2.stdout[-400:])
    pid2 = int(read(pid_file).strip())
    check(not pid_alive(pid) or pid == pid2,
          'the first lighttpd %d still runs beside %d', pid, pid2)
    # make stop, by the pid file.
    s = run(['make', '-s', '-C', REPO, 'stop'],
            env={'PATH': SYS_PATH, 'PODIO_HOOK_VAR': var})
    check(s.returncode == 0, 'make stop exited %d: %s', s.returncode,
          s.stderr)
    check(wait_for(lambda: not pid_alive(pid2), 5),
          'lighttpd %d still runs after make stop', pid2)
    check(not os.path.exists(pid_file), 'make stop left %s', pid_file)
    world.pid_files.remove(pid_file)
    # A stale pid file (lighttpd gone, its number reused): make stop and
    # make run leave that process alone.
    other = subprocess.Popen(['sleep', '60'])
    try:
        with open(pid_file, 'w') as f:
            f.write('%d\n' % other.pid)
        s = run(['make', '-s', '-C', REPO, 'stop'],
                env={'PATH': SYS_PATH, 'PODIO_HOOK_VAR': var})
        check(s.returncode == 0 and 'stale' in s.stdout,
              'make stop with a stale pid file: exit %d, %r', s.returncode,
              s.stdout)
        check(other.poll() is None, 'make stop killed process %d, which '
              'was not lighttpd', other.pid)
        check(not os.path.exists(pid_file), 'the stale %s stayed', pid_file)
    finally:
        other.kill()
        other.wait()
    # Started with the folder spelled one way, stopped with another.
    world.pid_files.append(pid_file)
    r = make_run(world, var + '/', port)
    check(r.returncode == 0, 'make run with %s/: exit %d: %s', var,
          r.returncode, r.stderr[-400:])
    pid3 = int(read(pid_file).strip())
    s = run(['make', '-s', '-C', REPO, 'stop'],
            env={'PATH': SYS_PATH, 'PODIO_HOOK_VAR': var})
    check(s.returncode == 0 and 'stopped lighttpd %d' % pid3 in s.stdout,
          'make stop with %s after make run with %s/: %r', var, var,
          s.stdout)
    check(wait_for(lambda: not pid_alive(pid3), 5),
          'lighttpd %d still runs after make stop', pid3)
    world.pid_files.remove(pid_file)


# --------------------------------------------------------------------------
# A daemonized lighttpd with the shipped snippets

def daemon_lighttpd(world, kind, breakagelog=True):
    """Starts lighttpd (no -D) with the shipped snippet of kind; returns
    (port, breakage log path, the other files lighttpd writes)."""
    d = world.sub('lighttpd-%s%s' % (kind, '' if breakagelog
                                     else '-no-breakagelog'))
    rundir = os.path.join(d, 'run')
    os.mkdir(rundir)
    harness.chown_run(rundir, 0o755)
    docroot = os.path.join(d, 'docroot')
    os.mkdir(docroot, 0o755)
    ini = write_ini(d, make_spool(d))
    src = os.path.join(REPO, 'lighttpd', 'podio-hook-%s.conf' % kind)
    text = read(src)
    if not breakagelog:
        text, n = re.subn(r'(?m)^server\.breakagelog\s*=.*\n', '', text)
        check(n == 1, '%s has %d server.breakagelog lines, want 1', src, n)
        src = os.path.join(d, 'snippet-without-breakagelog.conf')
        with open(src, 'w') as f:
            f.write(text)
    values = {'bin': world.bin, 'config': ini,
              'log': os.path.join(rundir, 'breakage.log')}
    if kind == 'fastcgi':
        values['socket'] = os.path.join(rundir, 'podio-hook.sock')
    port = harness.free_port()
    pid_file = os.path.join(rundir, 'lighttpd.pid')
    error_log = os.path.join(rundir, 'error.log')
    conf = harness.write_lighttpd_conf(d, src, values, docroot, port,
                                       pid_file, error_log,
                                       harness.run_ids() is not None)
    world.pid_files.append(pid_file)
    r = run(['lighttpd', '-f', conf], env={'PATH': SYS_PATH, 'LANG': 'C'},
            stdin=subprocess.DEVNULL)
    check(r.returncode == 0, 'lighttpd -f exited %d: %s %s', r.returncode,
          r.stdout, r.stderr)
    check(wait_for(lambda: os.path.exists(pid_file), 10),
          'no pid file %s', pid_file)
    url = 'http://127.0.0.1:%d/hook' % port
    check(wait_for(lambda: harness.http_code(url) == '405', 10),
          'lighttpd does not answer 405 on %s', url)
    return url, values['log'], [error_log], pid_file


def t_daemon_lighttpd(kind):
    def case(world):
        url, breakage, others, pid_file = daemon_lighttpd(world, kind)
        code, body = curl(url + '?marker=1', method='GET')
        check(code == 405, 'GET: %d %r, want 405', code, body)
        check(wait_for(lambda: log_has(
            breakage, 'warn: rejected status=405 reason="method must be '
            'POST"'), 5),
            'no podio-hook warn line for the 405 in %s: %r', breakage,
            read(breakage) if os.path.exists(breakage) else None)
        problems = world.stop_daemon(pid_file)
        world.pid_files.remove(pid_file)
        check(not problems, '; '.join(problems))
    return case


def t_daemon_lighttpd_control(world):
    """Without server.breakagelog the same 405 leaves no line anywhere:
    what the shipped line is for (and proof the case above can fail)."""
    url, breakage, others, pid_file = daemon_lighttpd(world, 'fastcgi',
                                                      breakagelog=False)
    code, _ = curl(url, method='GET')
    check(code == 405, 'GET: %d, want 405', code)
    time.sleep(0.5)
    found = [p for p in [breakage] + others if log_has(p, 'status=405')]
    problems = world.stop_daemon(pid_file)
    world.pid_files.remove(pid_file)
    check(not found, 'a daemonized lighttpd without server.breakagelog '
          'kept the line in %s: the control is wrong', found)
    check(not problems, '; '.join(problems))


# --------------------------------------------------------------------------
# make install

def install(world, destdir, prefix=None):
    argv = ['make', '-s', '-C', REPO, '-o', 'all', 'install',
            'DESTDIR=' + destdir, 'BIN=' + world.bin]
    if prefix is not None:
        argv.append('PREFIX=' + prefix)
    r = run(argv, env={'PATH': SYS_PATH, 'LANG': 'C'})
    check(r.returncode == 0, '%s exited %d: %s', ' '.join(argv[3:]),
          r.returncode, r.stderr[-800:])


def files_under(top):
    out = []
    for root, _, names in os.walk(top):
        out += [os.path.relpath(os.path.join(root, n), top) for n in names]
    return sorted(out)


def t_install(world):
    d = world.sub('install')
    want_bin = read(world.bin, 'rb')
    for prefix in ('/usr', None):
        dest = os.path.join(d, 'usr' if prefix else 'default')
        install(world, dest, prefix)
        p = (prefix or '/usr/local').lstrip('/')
        root = os.path.join(dest, p)
        for exe in ('bin/podio-hook', 'lib/cgi-bin/podio-hook.cgi'):
            path = os.path.join(root, exe)
            check(os.path.isfile(path) and read(path, 'rb') == want_bin,
                  '%s is not the tested binary', path)
            check(os.stat(path).st_mode & 0o777 == 0o755,
                  '%s mode %o', path, os.stat(path).st_mode & 0o777)
        ex = os.path.join(root, 'share/doc/podio-hook/examples')
        wanted = ['.htaccess', 'podio-hook.ini.example',
                  'apache/podio-hook-cgi.conf',
                  'apache/podio-hook-fcgid.conf',
                  'apache/podio-hook-proxy-fcgi.conf',
                  'lighttpd/podio-hook-cgi.conf',
                  'lighttpd/podio-hook-fastcgi.conf',
                  'nginx/podio-hook.conf',
                  'systemd/podio-hook.service',
                  'systemd/podio-hook-drain.service',
                  'systemd/podio-hook.socket']
        got = files_under(ex)
        check(got == sorted(wanted), 'examples %s, want %s', got,
              sorted(wanted))
        texts = [os.path.join(ex, f) for f in wanted] + [
            os.path.join(root, 'share/man/man1/podio-hook.1'),
            os.path.join(root, 'share/man/man5/podio-hook.ini.5')]
        r = run(['mandoc', '-T', 'lint', '-W', 'warning'] + texts[-2:])
        check(r.returncode == 0, 'installed man pages: %s', r.stdout)
        unit = read(os.path.join(ex, 'systemd/podio-hook.service'))
        check(re.search(r'(?m)^ExecStart=/%s/bin/podio-hook$' % p, unit),
              'podio-hook.service ExecStart is not /%s/bin/podio-hook: %r',
              p, re.findall(r'(?m)^ExecStart=.*$', unit))
        # Every path of PREFIX that an example or a man page names (bin,
        # lib/cgi-bin, share/doc) is one make install created.
        named = set()
        for t in texts:
            text = read(t)
            if prefix:
                check('/usr/local' not in text, '%s still names /usr/local: '
                      '%s', t, [ln for ln in text.splitlines()
                                if '/usr/local' in ln][:3])
            named |= set(re.findall(r'/%s/(?:bin|lib|share)/[\w./-]*\w'
                                    % re.escape(p), text))
        check(named, 'no installed path named in the examples')
        missing = [n for n in sorted(named)
                   if not os.path.exists(dest + n)]
        check(not missing, 'named but not installed: %s', missing)
        check('/%s/lib/cgi-bin/podio-hook.cgi' % p in named,
              'the examples do not name /%s/lib/cgi-bin/podio-hook.cgi', p)
        r = run(['make', '-s', '-C', REPO, 'uninstall', 'DESTDIR=' + dest]
                + (['PREFIX=' + prefix] if prefix else []),
                env={'PATH': SYS_PATH, 'LANG': 'C'})
        check(r.returncode == 0, 'make uninstall: %s', r.stderr)
        left = files_under(dest)
        check(not left, 'make uninstall left %s', left)


# --------------------------------------------------------------------------
# The example config

def t_example_config(world):
    src = os.path.join(REPO, 'cgi-bin', 'podio-hook.ini.example')
    text = read(src)
    keys = [ln.split('=')[0].strip() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith((';', '#'))]
    check(keys[:2] == ['[receiver]', 'secret'],
          'the example does not begin with [receiver] secret: %s', keys[:4])
    d = world.sub('example')
    spool = make_spool(d)
    out, n = re.subn(r'(?m)^dir = .*$', 'dir = %s' % spool, text)
    check(n == 1, 'the example has %d "dir =" lines', n)
    ini = os.path.join(d, 'podio-hook.ini')
    with open(ini, 'w') as f:
        f.write(out)
    os.chmod(ini, 0o600)
    r = run([world.bin, '--config', ini, 'check'],
            env={'PATH': SYS_PATH, 'LANG': 'C'})
    check(r.returncode == 0 and 'ok' in r.stdout,
          'check with the example config: exit %d, %r %r', r.returncode,
          r.stdout, r.stderr)


# --------------------------------------------------------------------------
# The .htaccess under Debian's stock userdir AllowOverride

def apache_htaccess(world, allow_override):
    """Apache serving docroot/cgi-bin/ (binary, .htaccess, config beside
    it) with allow_override for the docroot; returns (url, error log,
    spool)."""
    d = world.sub('htaccess')
    rundir = os.path.join(d, 'run')
    os.mkdir(rundir)
    harness.chown_run(rundir, 0o755)
    docroot = os.path.join(d, 'docroot')
    cgi = os.path.join(docroot, 'cgi-bin')
    os.makedirs(cgi)
    for p in (docroot, cgi):
        os.chmod(p, 0o755)
    exe = os.path.join(cgi, 'podio-hook.cgi')
    shutil.copy(world.bin, exe)
    os.chmod(exe, 0o755)
    shutil.copy(os.path.join(REPO, 'cgi-bin', '.htaccess'),
                os.path.join(cgi, '.htaccess'))
    os.chmod(os.path.join(cgi, '.htaccess'), 0o644)
    spool = make_spool(d)
    write_ini(cgi, spool)
    port = harness.free_port()
    error_log = os.path.join(rundir, 'error.log')
    mods = ['mpm_event', 'authz_core', 'mime', 'cgid', 'dir', 'autoindex',
            'alias']
    lines = ['ServerRoot "%s"' % d]
    lines += ['LoadModule %s_module %s/mod_%s.so' % (m, APACHE_MODULES, m)
              for m in mods]
    lines += ['ServerName 127.0.0.1', 'Listen 127.0.0.1:%d' % port,
              'PidFile "%s"' % os.path.join(rundir, 'httpd.pid'),
              'ErrorLog "%s"' % error_log, 'LogLevel warn',
              'DefaultRuntimeDir "%s"' % rundir,
              'Mutex flock:%s default' % rundir,
              'ScriptSock "%s"' % os.path.join(rundir, 'cgid.sock'),
              'TypesConfig /etc/mime.types',
              'DocumentRoot "%s"' % docroot,
              '<Directory />', '    AllowOverride None',
              '    Require all denied', '</Directory>',
              '<Directory "%s">' % docroot,
              '    AllowOverride %s' % allow_override,
              # As Debian's userdir.conf has them.
              '    Options MultiViews Indexes SymLinksIfOwnerMatch '
              'IncludesNoExec',
              '    Require method GET POST OPTIONS',
              '</Directory>']
    if harness.run_ids() is not None:
        lines += ['User %s' % harness.RUN_USER,
                  'Group %s' % harness.RUN_USER]
    conf = os.path.join(d, 'httpd.conf')
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    err = open(os.path.join(d, 'server.stderr'), 'wb')
    p = subprocess.Popen(['apache2', '-f', conf, '-DFOREGROUND'],
                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                         env={'PATH': SYS_PATH, 'LANG': 'C'},
                         start_new_session=True)
    world.procs.append(p)
    url = 'http://127.0.0.1:%d/cgi-bin/podio-hook.cgi' % port
    check(wait_for(lambda: harness.http_code(url) not in ('', '000'), 10),
          'Apache did not answer on %s', url)
    return url, error_log, spool


DEBIAN_USERDIR = 'FileInfo AuthConfig Limit Indexes'


def t_htaccess_userdir(world):
    url, error_log, spool = apache_htaccess(world, DEBIAN_USERDIR)
    code, _ = curl(url, 'type=item.create&item_id=1')
    check(code == 500, 'with Debian\'s userdir AllowOverride (%s): %d, '
          'want 500', DEBIAN_USERDIR, code)
    check(wait_for(lambda: 'Options not allowed here' in read(error_log), 5),
          'the error log does not say "Options not allowed here": %r',
          read(error_log)[-600:])
    check(os.listdir(spool) == [], 'spooled: %s', os.listdir(spool))
    fixed = DEBIAN_USERDIR + ' Options=ExecCGI,Indexes'
    url, error_log, spool = apache_htaccess(world, fixed)
    code, body = curl(url, 'type=item.create&item_id=1')
    check(code == 200 and body == 'OK\n', 'with AllowOverride %s: %d %r, '
          'want 200 OK', fixed, code, body)
    check(os.listdir(spool) == ['item.create.jsonl'], 'spool: %s',
          os.listdir(spool))


# --------------------------------------------------------------------------
# The docs

def doc_files():
    out = []
    for p in DOC_PATHS:
        path = os.path.join(REPO, p)
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                out += [os.path.join(root, n) for n in sorted(names)]
        elif os.path.exists(path):
            out.append(path)
    return out


def t_docs_self_contained(world):
    hits = []
    for path in doc_files():
        try:
            text = read(path)
        except (OSError, UnicodeDecodeError):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append('%s:%d: %s' % (os.path.relpath(path, REPO), i,
                                           line.strip()))
    check(not hits, '%d lines cite something outside the repository: %s',
          len(hits), '; '.join(hits[:6]))


def cron_lines(text):
    """Crontab entries in text: lines of five time fields and a command
    (# comments and leading spaces of a man page's literal block aside)."""
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip('#').strip()
        m = CRON_LINE.match(line)
        if m is None:
            continue
        fields = line.split()[:5]
        if line.startswith('@') or all(CRON_FIELD.match(f) for f in fields):
            out.append((line, m.group('cmd')))
    return out


def t_crontab_paths(world):
    found = []
    bad = []
    for rel in ('README.md', 'man/podio-hook.1', 'man/podio-hook.ini.5',
                'systemd/podio-hook.socket'):
        for line, cmd in cron_lines(read(os.path.join(REPO, rel))):
            found.append(line)
            words = cmd.split()
            # /etc/cron.d lines carry a user before the command.
            if rel.startswith('systemd/') and len(words) > 1:
                words = words[1:]
            if not words[0].startswith('/'):
                bad.append('%s: %s' % (rel, line))
    check(len(found) >= 3, 'found only %d crontab lines: %s', len(found),
          found)
    check(not bad, 'a crontab line names its program without a path '
          '(cron\'s PATH is /usr/bin:/bin): %s', bad)


def t_readme_packages(world):
    packages = [ln.split('#')[0].strip() for ln in
                read(os.path.join(REPO, 'tools', 'packages')).splitlines()]
    packages = [p for p in packages if p]
    readme = read(os.path.join(REPO, 'README.md'))
    missing = [p for p in packages
               if not re.search(r'(?<![\w.+-])%s(?![\w.+-])' % re.escape(p),
                                readme)]
    check(not missing, 'README.md does not say that make deps installs %s',
          missing)


CASES = [
    ('make run: random secret in a 0600 config, the printed curl line '
     'spools, 403 logged by the daemonized lighttpd, config kept, make stop',
     t_make_run),
    ('daemonized lighttpd, FastCGI snippet: a 405 is logged to its '
     'server.breakagelog', t_daemon_lighttpd('fastcgi')),
    ('daemonized lighttpd, CGI snippet: a 405 is logged to its '
     'server.breakagelog', t_daemon_lighttpd('cgi')),
    ('control: without server.breakagelog a daemonized lighttpd loses the '
     'line', t_daemon_lighttpd_control),
    ('make install PREFIX=/usr and the default PREFIX: files, PREFIX in '
     'units, examples and man pages, make uninstall', t_install),
    ('the example config begins with [receiver] secret and passes check',
     t_example_config),
    ('.htaccess: 500 under Debian\'s userdir AllowOverride, spooled with '
     'Options=ExecCGI,Indexes added', t_htaccess_userdir),
    ('docs cite nothing outside the repository', t_docs_self_contained),
    ('crontab lines name their program by an absolute path',
     t_crontab_paths),
    ('README.md names every package of tools/packages', t_readme_packages),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready():
        return suite.finish()
    world = World(suite.bin)
    suite.tmp = world.top
    try:
        suite.run(start=lambda case: world, stop=World.stop_all)
    finally:
        problems = world.stop_all()
        if problems:
            suite.rep.fail('cleanup: every process stopped by its PID',
                           problems[0], problems[1:])
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
