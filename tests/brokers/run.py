#!/usr/bin/env python3
"""Broker hand-offs: examples/handlers/ against real servers (SPEC section
11, "Past one machine").

    python3 tests/brokers/run.py [--bin PATH] [-k SUBSTR]... [--seed N]
                                 [--keep] [--list] [-v]
    python3 tests/brokers/run.py --measure N

Starts redis-server and nats-server (JetStream, its store in the temporary
directory) on 127.0.0.1 at free ports, stops them by PID.  Spools are
filled by the real binary run as a CGI program; `podio-hook drain --exec`
and `--batch` run the handlers examples/handlers/redis-stream and
nats-jetstream, with drains and handlers killed (SIGKILL) at random
moments, brokers down, restarted, refusing, and answers lost on the way.
Then the suite reads the broker back: every event exactly once (by id),
its fields byte for byte.  Prints "ok - name" / "FAIL - name: why" /
"skip - name: why" per case, notes (duplicate hand-offs absorbed, the
random seed) as "# ..." lines, and as its last line "N passed, M failed,
K skipped" (tests/lib/harness.py's Suite, which also gives the options);
exits 1 when a case failed or nothing ran.

Needs python3, redis-server and redis-tools (a case of a missing server
is skipped, saying so), nats-server.  Spools from tests/lib/spool.py,
shared with the drain suite.
"""

import base64
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import (SYS_PATH, Failure, Skip, check, enc, eq,  # noqa: E402
                     short)
from spool import (Spool, Workspace, make_line, run_suite,  # noqa: E402
                   wait_for)

HANDLERS = os.path.join(REPO, 'examples', 'handlers')
REDIS_HANDLER = os.path.join(HANDLERS, 'redis-stream')
NATS_HANDLER = os.path.join(HANDLERS, 'nats-jetstream')
WEEK = 7 * 24 * 3600
KILL_ATTEMPTS = '1000'  # kills count as attempts: no dead letters here


def one_line(err, what):
    """err (bytes) is exactly one line; returns it as str."""
    check(err.endswith(b'\n') and err.count(b'\n') == 1,
          '%s: want one line on stderr, got %r', what, err[-400:])
    return err.decode('utf-8', 'replace')


# --------------------------------------------------------------------------
# Events

NOTES = [
    'caf\u00e9 \u2028 \U0001F600 "quoted" \\ back\\slash',
    'ctl \x01\x02\x1f\x7f tab\tcr\rlf\nend',
    '$HOME `id` $(id) ; | & * ? %s %d {} []',
    ' lead and trail ',
    '',
]
ID_PARAM = {'item': 'item_id', 'comment': 'comment_id', 'task': 'task_id',
            'app': 'app_id', 'status': 'status_id'}


def fill(sp, n, types=('item.create', 'comment.create', 'task.update'),
         tag='e'):
    """Posts n events through the binary as CGI; returns their lines."""
    out = []
    for i in range(n):
        t = types[i % len(types)]
        out.append(sp.post([('type', t),
                            (ID_PARAM[t.split('.')[0]], str(1000 + i)),
                            ('hook_id', '7'),
                            ('note', '%s%d %s' % (tag, i,
                                                  NOTES[i % len(NOTES)]))]))
    return out


def fill_long(sp):
    """One event of about 64 KiB of form body made of control characters:
    a spooled line of about 126 KiB (each byte becomes \\u00XX)."""
    line = sp.post([('type', 'item.update'), ('item_id', '77'),
                    ('note', '\x01' * 21000 + 'caf\u00e9')])
    check(len(line) > 120000, 'the long line has %d bytes', len(line))
    return line


def by_id(lines):
    return {json.loads(l)['id']: l for l in lines}


def expect_once(broker, lines, what=''):
    """The broker holds each of lines exactly once, byte for byte."""
    got = broker.entries()
    ids = [g[0] for g in got]
    dups = sorted(set(i for i in ids if ids.count(i) > 1))
    eq(dups, [], '%sevents in %s more than once' % (what, broker.name))
    want = by_id(lines)
    missing = sorted(set(want) - set(ids))
    extra = sorted(set(ids) - set(want))
    eq((missing, extra), ([], []), '%s(missing, unexpected) ids in %s'
       % (what, broker.name))
    for eid, etype, event in got:
        line = want[eid]
        if event != line[:-1]:
            raise Failure('%s%s: event %s is not the spooled line without '
                          'its newline: got %s, want %s'
                          % (what, broker.name, eid, short(event, 200),
                             short(line[:-1], 200)))
        eq(etype, json.loads(line)['type'], 'type of %s' % eid)
    return got


def absorbed_in_log(log):
    """Duplicate answers the handlers logged (-v): hand-offs absorbed."""
    try:
        with open(log, 'rb') as f:
            text = f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return 0
    return len(re.findall(r'(?m)^[a-z-]+: \S+ duplicate, ', text))


def run_handler(path, env, data, timeout=60, args=('-v',)):
    e = {'PATH': SYS_PATH, 'LANG': 'C'}
    e.update(env)
    return subprocess.run([path] + list(args), input=data, env=e,
                          capture_output=True, timeout=timeout)


def shell_cmd(path, env, log, tail=''):
    """A drain command running the handler with env, its stderr appended
    to log; exec'd so the drain's child is the handler itself."""
    words = ['%s=%s' % (k, v) for k, v in sorted(env.items())]
    cmd = '%s env %s %s -v 2>>%s' % (
        'exec' if not tail else '', ' '.join(shlex.quote(w) for w in words),
        shlex.quote(path), shlex.quote(log))
    return cmd.strip() + tail


def make_cert(d):
    """A self-signed certificate for 127.0.0.1 (its own CA) in d:
    (cert.pem, key.pem)."""
    cert = os.path.join(d, 'cert.pem')
    key = os.path.join(d, 'key.pem')
    if shutil.which('openssl') is None:
        raise Skip('openssl not installed (Debian package openssl)')
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                        '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                        '-keyout', key, '-out', cert, '-days', '2',
                        '-subj', '/CN=127.0.0.1',
                        '-addext', 'subjectAltName=IP:127.0.0.1'],
                       capture_output=True, timeout=60)
    eq(r.returncode, 0, 'openssl req (stderr %r)' % r.stderr[-300:])
    return cert, key


def tls_wrap(sock, cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx.wrap_socket(sock, server_hostname='127.0.0.1')


# --------------------------------------------------------------------------
# Redis: the server, and a small RESP client of the suite's own

class RespError(Exception):
    pass


class Resp:
    def __init__(self, port, password=None, user=None, cert=None):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=20)
        if cert is not None:
            self.sock = tls_wrap(self.sock, cert)
        self.f = self.sock.makefile('rb')
        if password is not None:
            r = self.call('AUTH', *([user] if user else []) + [password])
            if isinstance(r, RespError):
                raise r

    def call(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += [b'$%d\r\n' % len(a), a, b'\r\n']
        self.sock.sendall(b''.join(out))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line.endswith(b'\r\n'):
            raise Failure('redis connection closed')
        k, rest = line[:1], line[1:-2]
        if k == b'+':
            return rest
        if k == b'-':
            return RespError(rest.decode())
        if k == b':':
            return int(rest)
        if k == b'$':
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if k == b'*':
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise Failure('redis reply %r' % line)

    def close(self):
        self.sock.close()


class RedisBroker:
    name = 'redis'
    handler = REDIS_HANDLER

    def __init__(self, h, d, password=None, stream='podio', tls=False):
        if shutil.which('redis-server') is None:
            raise Skip('redis-server not installed (Debian package '
                       'redis-server)')
        self.h = h
        self.dir = os.path.join(d, 'redis')
        os.makedirs(self.dir)
        self.port = harness.free_port()
        self.password = password
        self.stream = stream
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(d)
        self.proc = None
        self.log = open(os.path.join(d, 'redis.log'), 'ab')
        h.stoppers.append(self.stop)
        self.start()

    def start(self):
        args = ['redis-server', '--port', str(self.port), '--bind',
                '127.0.0.1', '--save', '', '--appendonly', 'yes',
                '--appendfsync', 'always', '--daemonize', 'no',
                '--dir', self.dir]
        if self.cert is not None:
            args[1:3] = ['--port', '0', '--tls-port', str(self.port),
                         '--tls-cert-file', self.cert, '--tls-key-file',
                         self.key, '--tls-auth-clients', 'no']
        if self.password is not None:
            args += ['--requirepass', self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, 'redis-server exited %s (see %s)',
                  self.proc.returncode, self.log.name)
            try:
                c = self.client()
                ok = c.call('PING') == b'PONG'
                c.close()
                if ok:
                    return
            except (OSError, Failure):
                pass
            time.sleep(0.05)
        raise Failure('redis-server did not answer PING')

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            harness.terminate(self.proc, 10)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def client(self):
        return Resp(self.port, self.password, cert=self.cert)

    def url(self, db=0):
        auth = ''
        if self.password is not None:
            auth = ':%s@' % enc(self.password)
        return '%s://%s127.0.0.1:%d/%d' % (
            'rediss' if self.cert else 'redis', auth, self.port, db)

    def env(self, **extra):
        e = {'REDIS_URL': self.url(), 'PODIO_STREAM': self.stream}
        if self.cert is not None:
            e['REDIS_CA_FILE'] = self.cert
        e.update(extra)
        return e

    def entries(self, stream=None, db=0):
        """[(id, type, event)] of the stream, in stream order; the fields
        must be exactly id, type, event."""
        c = self.client()
        if db:
            c.call('SELECT', db)
        rows = c.call('XRANGE', stream or self.stream, '-', '+')
        c.close()
        check(isinstance(rows, list), 'XRANGE answered %r', rows)
        out = []
        for _, fields in rows:
            check(len(fields) == 6 and fields[0::2] == [b'id', b'type',
                                                       b'event'],
                  'stream entry fields %r', fields[0::2])
            out.append((fields[1].decode(), fields[3].decode(), fields[5]))
        return out

    def absorbed(self):
        """EVALs that added nothing without failing: repeats absorbed
        (counted by the server since the last reset_stats)."""
        c = self.client()
        info = c.call('INFO', 'commandstats').decode()
        xlen = c.call('XLEN', self.stream)
        c.close()
        m = re.search(r'cmdstat_eval:calls=(\d+).*?failed_calls=(\d+)', info)
        calls, failed = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        return calls - failed - (xlen - self.xlen0)

    def reset_stats(self):
        c = self.client()
        c.call('CONFIG', 'RESETSTAT')
        self.xlen0 = c.call('XLEN', self.stream)
        c.close()


# --------------------------------------------------------------------------
# NATS: the server, and a small client of the suite's own

class NatsClient:
    def __init__(self, port, user=None, password=None, token=None,
                 cert=None):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=20)
        info = b''
        while not info.endswith(b'\r\n'):
            c = self.sock.recv(1)
            check(c != b'', 'nats closed before its INFO')
            info += c
        check(info.startswith(b'INFO '), 'nats first line %r', info[:80])
        if cert is not None:
            self.sock = tls_wrap(self.sock, cert)
        self.f = self.sock.makefile('rb')
        opts = {'verbose': False, 'pedantic': False, 'headers': True,
                'no_responders': True, 'protocol': 1, 'lang': 'test'}
        if user is not None:
            opts.update(user=user, **{'pass': password})
        if token is not None:
            opts['auth_token'] = token
        self.sock.sendall(b'CONNECT %s\r\nPING\r\n'
                          % json.dumps(opts).encode())
        while True:
            line = self.f.readline()
            if line == b'PONG\r\n':
                break
            check(not line.startswith(b'-ERR'), 'nats: %r', line)
        self.sock.sendall(b'SUB _INBOX.suite.* 1\r\n')
        self.n = 0

    def request(self, subject, payload=b''):
        """-> (status or None, header bytes, payload)"""
        self.n += 1
        token = str(self.n)
        self.sock.sendall(b'PUB %s _INBOX.suite.%s %d\r\n%s\r\n'
                          % (subject.encode(), token.encode(), len(payload),
                             payload))
        while True:
            line = self.f.readline()
            check(line.endswith(b'\r\n'), 'nats connection closed')
            p = line[:-2].split(b' ')
            if p[0] == b'PING':
                self.sock.sendall(b'PONG\r\n')
                continue
            if p[0] not in (b'MSG', b'HMSG'):
                check(not p[0].startswith(b'-ERR'), 'nats: %r', line)
                continue
            hlen = int(p[-2]) if p[0] == b'HMSG' else 0
            data = self.f.read(int(p[-1]) + 2)[:-2]
            if p[1] != b'_INBOX.suite.' + token.encode():
                continue
            hdr = data[:hlen]
            status = None
            if hdr:
                first = hdr.split(b'\r\n', 1)[0].split(b' ')
                status = first[1].decode() if len(first) > 1 else None
            return status, hdr, data[hlen:]

    def js(self, what, obj=None):
        body = b'' if obj is None else json.dumps(obj).encode()
        status, _, payload = self.request('$JS.API.' + what, body)
        check(status is None, '$JS.API.%s: status %s', what, status)
        return json.loads(payload)

    def close(self):
        self.sock.close()


class NatsBroker:
    name = 'nats'
    handler = NATS_HANDLER

    def __init__(self, h, d, jetstream=True, user=None, password=None,
                 token=None, max_payload=None, stream='PODIO',
                 subject='podio', tls=False):
        if shutil.which('nats-server') is None:
            raise Skip('nats-server not installed (Debian package '
                       'nats-server)')
        self.h = h
        self.d = d
        self.store = os.path.join(d, 'jetstream')
        self.port = harness.free_port()
        self.jetstream = jetstream
        self.user, self.password, self.token = user, password, token
        self.max_payload = max_payload
        self.stream, self.subject = stream, subject
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(d)
        self.proc = None
        self.log = open(os.path.join(d, 'nats.log'), 'ab')
        h.stoppers.append(self.stop)
        self.start()

    def start(self):
        conf = os.path.join(self.d, 'nats.conf')
        lines = ['listen: "127.0.0.1:%d"' % self.port]
        if self.jetstream:
            lines.append('jetstream { store_dir: %s }'
                         % json.dumps(self.store))
        if self.max_payload is not None:
            lines.append('max_payload: %d' % self.max_payload)
        if self.user is not None:
            lines.append('authorization { user: %s, password: %s }'
                         % (json.dumps(self.user),
                            json.dumps(self.password)))
        if self.token is not None:
            lines.append('authorization { token: %s }'
                         % json.dumps(self.token))
        if self.cert is not None:
            lines.append('tls { cert_file: %s, key_file: %s }'
                         % (json.dumps(self.cert), json.dumps(self.key)))
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.proc = subprocess.Popen(['nats-server', '-c', conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, 'nats-server exited %s (see %s)',
                  self.proc.returncode, self.log.name)
            try:
                c = self.client()
                if self.jetstream:
                    c.js('INFO')
                c.close()
                return
            except (OSError, Failure):
                pass
            time.sleep(0.05)
        raise Failure('nats-server did not start')

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            harness.terminate(self.proc, 10)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def client(self):
        return NatsClient(self.port, self.user, self.password, self.token,
                          self.cert)

    def url(self):
        auth = ''
        if self.user is not None:
            auth = '%s:%s@' % (enc(self.user), enc(self.password))
        elif self.token is not None:
            auth = '%s@' % enc(self.token)
        return 'nats://%s127.0.0.1:%d' % (auth, self.port)

    def env(self, **extra):
        e = {'NATS_URL': self.url(), 'PODIO_NATS_STREAM': self.stream,
             'PODIO_NATS_SUBJECT': self.subject}
        if self.cert is not None:
            e['NATS_CA_FILE'] = self.cert
        e.update(extra)
        return e

    def stream_info(self):
        c = self.client()
        r = c.js('STREAM.INFO.' + self.stream)
        c.close()
        return r

    def entries(self):
        """[(id, type, event)] of the stream in sequence order, from each
        message's Nats-Msg-Id header, subject and data."""
        c = self.client()
        info = c.js('STREAM.INFO.' + self.stream)
        check('error' not in info, 'stream info: %r', info.get('error'))
        st = info['state']
        out = []
        for seq in range(st['first_seq'], st['last_seq'] + 1):
            r = c.js('STREAM.MSG.GET.' + self.stream, {'seq': seq})
            check('error' not in r, 'message %d: %r', seq, r.get('error'))
            m = r['message']
            hdrs = base64.b64decode(m.get('hdrs', '')).split(b'\r\n')
            eq(hdrs[0], b'NATS/1.0', 'stored header block of %d' % seq)
            headers = dict(x.split(b': ', 1) for x in hdrs[1:] if x)
            check(b'Nats-Msg-Id' in headers, 'message %d has no Nats-Msg-Id '
                  '(headers %r)', seq, headers)
            prefix = self.subject + '.'
            check(m['subject'].startswith(prefix), 'subject %r', m['subject'])
            eq(headers.get(b'Nats-Expected-Stream'), self.stream.encode(),
               'Nats-Expected-Stream of %d' % seq)
            out.append((headers[b'Nats-Msg-Id'].decode(),
                        m['subject'][len(prefix):],
                        base64.b64decode(m.get('data', ''))))
        c.close()
        eq(len(out), st['messages'], 'messages in the stream')
        return out


# --------------------------------------------------------------------------
# A TCP proxy that loses the broker's answers

class AnswerLoser:
    """Forwards 127.0.0.1:port to the broker; once a client has sent
    trigger on its connection, the broker's answers on that connection are
    no longer passed back (the request still reaches the broker): an
    acknowledgement lost on the way."""

    def __init__(self, h, target, trigger):
        self.target = target
        self.trigger = trigger
        self.tripped = threading.Event()  # on any connection
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.done = False
        threading.Thread(target=self.accept, daemon=True).start()
        h.stoppers.append(self.close)

    def accept(self):
        while not self.done:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            s = socket.create_connection(('127.0.0.1', self.target))
            self.socks += [c, s]
            lost = threading.Event()  # this connection's answers
            threading.Thread(target=self.pump, args=(c, s, lost, True),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(s, c, lost, False),
                             daemon=True).start()

    def pump(self, src, dst, lost, upstream):
        seen = b''
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if upstream:
                seen = (seen + data)[-4096:]
                if self.trigger in seen:
                    lost.set()
                    self.tripped.set()
            elif lost.is_set():
                continue
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.done = True
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# Cases shared by both brokers

def status_counts(sp):
    j, _ = sp.status()
    out = {'pending': 0, 'in_progress': 0, 'failed': 0, 'quarantined': 0}
    for c in j['types'].values():
        for k in out:
            out[k] += c[k]
    return out


def exec_exact(h, make):
    """--exec: every event once, fields byte for byte."""
    sp = Spool(h, make.__name__ + '-exec')
    b = make(h, sp.dir)
    lines = fill(sp, 20) + [fill_long(sp)]
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--exec', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status (handler log %r)'
       % open(log, 'rb').read()[-400:])
    expect_once(b, lines)
    sp.expect_empty()
    return sp, b, lines, log


def batch_exact(h, make):
    """--batch: one handler per claimed file, every event once."""
    sp = Spool(h, make.__name__ + '-batch')
    b = make(h, sp.dir)
    lines = fill(sp, 150) + [fill_long(sp)]
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status (handler log %r)'
       % open(log, 'rb').read()[-400:])
    expect_once(b, lines)
    sp.expect_empty()
    with open(log) as f:
        summaries = re.findall(r'(?m)^[a-z-]+: (\d+) (?:added|stored), '
                               r'(\d+) duplicates, (\d+) failed$', f.read())
    # item.create, comment.create, task.update and item.update: four files
    eq(sorted(summaries), sorted([('1', '0', '0'), ('50', '0', '0'),
                                  ('50', '0', '0'), ('50', '0', '0')]),
       'handler summaries, one per claimed file')
    return sp, b


def repeats(h, make):
    """The same events handed over again, and repeated inside one input,
    are acknowledged (exit 0) without a second copy."""
    sp = Spool(h, make.__name__ + '-repeat')
    b = make(h, sp.dir)
    lines = fill(sp, 6)
    data = b''.join(lines)
    r = run_handler(b.handler, b.env(), data + data)
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-400:])
    eq(r.stdout, b'', 'stdout')
    err = r.stderr.decode()
    eq(len(re.findall(r' duplicate, ', err)), 6, 'duplicates reported in '
       '%r' % err[-600:])
    r = run_handler(b.handler, b.env(), data)
    eq(r.returncode, 0, 'second run exit status (stderr %r)'
       % r.stderr[-400:])
    check(r.stderr.decode().endswith('0 duplicates, 0 failed\n') is False
          and ' 6 duplicates, 0 failed' in r.stderr.decode(),
          'second run: %r', r.stderr[-300:])
    expect_once(b, lines)
    # Quietly: no -v, nothing on stdout or stderr.
    r = run_handler(b.handler, b.env(), data, args=())
    eq((r.returncode, r.stdout, r.stderr), (0, b'', b''), 'quiet run')


def killed_after_ack(h, make, mode):
    """The handler's process is killed right after the broker acknowledged
    (sh kills itself after the handler exits 0): drain retries every event,
    the broker keeps one copy of each."""
    sp = Spool(h, '%s-killack-%s' % (make.__name__, mode))
    b = make(h, sp.dir)
    lines = fill(sp, 12)
    log = os.path.join(sp.dir, 'handler.log')
    flag = '--' + mode
    r = sp.drain(flag, shell_cmd(b.handler, b.env(), log,
                                 tail=' && kill -KILL $$'))
    eq(r.returncode, 1, 'drain exit status with the handlers killed')
    eq(status_counts(sp)['in_progress'], 12, 'events left to retry')
    expect_once(b, lines, 'after the killed run: ')
    r = sp.drain(flag, shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'second drain exit status')
    expect_once(b, lines)
    sp.expect_empty()
    eq(absorbed_in_log(log), 12, 'duplicates absorbed')
    h.note('%s --%s killed after the ack: 12 events, 24 hand-offs, 12 '
           'duplicates absorbed' % (b.name, mode))


def random_kills(h, make, mode):
    """SIGKILL of drains and of handlers at random moments, drains again
    until the spool is empty; then every event is in the broker once."""
    sp = Spool(h, '%s-kills-%s' % (make.__name__, mode))
    b = make(h, sp.dir)
    if hasattr(b, 'reset_stats'):
        b.reset_stats()
    log = os.path.join(sp.dir, 'handler.log')
    cmd = shell_cmd(b.handler, b.env(), log)
    flag = '--' + mode
    rnd = h.rnd
    lines = []
    kills = {'drain': 0, 'handler': 0}
    # A drain --exec of 10 events takes about half a second (a Python
    # start per event), a drain --batch of 3 files about a tenth: the
    # kills fall anywhere in a run, sometimes after it.
    longest = 0.7 if mode == 'exec' else 0.25
    for rnd_i in range(12):
        lines += fill(sp, 10 if mode == 'exec' else 12, tag='r%d-' % rnd_i)
        p = sp.popen_drain(flag, cmd, '--max-attempts', KILL_ATTEMPTS)
        run_for = rnd.uniform(0.02, longest)
        until = time.monotonic() + run_for
        hkill = time.monotonic() + rnd.uniform(0.0, run_for) \
            if rnd.random() < 0.7 else None
        while p.poll() is None and time.monotonic() < until:
            if hkill is not None and time.monotonic() >= hkill:
                kids = harness.pids(parent=p.pid)
                if kids:
                    harness.sigkill_pids([rnd.choice(kids)])
                    kills['handler'] += 1
                    hkill = None
            time.sleep(0.003)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills['drain'] += 1
        p.wait()
    for _ in range(5):
        r = sp.drain(flag, cmd, '--wait', '--max-attempts', KILL_ATTEMPTS,
                     timeout=300)
        c = status_counts(sp)
        if c['pending'] == 0 and c['in_progress'] == 0:
            break
    eq(r.returncode, 0, 'final drain exit status (handler log tail %r)'
       % open(log, 'rb').read()[-400:])
    eq(status_counts(sp), {'pending': 0, 'in_progress': 0, 'failed': 0,
                           'quarantined': 0}, 'spool after the drains')
    expect_once(b, lines)
    sp.expect_empty()
    seen = absorbed_in_log(log)
    note = ('%s --%s, %d events: %d drains and %d handlers killed, '
            '%d duplicate hand-offs absorbed (handlers\' -v log)'
            % (b.name, mode, len(lines), kills['drain'], kills['handler'],
               seen))
    if hasattr(b, 'absorbed'):
        server = b.absorbed()
        check(server >= seen, 'Redis counts %d repeats, the handlers logged '
              '%d', server, seen)
        note += ', %d counted by Redis' % server
    h.note(note)


def broker_down(h, make):
    """Broker down: the handler exits 1 with one line on stderr, every
    event stays in the spool; the next run, with the broker up, delivers
    each once."""
    sp = Spool(h, make.__name__ + '-down')
    b = make(h, sp.dir)
    lines = fill(sp, 5)
    b.stop()
    log = os.path.join(sp.dir, 'handler.log')
    env = b.env()
    r = sp.drain('--exec', shell_cmd(b.handler, env, log).replace(
        ' -v ', ' '))
    eq(r.returncode, 1, 'drain exit status with the broker down')
    with open(log, 'rb') as f:
        err = f.read().decode()
    rows = err.splitlines()
    eq(len(rows), 5, 'one line per handler run: %r' % err)
    for row in rows:
        check(re.fullmatch(r'[a-z-]+: cannot connect to (Redis|NATS) at '
                           r'127\.0\.0\.1:%d: Connection refused' % b.port,
                           row), 'stderr line %r', row)
    eq(status_counts(sp)['in_progress'], 5, 'events kept for retry')
    b.start()
    r = sp.drain('--exec', shell_cmd(b.handler, env, log))
    eq(r.returncode, 0, 'drain exit status with the broker back')
    expect_once(b, lines)
    sp.expect_empty()


def broker_restart(h, make):
    """A broker restarted between runs keeps what it acknowledged and
    still recognises repeats; events spooled meanwhile go in once."""
    sp = Spool(h, make.__name__ + '-restart')
    b = make(h, sp.dir)
    first = fill(sp, 8, tag='a')
    log = os.path.join(sp.dir, 'handler.log')
    cmd = shell_cmd(b.handler, b.env(), log)
    r = sp.drain('--batch', cmd)
    eq(r.returncode, 0, 'first drain')
    b.restart()
    second = fill(sp, 8, tag='b')
    r = sp.drain('--exec', cmd)
    eq(r.returncode, 0, 'drain after the restart')
    b.restart()
    r = run_handler(b.handler, b.env(), b''.join(first + second))
    eq(r.returncode, 0, 'repeat after the second restart (stderr %r)'
       % r.stderr[-300:])
    check(' 0 %s, 16 duplicates, 0 failed' % (
        'added' if b.name == 'redis' else 'stored') in r.stderr.decode(),
        'repeats after a restart: %r', r.stderr[-300:])
    expect_once(b, first + second)
    sp.expect_empty()


def answer_lost(h, make, trigger):
    """The broker's answer is lost (a proxy drops it): the handler gives up
    after PODIO_BROKER_TIMEOUT and exits 1, though the broker stored the
    event; the retry is absorbed."""
    sp = Spool(h, make.__name__ + '-lost')
    b = make(h, sp.dir)
    lines = fill(sp, 3)
    proxy = AnswerLoser(h, b.port, trigger)
    env = b.env(PODIO_BROKER_TIMEOUT='1')
    key = 'REDIS_URL' if b.name == 'redis' else 'NATS_URL'
    env[key] = env[key].replace(':%d' % b.port, ':%d' % proxy.port)
    log = os.path.join(sp.dir, 'handler.log')
    t0 = time.monotonic()
    r = sp.drain('--batch', shell_cmd(b.handler, env, log))
    eq(r.returncode, 1, 'drain exit status with the answers lost')
    check(proxy.tripped.is_set(), 'the handler never sent its request')
    check(time.monotonic() - t0 < 30, 'the handler did not give up')
    with open(log, 'rb') as f:
        err = f.read().decode()
    check(re.search(r'(?m)^[a-z-]+: waiting for (Redis|NATS) at '
                    r'127\.0\.0\.1:%d: timed out$' % proxy.port, err),
          'handler stderr %r', err)
    eq(status_counts(sp)['in_progress'], 3, 'events kept for retry')
    wait_for(lambda: len(b.entries()) == 3, 10, 'the lost answers\' writes')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'retry exit status')
    expect_once(b, lines)
    eq(absorbed_in_log(log), 3, 'duplicates absorbed')
    sp.expect_empty()


def not_events(h, make):
    """Lines that are not spooled events fail (exit 1, one line each); the
    other lines of the input are handed over."""
    sp = Spool(h, make.__name__ + '-bad')
    b = make(h, sp.dir)
    good = fill(sp, 2)
    bad = [b'not json\n', b'[1,2]\n', b'{"id":"","type":"item.create"}\n',
           b'{"id":"x1"}\n', b'\xff\xfe\n', b'\n']
    r = run_handler(b.handler, b.env(), good[0] + b''.join(bad) + good[1],
                    args=())
    eq(r.returncode, 1, 'exit status')
    rows = r.stderr.decode().splitlines()
    eq(len(rows), len(bad), 'stderr lines %r' % rows)
    for i, row in enumerate(rows):
        check(row.startswith('%s: line %d: ' % (os.path.basename(b.handler),
                                                i + 2)),
              'stderr line %r', row)
    expect_once(b, good)
    return b


# --------------------------------------------------------------------------
# Redis cases

def redis(h, d, **kw):
    return RedisBroker(h, d, **kw)


def case_redis_exec(h):
    sp, b, lines, _ = exec_exact(h, redis)
    c = b.client()
    keys = sorted(c.call('KEYS', 'podio:seen:*'))
    eq(keys, sorted(b'podio:seen:' + i.encode() for i in by_id(lines)),
       'seen keys')
    entries = {e[0]: e for e in c.call('XRANGE', 'podio', '-', '+')}
    for k in keys:
        ttl = c.call('TTL', k)
        check(WEEK - 120 < ttl <= WEEK, 'TTL of %r is %r', k, ttl)
        eid = c.call('GET', k)
        check(eid in entries, '%r holds %r, not a stream entry id', k, eid)
        eq(entries[eid][1][1], k[len(b'podio:seen:'):], 'entry of ' + repr(k))
    c.close()


def case_redis_batch(h):
    batch_exact(h, redis)


def case_redis_repeats(h):
    repeats(h, redis)


def case_redis_killed_after_ack(h):
    killed_after_ack(h, redis, 'exec')
    killed_after_ack(h, redis, 'batch')


def case_redis_random_kills_exec(h):
    random_kills(h, redis, 'exec')


def case_redis_random_kills_batch(h):
    random_kills(h, redis, 'batch')


def case_redis_down(h):
    broker_down(h, redis)


def case_redis_restart(h):
    broker_restart(h, redis)


def case_redis_answer_lost(h):
    answer_lost(h, redis, b'EVAL')


def case_redis_not_events(h):
    not_events(h, redis)


def case_redis_url(h):
    """Password (percent-encoded), ACL user and database in REDIS_URL; a
    wrong password is exit 1, one line, the password never shown."""
    sp = Spool(h, 'redis-url')
    pw = 'p@ss:w/rd %#?'
    b = RedisBroker(h, sp.dir, password=pw)
    lines = fill(sp, 3)
    r = run_handler(b.handler, b.env(REDIS_URL=b.url(3)), b''.join(lines))
    eq(r.returncode, 0, 'exit status with the password (stderr %r)'
       % r.stderr[-300:])
    eq(b.entries(db=3), b.entries(db=3), 'db 3')
    eq([e[0] for e in b.entries(db=3)], list(by_id(lines)), 'ids in db 3')
    c = b.client()
    eq(c.call('EXISTS', 'podio'), 0, 'nothing in db 0')
    eq(c.call('ACL', 'SETUSER', 'podio', 'on', '>s3cret-user', '~*',
              '+@all'), b'OK', 'ACL SETUSER')
    c.close()
    more = fill(sp, 2, tag='acl')
    url = 'redis://podio:s3cret-user@127.0.0.1:%d/5' % b.port
    r = run_handler(b.handler, b.env(REDIS_URL=url), b''.join(more))
    eq(r.returncode, 0, 'exit status as ACL user (stderr %r)'
       % r.stderr[-300:])
    eq([e[0] for e in b.entries(db=5)], list(by_id(more)), 'ids in db 5')
    for url in ('redis://:wrong-pw@127.0.0.1:%d/0' % b.port,
                'redis://127.0.0.1:%d/0' % b.port):
        r = run_handler(b.handler, b.env(REDIS_URL=url), lines[0], args=())
        eq(r.returncode, 1, 'exit status of %s' % url)
        row = one_line(r.stderr, url)
        check('wrong-pw' not in row and ('AUTH' in row or 'NOAUTH' in row),
              'stderr %r', row)


def case_redis_config_errors(h):
    """Configuration errors: exit 2, one line naming the setting, no
    secret repeated, nothing on stdout."""
    line = b'{"id":"1","type":"item.create"}\n'
    bad = [({'REDIS_URL': 'http://u:s3cret@127.0.0.1/'}, 'REDIS_URL'),
           ({'REDIS_URL': 'redis://u:s3cret@127.0.0.1:99999/0'}, 'port'),
           ({'REDIS_URL': 'redis://127.0.0.1:6379/x'}, 'database'),
           ({'REDIS_URL': 'redis://127.0.0.1/0?password=s3cret'}, 'query'),
           ({'REDIS_URL': 'redis:///0'}, 'host'),
           ({'PODIO_DEDUP_WINDOW': '-1'}, 'PODIO_DEDUP_WINDOW'),
           ({'PODIO_DEDUP_WINDOW': '1e3'}, 'PODIO_DEDUP_WINDOW'),
           ({'PODIO_BROKER_TIMEOUT': '0'}, 'PODIO_BROKER_TIMEOUT'),
           ({'PODIO_STREAM': 'a b'}, 'PODIO_STREAM')]
    for env, word in bad:
        r = run_handler(REDIS_HANDLER, env, line, args=())
        eq(r.returncode, 2, 'exit status with %r' % env)
        eq(r.stdout, b'', 'stdout')
        row = one_line(r.stderr, repr(env))
        check(word in row and 's3cret' not in row, 'stderr %r', row)
    r = run_handler(REDIS_HANDLER, {}, line, args=('--bogus',))
    eq(r.returncode, 2, 'exit status of --bogus')
    check("'--bogus'" in one_line(r.stderr, '--bogus'), 'stderr %r',
          r.stderr)
    r = run_handler(REDIS_HANDLER, {}, b'', args=('--help',))
    eq(r.returncode, 0, '--help exit status')
    check(r.stdout.startswith(b'usage: redis-stream [-v]\n'), '--help %r',
          r.stdout[:80])


def case_redis_refused(h):
    """An XADD that Redis refuses (the stream's key holds a string; memory
    full) writes nothing, not even the seen key; once the cause is fixed,
    the event goes in."""
    sp = Spool(h, 'redis-refused')
    b = RedisBroker(h, sp.dir)
    lines = fill(sp, 3)
    c = b.client()
    eq(c.call('SET', 'podio', 'not a stream'), b'OK', 'SET')
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--exec', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 1, 'drain exit status')
    with open(log) as f:
        err = f.read()
    eq(len(re.findall(r'(?m)^redis-stream: \S+ not added: WRONGTYPE ', err)),
       3, 'refusals on stderr: %r' % err[-500:])
    eq(c.call('KEYS', 'podio:seen:*'), [], 'seen keys left by a refused XADD')
    eq(c.call('GET', 'podio'), b'not a stream', 'the string')
    eq(c.call('DEL', 'podio'), 1, 'DEL')
    r = sp.drain('--exec', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status once fixed')
    expect_once(b, lines)
    sp.expect_empty()
    # Memory full (maxmemory below what is used, no eviction).
    more = fill(sp, 2, tag='oom')
    info = c.call('INFO', 'memory').decode()
    used = int(re.search(r'(?m)^used_memory:(\d+)', info).group(1))
    eq(c.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), b'OK',
       'maxmemory-policy')
    eq(c.call('CONFIG', 'SET', 'maxmemory', str(used // 2)), b'OK',
       'maxmemory')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 1, 'drain exit status with memory full')
    with open(log) as f:
        err = f.read()
    eq(len(re.findall(r'(?m)^redis-stream: \S+ not added: OOM ', err)), 2,
       'OOM refusals on stderr: %r' % err[-500:])
    eq(len(c.call('KEYS', 'podio:seen:*')), len(lines),
       'seen keys after the OOM refusals')
    eq(c.call('CONFIG', 'SET', 'maxmemory', '0'), b'OK', 'maxmemory 0')
    c.close()
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status with memory again')
    expect_once(b, lines + more)
    sp.expect_empty()


def case_redis_forever(h):
    """PODIO_DEDUP_WINDOW=0 keeps the seen keys without expiry."""
    sp = Spool(h, 'redis-forever')
    b = RedisBroker(h, sp.dir, stream='events:podio')
    lines = fill(sp, 2)
    r = run_handler(b.handler, b.env(PODIO_DEDUP_WINDOW='0'),
                    b''.join(lines))
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    expect_once(b, lines)
    c = b.client()
    for eid in by_id(lines):
        eq(c.call('TTL', 'events:podio:seen:' + eid), -1, 'TTL of ' + eid)
    c.close()


def case_redis_tls(h):
    """rediss:// with REDIS_CA_FILE; a server the CA does not vouch for,
    a CA file that cannot be read, plain redis:// to a TLS port."""
    sp = Spool(h, 'redis-tls')
    b = RedisBroker(h, sp.dir, tls=True, password='tls-pw')
    lines = fill(sp, 4)
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status (log %r)'
       % open(log, 'rb').read()[-300:])
    expect_once(b, lines)
    more = fill(sp, 1, tag='x')[0]
    r = run_handler(b.handler, b.env(REDIS_CA_FILE=''), more, args=())
    eq(r.returncode, 1, 'exit status with the system CAs')
    check('CERTIFICATE_VERIFY_FAILED' in one_line(r.stderr, 'system CAs'),
          'stderr %r', r.stderr)
    r = run_handler(b.handler, b.env(REDIS_CA_FILE='/nonexistent/ca.pem'),
                    more, args=())
    eq(r.returncode, 2, 'exit status with a missing CA file')
    check(one_line(r.stderr, 'missing CA').startswith(
        'redis-stream: REDIS_CA_FILE: '), 'stderr %r', r.stderr)
    env = b.env(PODIO_BROKER_TIMEOUT='2')
    env['REDIS_URL'] = env['REDIS_URL'].replace('rediss:', 'redis:')
    r = run_handler(b.handler, env, more, args=())
    eq(r.returncode, 1, 'exit status of redis:// to a TLS port')
    one_line(r.stderr, 'redis:// to a TLS port')
    expect_once(b, lines)


# --------------------------------------------------------------------------
# NATS cases

def nats(h, d, **kw):
    return NatsBroker(h, d, **kw)


def case_nats_exec(h):
    sp, b, lines, log = exec_exact(h, nats)
    info = b.stream_info()
    cfg = info['config']
    eq((cfg['subjects'], cfg['storage'], cfg['duplicate_window']),
       (['podio.>'], 'file', WEEK * 10**9), 'the stream the handler created')
    with open(log) as f:
        eq(len(re.findall(r'(?m)^nats-jetstream: created stream PODIO ',
                          f.read())), 1, 'streams created')
    got = b.entries()
    eq(sorted(set(e[1] for e in got)),
       ['comment.create', 'item.create', 'item.update', 'task.update'],
       'subjects podio.{type}')


def case_nats_batch(h):
    batch_exact(h, nats)


def case_nats_repeats(h):
    repeats(h, nats)


def case_nats_killed_after_ack(h):
    killed_after_ack(h, nats, 'exec')
    killed_after_ack(h, nats, 'batch')


def case_nats_random_kills_exec(h):
    random_kills(h, nats, 'exec')


def case_nats_random_kills_batch(h):
    random_kills(h, nats, 'batch')


def case_nats_down(h):
    broker_down(h, nats)


def case_nats_restart(h):
    broker_restart(h, nats)


def case_nats_answer_lost(h):
    answer_lost(h, nats, b'HPUB ')


def case_nats_not_events(h):
    b = not_events(h, nats)
    r = run_handler(b.handler, b.env(),
                    b'{"id":"x 1","type":"item.create"}\n'
                    b'{"id":"x2","type":"Item Create"}\n'
                    b'{"id":"x3","type":"item.>"}\n', args=())
    eq(r.returncode, 1, 'exit status')
    eq(r.stderr.decode().splitlines(),
       ['nats-jetstream: line 1: an "id" that cannot be a Nats-Msg-Id',
        'nats-jetstream: line 2: no well-formed "type"',
        'nats-jetstream: line 3: no well-formed "type"'], 'stderr')


def case_nats_auth(h):
    """User and password (percent-encoded) or a token in NATS_URL; wrong
    credentials are exit 1, one line, the password never shown; several
    servers are tried in order."""
    sp = Spool(h, 'nats-auth')
    b = NatsBroker(h, sp.dir, user='podio', password='p@ss:w/rd %#?')
    lines = fill(sp, 3)
    r = run_handler(b.handler, b.env(), b''.join(lines))
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    expect_once(b, lines)
    for url in ('nats://podio:wrong-pw@127.0.0.1:%d' % b.port,
                'nats://127.0.0.1:%d' % b.port):
        r = run_handler(b.handler, b.env(NATS_URL=url), lines[0], args=())
        eq(r.returncode, 1, 'exit status of %s' % url)
        row = one_line(r.stderr, url)
        check('wrong-pw' not in row and 'Authorization Violation' in row,
              'stderr %r', row)
    d2 = os.path.join(sp.dir, 'token')
    os.mkdir(d2)
    t = NatsBroker(h, d2, token='t0ken/x')
    more = fill(sp, 2, tag='tok')
    down = harness.free_port()
    url = 'nats://127.0.0.1:%d, %s' % (down, t.url())
    r = run_handler(t.handler, t.env(NATS_URL=url), b''.join(more))
    eq(r.returncode, 0, 'exit status with a token (stderr %r)'
       % r.stderr[-300:])
    expect_once(t, more)


def case_nats_config_errors(h):
    line = b'{"id":"1","type":"item.create"}\n'
    bad = [({'NATS_URL': 'http://u:s3cret@127.0.0.1'}, 'NATS_URL'),
           ({'NATS_URL': 'nats://u:s3cret@127.0.0.1:70000'}, 'port'),
           ({'NATS_URL': 'nats://127.0.0.1:4222/x'}, 'path'),
           ({'NATS_URL': 'nats://127.0.0.1,redis://x'}, 'server 2'),
           ({'PODIO_NATS_STREAM': 'A.B'}, 'PODIO_NATS_STREAM'),
           ({'PODIO_NATS_SUBJECT': 'podio.*'}, 'PODIO_NATS_SUBJECT'),
           ({'PODIO_DEDUP_WINDOW': '0'}, 'PODIO_DEDUP_WINDOW'),
           ({'PODIO_BROKER_TIMEOUT': 'ten'}, 'PODIO_BROKER_TIMEOUT')]
    for env, word in bad:
        r = run_handler(NATS_HANDLER, env, line, args=())
        eq(r.returncode, 2, 'exit status with %r' % env)
        eq(r.stdout, b'', 'stdout')
        row = one_line(r.stderr, repr(env))
        check(word in row and 's3cret' not in row, 'stderr %r', row)
    r = run_handler(NATS_HANDLER, {}, line, args=('-x',))
    eq(r.returncode, 2, 'exit status of -x')
    r = run_handler(NATS_HANDLER, {}, b'', args=('-h',))
    eq(r.returncode, 0, '-h exit status')
    check(r.stdout.startswith(b'usage: nats-jetstream [-v]\n'), '-h %r',
          r.stdout[:80])


def case_nats_no_jetstream(h):
    sp = Spool(h, 'nats-nojs')
    b = NatsBroker(h, sp.dir, jetstream=False)
    lines = fill(sp, 2)
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log).replace(
        ' -v ', ' '))
    eq(r.returncode, 1, 'drain exit status')
    with open(log) as f:
        rows = f.read().splitlines()
    eq(len(rows), 2, 'lines from the two handler runs (one per type): %r'
       % rows)
    for row in rows:
        check(row == 'nats-jetstream: NATS at 127.0.0.1:%d: JetStream is not '
              'enabled (no answer to $JS.API)' % b.port, 'stderr %r', row)
    eq(status_counts(sp)['in_progress'], len(lines), 'events kept')


def case_nats_existing_stream(h):
    """A stream that exists is used as it is (its window kept; -v says it
    is shorter); a subject no stream takes is exit 1."""
    sp = Spool(h, 'nats-existing')
    b = NatsBroker(h, sp.dir, stream='EVENTS', subject='hooks.podio')
    c = b.client()
    r = c.js('STREAM.CREATE.EVENTS', {'name': 'EVENTS',
                                      'subjects': ['hooks.>'],
                                      'storage': 'memory',
                                      'duplicate_window': 60 * 10**9})
    check('error' not in r, 'create: %r', r)
    c.close()
    lines = fill(sp, 3)
    r = run_handler(b.handler, b.env(), b''.join(lines))
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    check('stream EVENTS drops duplicates within 60 s only' in
          r.stderr.decode(), 'stderr %r', r.stderr[-300:])
    cfg = b.stream_info()['config']
    eq((cfg['subjects'], cfg['storage'], cfg['duplicate_window']),
       (['hooks.>'], 'memory', 60 * 10**9), 'the stream, unchanged')
    expect_once(b, lines)
    r = run_handler(b.handler, b.env(PODIO_NATS_SUBJECT='elsewhere'),
                    lines[0], args=())
    eq(r.returncode, 1, 'exit status for a subject no stream takes')
    row = one_line(r.stderr, 'subject elsewhere')
    check('not stored' in row and 'elsewhere' in row, 'stderr %r', row)


def case_nats_max_payload(h):
    """An event bigger than the server's max_payload is exit 1 naming it;
    the other events of the batch are stored."""
    sp = Spool(h, 'nats-maxpayload')
    b = NatsBroker(h, sp.dir, max_payload=8192)
    small = fill(sp, 2)
    big = fill_long(sp)
    r = run_handler(b.handler, b.env(), small[0] + big + small[1], args=())
    eq(r.returncode, 1, 'exit status')
    row = one_line(r.stderr, 'max_payload')
    check("over the server's max_payload of 8192" in row, 'stderr %r', row)
    expect_once(b, small)


def case_nats_tls(h):
    """A server that requires TLS, reached by nats:// and tls:// with
    NATS_CA_FILE; a server the CA does not vouch for."""
    sp = Spool(h, 'nats-tls')
    b = NatsBroker(h, sp.dir, tls=True, token='tls-token')
    lines = fill(sp, 4)
    log = os.path.join(sp.dir, 'handler.log')
    r = sp.drain('--batch', shell_cmd(b.handler, b.env(), log))
    eq(r.returncode, 0, 'drain exit status (log %r)'
       % open(log, 'rb').read()[-300:])
    more = fill(sp, 1, tag='x')[0]
    env = b.env()
    env['NATS_URL'] = env['NATS_URL'].replace('nats:', 'tls:')
    r = run_handler(b.handler, env, more)
    eq(r.returncode, 0, 'tls:// exit status (stderr %r)' % r.stderr[-300:])
    expect_once(b, lines + [more])
    r = run_handler(b.handler, b.env(NATS_CA_FILE=''), more, args=())
    eq(r.returncode, 1, 'exit status with the system CAs')
    check('CERTIFICATE_VERIFY_FAILED' in one_line(r.stderr, 'system CAs'),
          'stderr %r', r.stderr)
    r = run_handler(b.handler, b.env(NATS_CA_FILE='/nonexistent/ca.pem'),
                    more, args=())
    eq(r.returncode, 2, 'exit status with a missing CA file')
    check(one_line(r.stderr, 'missing CA').startswith(
        'nats-jetstream: NATS_CA_FILE: '), 'stderr %r', r.stderr)


def case_readme_cron_lines(h):
    """The crontab lines of README.md, run as cron would (/bin/sh -c, the
    URL variable in the environment) with the installed paths mapped to
    this tree: each broker gets every event once."""
    with open(os.path.join(REPO, 'README.md')) as f:
        readme = f.read()
    found = re.findall(r'(?m)^(REDIS_URL|NATS_URL)=\S+\n'
                       r'(?:[*/0-9,-]+\s+){5}(/usr/local/bin/podio-hook .*'
                       r'handlers/(redis-stream|nats-jetstream))$', readme)
    eq(sorted((v, n) for v, _, n in found),
       [('NATS_URL', 'nats-jetstream'), ('REDIS_URL', 'redis-stream')],
       'crontab lines in README.md')
    for var, cmd, name in found:
        sp = Spool(h, 'readme-' + name)
        b = (RedisBroker if var == 'REDIS_URL' else NatsBroker)(h, sp.dir)
        lines = fill(sp, 6)
        for old, new in (('/usr/local/bin/podio-hook', h.bin),
                         ('/etc/podio-hook.ini', sp.ini),
                         ('/usr/local/lib/podio-hook/handlers', HANDLERS)):
            check(old in cmd, '%r not in %r', old, cmd)
            cmd = cmd.replace(old, shlex.quote(new))
        env = {'PATH': SYS_PATH, 'LANG': 'C', var: b.url()}
        r = subprocess.run(['/bin/sh', '-c', cmd], env=env,
                           capture_output=True, timeout=120)
        eq((r.returncode, r.stdout, r.stderr), (0, b'', b''),
           'the cron line of %s' % name)
        expect_once(b, lines)
        sp.expect_empty()


CASES = [
    ('redis: --exec, every event once, fields byte for byte (UTF-8, '
     'control characters, a 126 KiB line), seen keys expire in a week',
     case_redis_exec),
    ('redis: --batch, one handler per claimed file', case_redis_batch),
    ('redis: repeats acknowledged without a second entry', case_redis_repeats),
    ('redis: handler killed after the ack (--exec, --batch): retries '
     'absorbed', case_redis_killed_after_ack),
    ('redis: random SIGKILLs of drains and handlers, --exec',
     case_redis_random_kills_exec),
    ('redis: random SIGKILLs of drains and handlers, --batch',
     case_redis_random_kills_batch),
    ('redis: server down, exit 1 and one line, events kept, then delivered',
     case_redis_down),
    ('redis: restart between runs keeps entries and seen keys',
     case_redis_restart),
    ('redis: answer lost, exit 1 after the timeout, retry absorbed',
     case_redis_answer_lost),
    ('redis: lines that are not events', case_redis_not_events),
    ('redis: password, ACL user and database in REDIS_URL',
     case_redis_url),
    ('redis: configuration errors exit 2', case_redis_config_errors),
    ('redis: a refused XADD (wrong type, out of memory) leaves nothing '
     'behind', case_redis_refused),
    ('redis: PODIO_DEDUP_WINDOW=0 keeps seen keys forever',
     case_redis_forever),
    ('redis: rediss:// with REDIS_CA_FILE', case_redis_tls),
    ('nats: --exec, every event once, byte for byte; stream PODIO created '
     'on podio.> with a week\'s duplicate window', case_nats_exec),
    ('nats: --batch, one handler per claimed file', case_nats_batch),
    ('nats: repeats acknowledged as duplicates', case_nats_repeats),
    ('nats: handler killed after the ack (--exec, --batch): retries '
     'absorbed', case_nats_killed_after_ack),
    ('nats: random SIGKILLs of drains and handlers, --exec',
     case_nats_random_kills_exec),
    ('nats: random SIGKILLs of drains and handlers, --batch',
     case_nats_random_kills_batch),
    ('nats: server down, exit 1 and one line, events kept, then delivered',
     case_nats_down),
    ('nats: restart between runs keeps messages and the duplicate window',
     case_nats_restart),
    ('nats: PubAck lost, exit 1 after the timeout, retry absorbed',
     case_nats_answer_lost),
    ('nats: lines that are not events', case_nats_not_events),
    ('nats: user, password, token and several servers in NATS_URL',
     case_nats_auth),
    ('nats: configuration errors exit 2', case_nats_config_errors),
    ('nats: a server without JetStream', case_nats_no_jetstream),
    ('nats: an existing stream is used as it is', case_nats_existing_stream),
    ('nats: an event over max_payload', case_nats_max_payload),
    ('nats: TLS with NATS_CA_FILE', case_nats_tls),
    ('README.md: the crontab lines for Redis and NATS work',
     case_readme_cron_lines),
]


def measure(h, n):
    """--measure N: events/s of drain --exec and --batch into each broker
    (N events of one type, written to the spool directly), and the ratio.
    Figures only: no assertion on them."""
    for make in (RedisBroker, NatsBroker):
        rate = {}
        for mode in ('exec', 'batch'):
            sp = Spool(h, 'measure-%s-%s' % (make.name, mode))
            b = make(h, sp.dir)
            lines = [make_line('m%06d' % i, 'item.create',
                                 {'item_id': str(i), 'note': NOTES[0]})
                     for i in range(n)]
            sp.write('item.create.jsonl', b''.join(lines))
            log = os.path.join(sp.dir, 'handler.log')
            cmd = shell_cmd(b.handler, b.env(), log).replace(' -v ', ' ')
            t0 = time.monotonic()
            r = sp.drain('--' + mode, cmd, timeout=3600)
            dt = time.monotonic() - t0
            eq(r.returncode, 0, 'drain exit status')
            expect_once(b, lines)
            rate[mode] = n / dt
            print('# %s drain --%s: %d events in %.2f s, %.0f events/s'
                  % (b.name, mode, n, dt, rate[mode]))
            h.cleanup_case()
        print('# %s: --batch %.0f times as fast as --exec'
              % (make.name, rate['batch'] / rate['exec']))


class Brokers(Workspace):
    """The run's Workspace and its random choices (self.rnd, from seed)."""

    def __init__(self, binary, seed):
        super().__init__(binary, 'podio-brokers.')
        self.rnd = random.Random(seed)


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parser.add_argument('--seed', type=int, default=None,
                              help='seed of the random kills (default: '
                              'time)')
    suite.parser.add_argument('--measure', type=int, metavar='N',
                              help='print events/s of --exec and --batch '
                              'for N events into each broker, run no case')
    args = suite.parse()
    if not suite.ready():
        return suite.finish()
    seed = args.seed if args.seed is not None else int(time.time())
    h = Brokers(suite.bin, seed)
    if args.measure:
        try:
            measure(h, args.measure)
        finally:
            h.cleanup_case()
            shutil.rmtree(h.tmp, ignore_errors=True)
        return 0
    h.note('random seed %d (--seed %d repeats the kills\' timing choices)'
           % (seed, seed))
    return run_suite(suite, h, slow=20)


if __name__ == '__main__':
    sys.exit(main())
