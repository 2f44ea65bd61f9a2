"""tests/lib/fcgiclient.py - a small FastCGI client (the responder role,
FastCGI 1.0 records) for the suites that drive `podio-hook --listen`
without a web server (tests/leak, tests/threads).

    sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
    import fcgiclient

FcgiClient(port).request(params, body, keep) -> (status, headers, body);
cgi_post(body, ...) -> the params and body of a form POST as a web server
would pass them; wait_listening() waits for a --listen process to accept
connections.  Python 3 standard library only.
"""

import re
import socket
import struct
import time

from harness import Failure

# Record types and roles (FastCGI 1.0)
FCGI_BEGIN_REQUEST = 1
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1


def fcgi_record(rtype, content, rid=1):
    out = []
    pos = 0
    while True:
        chunk = content[pos:pos + 65535]
        pad = -len(chunk) % 8
        out.append(struct.pack('>BBHHBx', 1, rtype, rid, len(chunk), pad))
        out.append(chunk)
        out.append(b'\0' * pad)
        pos += len(chunk)
        if pos >= len(content):
            break
    return b''.join(out)


def fcgi_nv(name, value):
    def length(n):
        return bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def fcgi_encode(params, body, keep):
    """One whole request: BEGIN, PARAMS..., empty PARAMS, STDIN..., empty."""
    pairs = b''.join(fcgi_nv(k.encode(), v.encode())
                     for k, v in params.items())
    parts = [fcgi_record(FCGI_BEGIN_REQUEST,
                         struct.pack('>HB5x', FCGI_RESPONDER,
                                     FCGI_KEEP_CONN if keep else 0))]
    if pairs:
        parts.append(fcgi_record(FCGI_PARAMS, pairs))
    parts.append(fcgi_record(FCGI_PARAMS, b''))
    if body:
        parts.append(fcgi_record(FCGI_STDIN, body))
    parts.append(fcgi_record(FCGI_STDIN, b''))
    return b''.join(parts)


class FcgiClient:
    """Sends requests to host:port.  With keep, one connection (FCGI_KEEP_CONN)
    is reused until the server closes it; without, one per request, as
    lighttpd and mod_proxy_fcgi do."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.kept = None

    def close(self):
        if self.kept is not None:
            self.kept.close()
            self.kept = None

    def _connect(self):
        s = socket.create_connection(('127.0.0.1', self.port),
                                     timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def request(self, params, body=b'', keep=False):
        """-> (status, headers dict (lower-case names), body bytes)."""
        if keep:
            if self.kept is None:
                self.kept = self._connect()
            s = self.kept
        else:
            self.close()
            s = self._connect()
        try:
            s.sendall(fcgi_encode(params, body, keep))
            out = self._read_reply(s)
        except Exception:
            if keep:
                self.close()
            raise
        finally:
            if not keep:
                s.close()
        return parse_cgi_reply(out)

    @staticmethod
    def _read_reply(s):
        buf = b''
        out = []
        while True:
            while len(buf) < 8:
                data = s.recv(65536)
                if not data:
                    raise Failure('connection closed before END_REQUEST '
                                  '(got %r)' % b''.join(out)[:200])
                buf += data
            _, rtype, _, clen, pad = struct.unpack('>BBHHBx', buf[:8])
            while len(buf) < 8 + clen + pad:
                data = s.recv(65536)
                if not data:
                    raise Failure('connection closed inside a record')
                buf += data
            content = buf[8:8 + clen]
            buf = buf[8 + clen + pad:]
            if rtype == FCGI_STDOUT:
                out.append(content)
            elif rtype == FCGI_END_REQUEST:
                return b''.join(out)
            elif rtype != FCGI_STDERR:
                raise Failure('unexpected FastCGI record type %d' % rtype)


def parse_cgi_reply(data):
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep:
        raise Failure('reply without a header end: %r' % data[:200])
    headers = {}
    for line in head.split(b'\r\n'):
        k, _, v = line.decode('latin-1').partition(':')
        headers[k.strip().lower()] = v.strip()
    m = re.match(r'(\d{3})', headers.get('status', ''))
    if not m:
        raise Failure('reply without a Status header: %r' % data[:200])
    return int(m.group(1)), headers, body


# --------------------------------------------------------------------------
# Requests and servers

FORM = 'application/x-www-form-urlencoded'


def cgi_post(body, ctype=FORM, query='', clen=None):
    """-> (params, body) of a POST of body to /hook as a web server passes
    it; ctype None: no CONTENT_TYPE; clen '': no CONTENT_LENGTH."""
    body = body.encode() if isinstance(body, str) else body
    env = {'REQUEST_METHOD': 'POST', 'QUERY_STRING': query,
           'CONTENT_TYPE': ctype,
           'CONTENT_LENGTH': str(len(body) if clen is None else clen),
           'REMOTE_ADDR': '192.0.2.7', 'REMOTE_PORT': '40000',
           'SERVER_PROTOCOL': 'HTTP/1.1', 'SCRIPT_NAME': '/hook',
           'REQUEST_URI': '/hook' + ('?' + query if query else ''),
           'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
           'GATEWAY_INTERFACE': 'CGI/1.1'}
    if ctype is None:
        del env['CONTENT_TYPE']
    if clen == '':
        del env['CONTENT_LENGTH']
    return env, body


def wait_listening(p, port, log, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failure('exited with %s before listening: %s'
                          % (p.returncode, tail(log)))
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure('not listening on %d after %d s: %s'
                  % (port, seconds, tail(log)))


def tail(path, n=8):
    try:
        with open(path, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return '(no log)'
    return ' | '.join(lines[-n:])
