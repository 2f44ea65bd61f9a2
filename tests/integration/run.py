#!/usr/bin/env python3
"""Integration tests: the real web servers, the real binary, one table of cases.

Every case of the table runs through every setup (kcgi style):

    lighttpd-fastcgi  lighttpd/podio-hook-fastcgi.conf  (mod_fastcgi, bin-path)
    lighttpd-cgi      lighttpd/podio-hook-cgi.conf      (mod_cgi)
    apache-cgi        apache/podio-hook-cgi.conf        (mpm_event + mod_cgid)
    apache-fcgid      apache/podio-hook-fcgid.conf      (mpm_event + mod_fcgid)
    apache-proxy-fcgi apache/podio-hook-proxy-fcgi.conf (mpm_event +
                      mod_proxy_fcgi to `podio-hook --listen SOCKET`, which
                      the harness starts and stops by pid itself)
    apache-htaccess   cgi-bin/.htaccess                 (mpm_event + mod_cgid,
                      shared hosting: a docroot folder cgi-bin/ holding the
                      binary as podio-hook.cgi, the .htaccess and the
                      podio-hook.ini found beside the binary; hook URL
                      /cgi-bin/podio-hook.cgi)
    nginx-fastcgi     nginx/podio-hook.conf             (nginx fastcgi_pass
                      to `podio-hook --listen 127.0.0.1:PORT`, which the
                      harness starts and stops by pid itself)

The lighttpd setups log to the server.breakagelog the snippets set (their
var.podio_hook_log); the --listen setups to podio-hook's own standard
error.

Each setup wraps the shipped snippet, changing only paths, in a minimal main
server config written to a temporary directory, and starts one server
instance per receiver configuration the cases need (main, secret, ...), each
listening on its own free port on 127.0.0.1.  Every HTTP request is made by
the curl binary.  The spool is read back after every case: a 2xx case must
have appended exactly the expected line, any other case nothing at all.
Some setups add cases of their own (URLs that must not reach podio-hook,
files the .htaccess must not serve, SIGTERM during a request).

Every setup also proves hook.verify against tests/podio/fake_podio.py over
HTTPS (podio_verify.py beside this file): one fake per setup, two more
server instances with [podio] credentials for it ("podio", "podio-hang");
validated, token reuse (per process in FastCGI, through the cache file in
CGI), expired-token refresh, a hanging API answered within the timeout, a
wrong code, and no code, token or secret in the logs.

    python3 tests/integration/run.py [--bin PATH] [--only SETUP[,SETUP]] [--keep]

Output: one line per case, "ok - SETUP: NAME" or "FAIL - SETUP: NAME: WHY"
(followed by "# " lines of evidence), and last "N passed, M failed, K
skipped" (tests/lib/harness.py's Suite).  A case that cannot run on this
machine is "skip - SETUP: NAME: WHY" (apache-htaccess's no-config cases
when /etc/podio-hook.ini exists).  The temporary tree is removed when all
passed (kept, and named, otherwise or with --keep).
Exit status 1 when anything failed.  Python 3 standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import form  # noqa: E402
import podio_verify  # noqa: E402  (beside this file)

APACHE_MODULES = '/usr/lib/apache2/modules'
# The user the servers run CGI / FastCGI programs as when started by root.
RUN_USER = harness.RUN_USER

SETUPS = ['lighttpd-fastcgi', 'lighttpd-cgi', 'apache-cgi', 'apache-fcgid',
          'apache-proxy-fcgi', 'apache-htaccess', 'nginx-fastcgi']
FASTCGI_SETUPS = ('lighttpd-fastcgi', 'apache-fcgid', 'apache-proxy-fcgi',
                  'nginx-fastcgi')
# The setups whose podio-hook is `podio-hook --listen`, started by the
# harness: on a Unix socket (Apache) or on a loopback TCP port (nginx).
LISTEN_SETUPS = ('apache-proxy-fcgi', 'nginx-fastcgi')
# What the server answers while that podio-hook is not running.
BACKEND_DOWN = {'apache-proxy-fcgi': 503, 'nginx-fastcgi': 502}
# Where each setup's snippet puts the receiver.
HOOK_PATH = {'apache-htaccess': '/cgi-bin/podio-hook.cgi'}
# The config podio-hook falls back to when nothing else names one.
ETC_CONFIG = '/etc/podio-hook.ini'

MAX_BODY = 1024                  # [receiver] max_body of the instances
SECRET = 'S3cr3t-Value_42'       # [receiver] secret of the "secret" instance
ALLOWED = ('1001', '1002')       # [receiver] allowed_hooks of "allowed"
VERIFY_CODE = 'c0de-7f3a9b21'    # a hook.verify code: must never be logged
FORM = 'application/x-www-form-urlencoded'
RECEIVED_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$')
BULK_N = {'fastcgi': 2000, 'cgi': 300}
BULK_PARALLEL = 16


# --------------------------------------------------------------------------
# The case table

class Case:
    """One row: a request, the status it must get and, for a 2xx, the line.

    body is the raw body (str, sent byte for byte as UTF-8); None sends no
    body.  params is the exact ordered list of (key, value) the spooled
    line must carry; spool_type names the file it must land in.
    """

    def __init__(self, name, status, body=None, query='', method='POST',
                 ctype=FORM, variant='main', params=None, spool_type=None,
                 verification=None, server_may_answer=False, check=None,
                 overrides=None):
        self.name = name
        self.status = status
        self.body = body
        self.query = query
        self.method = method
        self.ctype = ctype
        self.variant = variant
        self.params = params
        self.spool_type = spool_type
        self.verification = verification
        # The web server itself may give this answer (411): status only.
        self.server_may_answer = server_may_answer
        # Extra check(instance, result, what the case logged) -> problems;
        # with status None the case is that check alone, no request.
        self.check = check
        if status == 200 and params is not None and spool_type is None:
            self.spool_type = dict(params)['type']
        # {setup prefix: {attribute: value}}: where a server, not
        # podio-hook, decides differently.
        self.overrides = overrides or {}

    def for_setup(self, setup):
        for prefix, attrs in self.overrides.items():
            if setup.startswith(prefix):
                c = Case(self.name, self.status)
                c.__dict__.update(self.__dict__)
                c.__dict__.update(attrs)
                c.overrides = {}
                return c
        return self


def ok_case(name, pairs, query_pairs=(), **kw):
    """A 200 case posting pairs (and query_pairs); expects them spooled."""
    query = form(query_pairs)
    params = [p for p in list(query_pairs) + list(pairs) if p[0] != 'secret']
    return Case(name, 200, body=form(pairs), query=query, params=params, **kw)


def bad_case(name, status, body, **kw):
    return Case(name, status, body=body, **kw)


# The 25 event types besides hook.verify, with their parameters (SPEC 1).
EVENTS = [
    ('item.create', [('item_id', '5001'), ('item_revision_id', '0'),
                     ('external_id', 'ext 5001/é&=+')]),
    ('item.update', [('item_id', '5002'), ('item_revision_id', '3'),
                     ('external_id', 'ext-5002')]),
    ('item.delete', [('item_id', '5003'), ('item_revision_id', '4'),
                     ('external_id', '')]),
    ('comment.create', [('item_id', '5004'), ('comment_id', '7001')]),
    ('comment.delete', [('item_id', '5005'), ('comment_id', '7002')]),
    ('file.change', [('item_id', '5006'), ('action_type', 'file_created'),
                     ('file_ids', '9001,9002,9003')]),
    ('app.create', [('app_id', '3001')]),
    ('app.update', [('app_id', '3002')]),
    ('app.delete', [('app_id', '3003')]),
    ('form.create', [('form_id', '4001'), ('app_id', '3004')]),
    ('form.update', [('form_id', '4002'), ('app_id', '3005')]),
    ('form.delete', [('form_id', '4003'), ('app_id', '3006')]),
    ('tag.add', [('item_id', '5007'), ('target_type', 'item')]),
    ('tag.delete', [('item_id', '5008'), ('target_type', 'item')]),
    ('task.create', [('task_id', '6001')]),
    ('task.update', [('task_id', '6002')]),
    ('task.delete', [('task_id', '6003')]),
    ('member.add', [('space_id', '8001'), ('user_id', '2001')]),
    ('member.remove', [('space_id', '8002'), ('user_id', '2002')]),
    ('contact.create', [('profile_id', '1101')]),
    ('contact.update', [('profile_id', '1102')]),
    ('contact.delete', [('profile_id', '1103')]),
    ('status.create', [('status_id', '1201')]),
    ('status.update', [('status_id', '1202')]),
    ('status.delete', [('status_id', '1203')]),
]

ITEM = [('type', 'item.create'), ('item_id', '42')]


def all_of(*checks):
    """A check made of several: every problem of each."""
    def check(inst, res, during):
        return [p for c in checks for p in c(inst, res, during)]
    return check


def log_lacks(*needles):
    """A check: none of needles appears anywhere in the instance's logs."""
    def check(inst, res, during):
        text = inst.read_logs()
        return ['log contains %r: %s' % (n, line.strip())
                for n in needles for line in text.splitlines() if n in line]
    return check


def log_has(needle):
    """A check: the case logged a podio-hook line containing needle (a
    string, or a function of the instance giving one)."""
    def check(inst, res, during):
        want = needle(inst) if callable(needle) else needle
        for line in during.splitlines():
            if 'podio-hook[' in line and want in line:
                return []
        return ['no podio-hook log line containing %r during the case'
                % want]
    return check


LOG_LINE_RE = re.compile(r'podio-hook\[\d+\]: (error|warn|info|debug): \S.*')
# A C0 control but '\n', DEL, or a C1 control (as decoded from UTF-8).
CONTROL_RE = re.compile('[\x00-\x09\x0b-\x1f\x7f-\x9f]')
# A hook_id that tries to clear a terminal and forge a log line.
CONTROL_HOOK_ID = ('7\x1b[2J\x1b]0;title\x07\r\npodio-hook[1]: error: '
                   'forged\x7f\u009b1m')
SKIPPED_NOT_AN_ID = ("no Podio credentials configured; validate later with "
                     "'podio-hook hook validate HOOK_ID CODE'")


def raw_logs_since(inst, paths):
    """The bytes logged to paths since the case began, undecoded."""
    out = b''
    for path in paths:
        try:
            with open(path, 'rb') as f:
                f.seek(inst.case_mark.get(path, 0))
                out += f.read()
        except OSError:
            pass
    return out


def no_control_bytes(spool_type, detail):
    """A check: no log line of the case holds a control byte, and the
    spooled line's verification.detail is exactly detail."""
    def check(inst, res, during):
        problems = []
        raw = raw_logs_since(inst, inst.logs())
        for line in raw.split(b'\n'):
            text = line.decode('utf-8', 'replace')
            if b'podio-hook[' in line and CONTROL_RE.search(text):
                problems.append('control byte in a log line: %r' % line)
        if b'forged' in raw:
            problems.append('the hook_id, not a Podio id, reached the log: '
                            '%r' % raw)
        path = os.path.join(inst.spool, spool_type + '.jsonl')
        try:
            with open(path, 'rb') as f:
                last = f.read().splitlines()[-1]
            rec = json.loads(last)
            got = rec['verification']['detail']
        except (OSError, IndexError, ValueError, KeyError, TypeError) as e:
            return problems + ['no spooled verification.detail: %s' % e]
        if got != detail:
            problems.append('verification.detail %r, want %r' % (got, detail))
        return problems
    return check


def logged_to_files(needle):
    """A check: the case's podio-hook line holding needle reached a file a
    user reads (the server's error log, lighttpd's breakagelog, podio-hook
    --listen's own log), not only the server's standard error."""
    def check(inst, res, during):
        files = [inst.error_log] + inst.podio_logs()
        raw = raw_logs_since(inst, files).decode('utf-8', 'replace')
        for line in raw.splitlines():
            if 'podio-hook[' in line and needle in line:
                return []
        return ['no podio-hook line containing %r in %s' % (
            needle, ', '.join(files))]
    return check


def log_lines_wellformed(inst, res, during):
    """podio-hook[PID]: LEVEL: message key=value ..., one line, no control
    byte in it."""
    bad = []
    for path in inst.logs():
        try:
            with open(path, 'rb') as f:
                raw = f.read()
        except OSError:
            continue
        for line in raw.split(b'\n'):
            text = line.decode('utf-8', 'replace')
            i = text.find('podio-hook[')
            if i >= 0 and not LOG_LINE_RE.fullmatch(text[i:]):
                bad.append('malformed log line: %r' % line)
            elif i >= 0 and CONTROL_RE.search(text):
                bad.append('control byte in a log line: %r' % line)
    return bad


def build_cases():
    cases = []
    add = cases.append

    # a. one POST of every event type, spooled exactly.
    for etype, extra in EVENTS:
        add(ok_case('200 event %s' % etype,
                    [('type', etype)] + extra + [('hook_id', '1001')]))

    # hook.verify without Podio credentials: spooled as "skipped".
    add(ok_case('200 hook.verify without credentials spools status skipped',
                [('type', 'hook.verify'), ('hook_id', '1001'),
                 ('code', VERIFY_CODE)], verification='skipped'))
    # Values from a request never put a control byte into a log line or
    # into verification.detail; params keep them, JSON-escaped.
    add(ok_case('200 hook.verify with ESC, CR, LF in hook_id: no control '
                'byte in the log or in verification.detail',
                [('type', 'hook.verify'), ('hook_id', CONTROL_HOOK_ID),
                 ('code', VERIFY_CODE)], verification='skipped',
                check=all_of(log_has('hook.verify spooled unvalidated '
                                     'hook_id=? '),
                             no_control_bytes('hook.verify',
                                              SKIPPED_NOT_AN_ID))))
    add(Case('hook.verify code never logged', None,
             check=log_lacks(VERIFY_CODE)))

    # Decoding (SPEC 4): + is space, %XX either case, field without '=',
    # empty fields skipped, '=' inside a value, control characters and
    # multi-byte UTF-8 kept exactly.
    add(Case('200 decoding: + %XX novalue empty fields = in value controls UTF-8',
             200,
             body='type=item.update&&item_id=7&plus=a+b&pct=%2B%26%3D%25'
                  '&hex=%c3%A9%C3%a9&novalue&eq=a=b=c&ctl=%0A%09%1F%7F'
                  '&emoji=%F0%9F%98%80&raw=caf%C3%A9+%E2%82%AC&',
             params=[('type', 'item.update'), ('item_id', '7'),
                     ('plus', 'a b'), ('pct', '+&=%'), ('hex', 'éé'),
                     ('novalue', ''), ('eq', 'a=b=c'),
                     ('ctl', '\n\t\x1f\x7f'), ('emoji', '\U0001F600'),
                     ('raw', 'café €')]))
    add(ok_case('200 type only in the query string',
                [('item_id', '43')], query_pairs=[('type', 'item.create')]))
    add(ok_case('200 query params first, then body params',
                [('type', 'task.create'), ('task_id', '6010')],
                query_pairs=[('hook_id', '1002'), ('source', 'crm')]))

    # b. the status table, row by row.
    add(Case('405 GET, Allow: POST, logged to the file a user reads', 405,
             method='GET', query=form(ITEM), ctype=None,
             check=logged_to_files('warn: rejected status=405 ')))
    add(Case('405 PUT with a valid body, Allow: POST', 405, method='PUT',
             body=form(ITEM)))

    add(Case('411 POST without Content-Length', 411, body=None,
             server_may_answer=True))

    add(bad_case('413 body of max_body+1 bytes', 413,
                 padded(ITEM, MAX_BODY + 1)))
    add(Case('200 body of exactly max_body bytes', 200,
             body=padded(ITEM, MAX_BODY),
             params=ITEM + [('pad', 'x' * (MAX_BODY - len(form(ITEM)) - 5))]))

    add(bad_case('415 Content-Type text/plain', 415, form(ITEM),
                 ctype='text/plain'))
    add(bad_case('415 no Content-Type', 415, form(ITEM), ctype=None))
    add(bad_case('415 Content-Type multipart/form-data', 415, form(ITEM),
                 ctype='multipart/form-data; boundary=x'))
    add(bad_case('415 Content-Type application/x-www-form-urlencodedx', 415,
                 form(ITEM), ctype=FORM + 'x'))
    add(ok_case('200 Content-Type with charset=UTF-8', ITEM,
                ctype=FORM + '; charset=UTF-8'))
    add(ok_case('200 Content-Type upper case', ITEM, ctype=FORM.upper()))

    for name, body in [
            ('bad escape %zz', 'type=item.create&item_id=%zz'),
            ('bad escape %zz in a key', 'type=item.create&it%zzem=1'),
            ('truncated escape %4 at the end', 'type=item.create&item_id=%4'),
            ('truncated escape % at the end', 'type=item.create&item_id=%'),
            ('NUL %00', 'type=item.create&item_id=1%002'),
            ('invalid UTF-8 %ff', 'type=item.create&item_id=%ff'),
            ('overlong UTF-8 %c0%af', 'type=item.create&item_id=%c0%af'),
            ('UTF-16 surrogate %ed%a0%80', 'type=item.create&item_id=%ed%a0%80'),
            ('truncated UTF-8 %e2%82', 'type=item.create&item_id=%e2%82'),
            ('empty key =x', 'type=item.create&=x'),
            ('duplicate key in the body', 'type=item.create&item_id=1&item_id=2'),
            ('duplicate key in the body, same value',
             'type=item.create&item_id=1&item_id=1'),
            ('missing type', 'item_id=1&hook_id=1001'),
            ('empty type', 'type=&item_id=1'),
            ('malformed type Item.create', 'type=Item.create&item_id=1'),
            ('malformed type item (no dot)', 'type=item&item_id=1'),
            ('malformed type item..x', 'type=item..x&item_id=1'),
            ('malformed type item.create. (trailing dot)',
             'type=item.create.&item_id=1'),
            ('malformed type ../x.y', 'type=..%2Fx.y&item_id=1'),
            ('malformed type of 65 characters',
             'type=%s&item_id=1' % long_type(65)),
            ('hook.verify without code', 'type=hook.verify&hook_id=1001'),
            ('hook.verify without hook_id', 'type=hook.verify&code=abc'),
    ]:
        add(bad_case('400 ' + name, 400, body))
    # lighttpd (url-normalize-required, on by default) rewrites a stray '%'
    # in the URL as %25 before any backend sees it.
    add(Case('400 bad escape %zz in the query string', 400,
             query='x=%zz', body=form(ITEM),
             overrides={'lighttpd': dict(
                 name='200 bad escape %zz in the query string (lighttpd '
                      'passes it on as %25zz)',
                 status=200, params=[('x', '%zz')] + ITEM,
                 spool_type='item.create')}))
    add(Case('400 key in query and body with different values', 400,
             query='item_id=1', body='type=item.create&item_id=2'))
    add(Case('200 key in query and body with the same value kept once at '
             'its query position', 200,
             query='item_id=44', body='type=item.create&hook_id=1001&item_id=44',
             params=[('item_id', '44'), ('type', 'item.create'),
                     ('hook_id', '1001')]))
    fields64 = [('type', 'item.create')] + [('f%02d' % i, str(i))
                                            for i in range(1, 64)]
    add(ok_case('200 64 fields', fields64))
    add(Case('400 empty body (Content-Length: 0)', 400, body=''))
    add(bad_case('400 65 fields', 400,
                 form(fields64 + [('f64', '64')])))
    add(Case('400 65 fields across query (32) and body (33)', 400,
             query=form(fields64[1:33]),
             body=form(fields64[:1] + fields64[33:] + [('f64', '64')])))
    add(ok_case('200 type of 64 characters (unknown, accepted)',
                [('type', long_type(64)), ('item_id', '1')]))
    add(ok_case('200 unknown well-formed type foo.bar with unknown_types=accept',
                [('type', 'foo.bar'), ('x', '1')]))

    # 403 secret (the "secret" instance).
    s = dict(variant='secret')
    add(Case('405 GET with secret configured', 405, method='GET', ctype=None,
             query='secret=' + SECRET, **s))
    add(bad_case('403 no secret', 403, form(ITEM), **s))
    add(Case('403 wrong secret in the query', 403, query='secret=wrong-one',
             body=form(ITEM), **s))
    add(bad_case('403 wrong secret in the body', 403,
                 form(ITEM + [('secret', 'wrong-two')]), **s))
    add(Case('403 secret prefix in the query', 403,
             query='secret=' + SECRET[:-1], body=form(ITEM), **s))
    add(Case('403 secret with a suffix in the query', 403,
             query='secret=' + SECRET + 'x', body=form(ITEM), **s))
    add(bad_case('403 empty secret in the body', 403,
                 form(ITEM + [('secret', '')]), **s))
    add(ok_case('200 correct secret in the query, not spooled',
                ITEM, query_pairs=[('secret', SECRET)], **s))
    add(ok_case('200 correct secret in the body, not spooled',
                [('type', 'item.update'), ('secret', SECRET),
                 ('item_id', '45')], **s))
    add(ok_case('200 secret parameter without a configured secret, '
                'not spooled', [('type', 'item.update'), ('secret', 'abc'),
                                ('item_id', '46')]))
    add(Case('secret never logged', None,
             check=log_lacks(SECRET, 'wrong-one', 'wrong-two'), **s))

    # 403 allowed_hooks (the "allowed" instance).
    a = dict(variant='allowed')
    add(bad_case('403 allowed_hooks set, hook_id missing', 403,
                 form(ITEM), **a))
    add(bad_case('403 allowed_hooks set, hook_id not listed', 403,
                 form(ITEM + [('hook_id', '1003')]), **a))
    add(bad_case('403 allowed_hooks set, hook_id a prefix of a listed one',
                 403, form(ITEM + [('hook_id', '100')]), **a))
    add(ok_case('200 allowed_hooks set, hook_id listed',
                ITEM + [('hook_id', ALLOWED[1])], **a))

    # unknown_types = reject (the "reject" instance).
    r = dict(variant='reject')
    add(bad_case('400 unknown type foo.bar with unknown_types=reject', 400,
                 'type=foo.bar&x=1', **r))
    add(ok_case('200 known type with unknown_types=reject', ITEM, **r))

    # 503: the event cannot be spooled.
    add(bad_case('503 spool directory not writable, nothing left behind', 503,
                 form(ITEM), variant='readonly'))
    add(bad_case('503 spool directory missing', 503, form(ITEM),
                 variant='nospool'))
    add(bad_case('503 spool file not writable, file unchanged', 503,
                 form([('type', LOCKED_TYPE), ('x', '1')])))

    # 500: no usable configuration.
    add(bad_case('500 PODIO_HOOK_CONFIG names a missing file, logged', 500,
                 form(ITEM), variant='noconfig',
                 check=log_has(lambda inst: inst.config),
                 overrides={'apache-htaccess': dict(
                     name='500 no podio-hook.ini beside the binary and no '
                          '%s, logged with the paths tried' % ETC_CONFIG,
                     check=all_of(log_has(lambda inst: inst.config),
                                  log_has(ETC_CONFIG)))}))
    add(bad_case('500 config with an unknown key, logged', 500, form(ITEM),
                 variant='badconfig', check=log_has('no_such_key')))
    add(Case('500 before 405: GET with the config missing', 500,
             method='GET', ctype=None, variant='noconfig'))

    # SPEC 9, over everything each instance logged.
    for v in VARIANTS:
        if v in podio_verify.VARIANTS:
            continue    # checked after podio_verify's cases, in run_setup
        add(Case('log lines are "podio-hook[PID]: LEVEL: message" (%s)' % v,
                 None, variant=v, check=log_lines_wellformed))
    return cases


class PathCase:
    """A request to another URL of a setup's server: what the server
    itself must answer, without podio-hook ever seeing it.

    status: the acceptable statuses; lacks: byte strings the body must not
    hold; prepare(inst) -> problems runs first (creates the file asked for).
    The spool must not change and podio-hook must log nothing.
    """

    def __init__(self, name, path, status, method='GET', body=None,
                 lacks=(), prepare=None, variant='main'):
        self.name = name
        self.path = path
        self.status = status
        self.method = method
        self.body = body
        self.ctype = FORM if body is not None else None
        self.query = ''
        self.lacks = lacks
        self.prepare = prepare
        self.variant = variant


def put_file(rel, content, mode=0o644, run_user=False):
    """prepare: writes docroot/rel (as a host would hold it)."""
    def prepare(inst):
        path = os.path.join(inst.docroot, rel)
        with open(path, 'wb') as f:
            f.write(content)
        if run_user:
            harness.chown_run(path, mode)
        else:
            os.chmod(path, mode)
        return []
    return prepare


def spooled_file(rel):
    """prepare: docroot/rel must be a spool file the cases above wrote."""
    def prepare(inst):
        path = os.path.join(inst.docroot, rel)
        try:
            with open(path, 'rb') as f:
                if b'"params"' in f.read():
                    return []
        except OSError as e:
            return ['precondition: %s unreadable: %s' % (path, e)]
        return ['precondition: %s holds no event' % path]
    return prepare


def setup_cases(setup):
    """Cases of one setup alone, run after the table and the bulk run."""
    cases = []
    event = form(ITEM + [('hook_id', '1001')])
    if setup != 'apache-htaccess':
        # The snippets claim exactly /hook; mod_alias's ScriptAlias and
        # Alias (apache-cgi, apache-fcgid) also run it for /hook/anything
        # (as PATH_INFO), which is harmless and not tested here.
        paths = ['/hookfoo']
        if setup.startswith('lighttpd') or setup in LISTEN_SETUPS:
            paths += ['/hook/', '/hook/x', '/hook.x']
        for path in paths:
            cases.append(PathCase('POST %s does not reach podio-hook' % path,
                                  path, (403, 404), method='POST',
                                  body=event))
        return cases
    # apache-htaccess: what the .htaccess must keep from being served.  The
    # server config lets the folder be served and listed; podio-hook.ini,
    # the spool (in the web folder for the main instance) and dotfiles are
    # readable by the server's user, so only the .htaccess stands between
    # them and the web.
    d = 'cgi-bin/'
    cases += [
        PathCase('GET a plain file in the folder is served (control)',
                 '/%sreadme.txt' % d, (200,),
                 prepare=put_file(d + 'readme.txt', b'served\n')),
        PathCase('GET /cgi-bin/podio-hook.ini 403, config not served',
                 '/%spodio-hook.ini' % d, (403,),
                 lacks=(b'[spool]', b'dir =', b'max_body')),
        PathCase('GET /cgi-bin/podio-hook.ini~ (editor backup) 403',
                 '/%spodio-hook.ini~' % d, (403,), lacks=(b'[spool]',),
                 prepare=put_file(d + 'podio-hook.ini~',
                                  b'[spool]\ndir = backup\n')),
        PathCase('GET /cgi-bin/.htaccess 403', '/%s.htaccess' % d, (403,),
                 lacks=(b'FilesMatch', b'ExecCGI')),
        PathCase('GET /cgi-bin/.env (a dotfile) 403', '/%s.env' % d, (403,),
                 lacks=(b'DOTFILE_CONTENT',),
                 prepare=put_file(d + '.env', b'DOTFILE_CONTENT=1\n')),
        PathCase('GET /cgi-bin/ 403, no listing', '/' + d, (403,),
                 lacks=(b'podio-hook', b'readme')),
        PathCase('GET /cgi-bin/spool/item.create.jsonl (spool in the web '
                 'folder) 403, no event served',
                 '/%sspool/item.create.jsonl' % d, (403,),
                 lacks=(b'"params"', b'item.create'),
                 prepare=spooled_file(d + 'spool/item.create.jsonl')),
        PathCase('GET a claimed spool file *.jsonl.claim-* 403',
                 '/%sspool/item.update.jsonl.claim-1-2' % d, (403,),
                 lacks=(b'"params"',),
                 prepare=put_file(d + 'spool/item.update.jsonl.claim-1-2',
                                  b'{"params":{}}\n', 0o640, True)),
        PathCase('GET the token cache spool/.podio-token 403',
                 '/%sspool/.podio-token' % d, (403,), lacks=(b'TOKEN',),
                 prepare=put_file(d + 'spool/.podio-token', b'TOKEN\n',
                                  0o600, True)),
        PathCase('GET /cgi-bin/spool/ 403, no listing', '/%sspool/' % d,
                 (403,), lacks=(b'jsonl',)),
        PathCase('POST /cgi-bin/podio-hook.ini does not run or serve '
                 'anything', '/%spodio-hook.ini' % d, (403,), method='POST',
                 body=event, lacks=(b'[spool]',)),
    ]
    return cases


def padded(pairs, size):
    """form(pairs) plus '&pad=xxx…' making the body exactly size bytes."""
    head = form(pairs) + '&pad='
    return head + 'x' * (size - len(head))


def long_type(n):
    """A well-formed type of n characters: item.xxxx…"""
    return 'item.' + 'x' * (n - 5)


# A type whose spool file the harness makes unwritable in the main instance.
LOCKED_TYPE = 'locked.type'
LOCKED_CONTENT = b'{"id":"pre-existing"}\n'


# Receiver configurations: one server instance each.
VARIANTS = {
    'main': {'receiver': {'max_body': str(MAX_BODY)}},
    'secret': {'receiver': {'max_body': str(MAX_BODY), 'secret': SECRET}},
    'allowed': {'receiver': {'allowed_hooks': ','.join(ALLOWED)}},
    'reject': {'receiver': {'unknown_types': 'reject'}},
    'readonly': {'spool': 'readonly'},
    'nospool': {'spool': 'missing'},
    'noconfig': {'config': 'missing'},
    'badconfig': {'extra': '[receiver]\nno_such_key = 1\n'},
    # [podio] credentials for the setup's fake Podio (podio_verify.py).
    'podio': {'podio': True},
    'podio-hang': {'podio': True},
}


# --------------------------------------------------------------------------
# Running the servers

class Instance:
    """One web server with one receiver configuration."""

    def __init__(self, h, setup, variant):
        self.h = h
        self.setup = setup
        self.variant = variant
        self.dir = os.path.join(h.tmp, setup, variant)
        self.run = os.path.join(self.dir, 'run')
        self.spool = os.path.join(self.dir, 'spool')
        self.docroot = os.path.join(self.dir, 'docroot')
        self.error_log = os.path.join(self.run, 'error.log')
        self.proc = None
        self.port = None
        self.pid_file = None
        self.stderr_path = os.path.join(self.dir, 'server.stderr')
        # LISTEN_SETUPS: the `podio-hook --listen` process, its socket
        # (a path, or 127.0.0.1:port for nginx) and its standard error (its
        # log: the server never sees it).
        self.backend = None
        self.socket = os.path.join(self.run, 'podio-hook.sock')
        self.backend_port = None
        if setup == 'nginx-fastcgi':
            self.backend_port = harness.free_port()
        self.backend_log = os.path.join(self.dir, 'podio-hook.stderr')
        # lighttpd: the server.breakagelog the snippet sets.
        self.breakage_log = os.path.join(self.run, 'breakage.log')
        self.hook_path = HOOK_PATH.get(setup, '/hook')
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        os.mkdir(self.run)
        harness.chown_run(self.run, 0o755)
        os.mkdir(self.docroot, 0o755)
        os.chmod(self.docroot, 0o755)
        # Where the config goes; apache-htaccess: beside the binary.
        self.config_dir = self.dir
        self.spool_in_config = None
        if setup == 'apache-htaccess':
            self.setup_htaccess_folder()
        self.config = self.write_config(VARIANTS[variant])

    def setup_htaccess_folder(self):
        """docroot/cgi-bin/ as a user uploads it: the binary as
        podio-hook.cgi and the repository's .htaccess, unchanged.  The main
        instance keeps its spool in the web folder too ("dir = spool",
        relative to the config), so that the .htaccess must guard it."""
        self.cgi_dir = os.path.join(self.docroot, 'cgi-bin')
        os.mkdir(self.cgi_dir)
        os.chmod(self.cgi_dir, 0o755)
        exe = os.path.join(self.cgi_dir, 'podio-hook.cgi')
        shutil.copy(self.h.bin, exe)
        os.chmod(exe, 0o755)
        self.h.bins.append(exe)
        shutil.copy(os.path.join(REPO, 'cgi-bin', '.htaccess'),
                    os.path.join(self.cgi_dir, '.htaccess'))
        os.chmod(os.path.join(self.cgi_dir, '.htaccess'), 0o644)
        self.config_dir = self.cgi_dir
        if self.variant == 'main':
            self.spool = os.path.join(self.cgi_dir, 'spool')
            self.spool_in_config = 'spool'

    def write_config(self, v):
        if v.get('config') == 'missing':
            os.mkdir(self.spool)
            harness.chown_run(self.spool, 0o755)
            if self.setup == 'apache-htaccess':
                # Nothing beside the binary (and no ETC_CONFIG).
                return os.path.join(self.config_dir, 'podio-hook.ini')
            return os.path.join(self.dir, 'does-not-exist.ini')
        if v.get('spool') == 'missing':
            self.spool = os.path.join(self.dir, 'no-such-spool')
        elif v.get('spool') == 'readonly':
            # Owned by the harness, not by the server's user; for a
            # non-root harness the mode alone forbids writing.
            os.mkdir(self.spool)
            os.chmod(self.spool, 0o555)
        else:
            os.mkdir(self.spool)
            harness.chown_run(self.spool, 0o755)
        if self.variant == 'main':
            locked = os.path.join(self.spool, LOCKED_TYPE + '.jsonl')
            with open(locked, 'wb') as f:
                f.write(LOCKED_CONTENT)
            os.chmod(locked, 0o444)
        text = ('[spool]\ndir = %s\nsync = yes\nfile_mode = 0640\n\n'
                % (self.spool_in_config or self.spool))
        recv = v.get('receiver', {})
        if recv:
            text += '[receiver]\n' + ''.join(
                '%s = %s\n' % kv for kv in recv.items()) + '\n'
        if v.get('podio'):
            text += self.h.podio.config_text()
        text += '[log]\nlevel = debug\n'
        text += v.get('extra', '')
        path = os.path.join(self.config_dir, 'podio-hook.ini')
        with open(path, 'w') as f:
            f.write(text)
        harness.give_config(path)
        return path

    # -- server configs ----------------------------------------------------

    def lighttpd_conf(self):
        kind = 'fastcgi' if self.setup == 'lighttpd-fastcgi' else 'cgi'
        src = os.path.join(REPO, 'lighttpd', 'podio-hook-%s.conf' % kind)
        values = {'bin': self.h.bin, 'config': self.config,
                  'log': self.breakage_log}
        if kind == 'fastcgi':
            values['socket'] = os.path.join(self.run, 'podio-hook.sock')
        self.pid_file = os.path.join(self.run, 'lighttpd.pid')
        path = harness.write_lighttpd_conf(
            self.dir, src, values, self.docroot, self.port, self.pid_file,
            self.error_log, harness.run_ids() is not None)
        return ['lighttpd', '-D', '-f', path]

    def apache_conf(self):
        kind = {'apache-fcgid': 'fcgid', 'apache-cgi': 'cgi',
                'apache-proxy-fcgi': 'proxy-fcgi',
                'apache-htaccess': 'htaccess'}[self.setup]
        self.pid_file = os.path.join(self.run, 'httpd.pid')
        # Only the modules each snippet needs, so that a missing one shows.
        mods = ['mpm_event', 'authz_core', 'mime'] + {
            'cgi': ['alias', 'env', 'cgid'],
            'fcgid': ['alias', 'env', 'fcgid'],
            'proxy-fcgi': ['proxy', 'proxy_fcgi', 'alias'],
            # mod_dir and mod_autoindex as on a typical host, so that the
            # .htaccess's "-Indexes" has something to turn off.
            'htaccess': ['cgid', 'dir', 'autoindex'],
        }[kind]
        lines = ['ServerRoot "%s"' % self.dir]
        lines += ['LoadModule %s_module %s/mod_%s.so' % (m, APACHE_MODULES, m)
                  for m in mods]
        lines += [
            'ServerName 127.0.0.1',
            'Listen 127.0.0.1:%d' % self.port,
            'PidFile "%s"' % self.pid_file,
            'ErrorLog "%s"' % self.error_log,
            'LogLevel warn',
            'DefaultRuntimeDir "%s"' % self.run,
            # flock, not fcntl ("file"): with threads, fcntl's deadlock
            # detection makes mod_fcgid's two mutexes fail now and then
            # ("can't lock process table": EDEADLK, the request lost).
            'Mutex flock:%s default' % self.run,
            'TypesConfig /etc/mime.types',
            'DocumentRoot "%s"' % self.docroot,
            '<Directory />',
            '    AllowOverride None',
            '    Require all denied',
            '</Directory>',
        ]
        if harness.run_ids() is not None:
            lines += ['User %s' % RUN_USER, 'Group %s' % RUN_USER]
        if kind == 'fcgid':
            lines += ['FcgidIPCDir "%s"' % os.path.join(self.run, 'fcgid'),
                      'FcgidProcessTableFile "%s"'
                      % os.path.join(self.run, 'fcgid_shm')]
        elif kind in ('cgi', 'htaccess'):
            lines.append('ScriptSock "%s"' % os.path.join(self.run, 'cgid.sock'))
        if kind == 'htaccess':
            # A shared host's web space: served, listed, no CGI until the
            # .htaccess asks, and exactly the AllowOverride classes the
            # .htaccess says it needs.  Deliberately no server-wide
            # "<Files .ht*> Require all denied" (Debian's apache2.conf has
            # one): the .htaccess must protect itself.
            lines += [
                '<Directory "%s">' % self.docroot,
                '    Options Indexes FollowSymLinks',
                '    AllowOverride Options=ExecCGI,Indexes FileInfo AuthConfig',
                '    Require all granted',
                '</Directory>',
            ]
        elif kind == 'proxy-fcgi':
            lines += ['Define PODIO_HOOK_SOCKET "%s"' % self.socket,
                      'Include "%s"' % os.path.join(
                          REPO, 'apache', 'podio-hook-proxy-fcgi.conf')]
        else:
            lines += ['Define PODIO_HOOK_BIN "%s"' % self.h.bin,
                      'Define PODIO_HOOK_CONFIG "%s"' % self.config,
                      'Include "%s"' % os.path.join(
                          REPO, 'apache', 'podio-hook-%s.conf' % kind)]
        path = os.path.join(self.dir, 'httpd.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return ['apache2', '-f', path, '-DFOREGROUND']

    def nginx_conf(self):
        self.pid_file = os.path.join(self.run, 'nginx.pid')
        path = harness.write_nginx_conf(
            self.dir, os.path.join(REPO, 'nginx', 'podio-hook.conf'),
            self.listen_spec(), self.port, self.pid_file, self.error_log,
            harness.run_ids() is not None)
        return harness.nginx_argv(self.dir, path, self.error_log)

    def listen_spec(self):
        if self.backend_port is not None:
            return '127.0.0.1:%d' % self.backend_port
        return self.socket

    def start_backend(self):
        """LISTEN_SETUPS: podio-hook --listen on the run directory's socket
        (or its TCP port), as the server's user (so that Apache's children
        may connect to the socket it creates), the config named by
        PODIO_HOOK_CONFIG."""
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C',
               'PODIO_HOOK_CONFIG': self.config}
        kw = harness.run_as(harness.run_ids())
        with open(self.backend_log, 'ab') as err:
            self.backend = subprocess.Popen(
                [self.h.bin, '--listen', self.listen_spec()], cwd='/',
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                start_new_session=True, **kw)

    def wait_backend(self, timeout=15):
        """Waits until podio-hook --listen accepts connections on its
        socket (a stale socket file from an earlier run may be there)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.backend.poll() is not None:
                raise RuntimeError('podio-hook --listen %s exited with status '
                                   '%s before listening'
                                   % (self.listen_spec(),
                                      self.backend.returncode))
            try:
                if self.backend_port is not None:
                    socket.create_connection(
                        ('127.0.0.1', self.backend_port), 1).close()
                else:
                    with socket.socket(socket.AF_UNIX,
                                       socket.SOCK_STREAM) as c:
                        c.connect(self.socket)
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError('podio-hook --listen %s did not listen '
                                   'within %d s' % (self.listen_spec(),
                                                    timeout))
            time.sleep(0.02)

    def stop_backend(self, timeout=10):
        """SIGTERM to podio-hook --listen by its pid; it must exit 0."""
        if self.backend is None:
            return []
        if self.backend.poll() is None:
            os.kill(self.backend.pid, signal.SIGTERM)
        try:
            rc = self.backend.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.backend.pid, signal.SIGKILL)
            self.backend.wait()
            return ['podio-hook --listen (pid %d) ignored SIGTERM for %d s; '
                    'killed' % (self.backend.pid, timeout)]
        if rc != 0:
            return ['podio-hook --listen (pid %d) exited with status %d '
                    'after SIGTERM, want 0' % (self.backend.pid, rc)]
        return []

    # -- start / stop ------------------------------------------------------

    def start(self):
        """Starts the server; wait_ready() tells when it answers."""
        self.port = harness.free_port()
        if self.setup in LISTEN_SETUPS:
            self.start_backend()
        if self.setup.startswith('lighttpd'):
            argv = self.lighttpd_conf()
        elif self.setup.startswith('nginx'):
            argv = self.nginx_conf()
        else:
            argv = self.apache_conf()
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C'}
        with open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, env=env,
                                         start_new_session=True)

    def wait_ready(self, timeout=15):
        """Waits until the server answers HTTP; raises with its logs if not."""
        deadline = time.monotonic() + timeout
        if self.backend is not None:
            self.wait_backend(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited with status %s before answering'
                                   % (self.describe(), self.proc.returncode))
            code = harness.http_code('http://127.0.0.1:%d/ready' % self.port)
            if code.strip() not in ('', '000'):
                return
            time.sleep(0.05)
        raise RuntimeError('%s did not answer within %d s'
                           % (self.describe(), timeout))

    def describe(self):
        return '%s (%s instance, port %s)' % (self.setup, self.variant,
                                              self.port)

    def stop(self):
        """Stops the server, then podio-hook --listen, each by its own pid;
        returns problems found."""
        problems = self.stop_server()
        return problems + self.stop_backend()

    def stop_server(self):
        problems = []
        if self.proc is None or self.proc.poll() is not None:
            return problems
        pid = self.proc.pid
        try:
            with open(self.pid_file) as f:
                written = int(f.read().strip())
            if written != pid:
                problems.append('pid file says %d, server is %d'
                                % (written, pid))
        except (OSError, ValueError) as e:
            problems.append('no usable pid file %s: %s' % (self.pid_file, e))
        if harness.terminate(self.proc, 15):
            problems.append('server %d ignored SIGTERM for 15 s; killed' % pid)
        return problems

    def logs(self):
        """The server's error log, then its own stderr, then the file
        podio-hook's lines go to: lighttpd's server.breakagelog, or
        podio-hook --listen's own stderr."""
        logs = [self.error_log, self.stderr_path] + self.podio_logs()
        return logs

    def podio_logs(self):
        """Where the shipped config sends podio-hook's lines, besides the
        server's error log (Apache's ErrorLog gets its programs' stderr)."""
        if self.setup.startswith('lighttpd'):
            return [self.breakage_log]
        if self.setup in LISTEN_SETUPS:
            return [self.backend_log]
        return []

    def log_mark(self):
        return harness.log_mark(self.logs())

    def read_logs(self, mark=None):
        """Everything logged (since mark), file by file."""
        return harness.read_logs(self.logs(), mark)

    def url(self, query='', path=None):
        return 'http://127.0.0.1:%d%s%s' % (
            self.port, self.hook_path if path is None else path,
            '?' + query if query else '')


# --------------------------------------------------------------------------
# Requests and checks

class Result:
    def __init__(self, status, headers, body):
        self.curl_error = None
        self.status = status
        self.headers = headers  # list of (lower-case name, value)
        self.body = body

    def header(self, name):
        vals = [v for k, v in self.headers if k == name]
        return vals

    def show(self):
        hdrs = '; '.join('%s: %s' % kv for kv in self.headers
                         if kv[0] not in ('date', 'server'))
        return 'status %s, headers [%s], body %r%s' % (
            self.status, hdrs, self.body[:300],
            ', ' + self.curl_error if self.curl_error else '')


def dechunk(head, body):
    """The body of a raw HTTP/1.1 answer, chunked or not."""
    if b'transfer-encoding: chunked' not in head.lower():
        return body
    out = b''
    while True:
        size, _, rest = body.partition(b'\r\n')
        try:
            n = int(size.split(b';')[0], 16)
        except ValueError:
            return None
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


def parse_headers(raw):
    """The last response's header block (curl -D), as (name, value) pairs."""
    text = raw.decode('latin-1').replace('\r\n', '\n')
    blocks = [b for b in text.split('\n\n') if b.startswith('HTTP/')]
    if not blocks:
        return []
    out = []
    for line in blocks[-1].split('\n')[1:]:
        if ':' in line:
            k, v = line.split(':', 1)
            out.append((k.strip().lower(), v.strip()))
    return out


class Harness:
    def __init__(self, binary, rep):
        self.tmp = tempfile.mkdtemp(prefix='podio-hook-it-')
        os.chmod(self.tmp, 0o755)
        self.bin = harness.copy_binary(binary, self.tmp)
        # Every copy of the binary a server may run (leftovers() looks for
        # processes of each): apache-htaccess puts one in each docroot.
        self.bins = [self.bin]
        self.work = os.path.join(self.tmp, 'work')
        os.mkdir(self.work, 0o700)
        self.rep = rep
        self.seq = 0

    # -- reporting (tests/lib/harness.py's Report) -------------------------

    def ok(self, setup, name):
        self.rep.ok('%s: %s' % (setup, name))

    def skip(self, setup, name, why):
        """Not run, not counted as passed."""
        self.rep.skip('%s: %s' % (setup, name), why)

    def fail(self, setup, name, why, evidence=(), inst=None, log_mark=None):
        lines = list(evidence)
        if inst is not None:
            logged = []
            if log_mark is not None:
                logged = inst.read_logs(log_mark).splitlines()
                label = 'server logs during the case'
            if not logged:
                logged = inst.read_logs().splitlines()[-15:]
                label = 'server logs, tail'
            lines.append('%s (%s):' % (label, ', '.join(inst.logs())))
            lines += ['  ' + line for line in logged[-25:]]
        self.rep.fail('%s: %s' % (setup, name), why, lines)

    # -- one request -------------------------------------------------------

    def curl(self, inst, case, base=None):
        """One request with the curl binary.  base: the path prefix of its
        files (for a request made from another thread), else the next
        req%05d."""
        if base is None:
            self.seq += 1
            base = os.path.join(self.work, 'req%05d' % self.seq)
        argv = ['curl', '-sS', '--max-time', '30', '--path-as-is',
                '-o', base + '.body', '-D', base + '.head',
                '-w', '%{http_code}', '-H', 'Expect:']
        if case.body is not None:
            with open(base + '.req', 'wb') as f:
                f.write(case.body.encode('utf-8'))
            argv += ['--data-binary', '@' + base + '.req']
            if case.method != 'POST':
                argv += ['-X', case.method]
        elif case.method != 'GET':
            argv += ['-X', case.method]
        # curl adds application/x-www-form-urlencoded with a body; an
        # empty header value removes it.
        argv += ['-H', 'Content-Type: ' + case.ctype if case.ctype is not None
                 else 'Content-Type:']
        argv.append(inst.url(case.query, getattr(case, 'path', None)))
        r = subprocess.run(argv, capture_output=True, text=True)
        headers, body = [], b''
        if os.path.exists(base + '.head'):
            with open(base + '.head', 'rb') as f:
                headers = parse_headers(f.read())
        if os.path.exists(base + '.body'):
            with open(base + '.body', 'rb') as f:
                body = f.read()
        res = Result(int(r.stdout.strip() or 0), headers, body)
        if r.returncode != 0:
            res.curl_error = 'curl exit %d: %s' % (r.returncode,
                                                   r.stderr.strip())
        return res

    # -- the spool ---------------------------------------------------------

    @staticmethod
    def snapshot(spool):
        """{relative path: (mode, bytes)} of every file under spool."""
        snap = {}
        for root, dirs, files in os.walk(spool):
            for name in dirs:
                snap[os.path.relpath(os.path.join(root, name), spool) + '/'] = (
                    None, b'')
            for name in files:
                p = os.path.join(root, name)
                st = os.lstat(p)
                with open(p, 'rb') as f:
                    snap[os.path.relpath(p, spool)] = (st.st_mode & 0o7777,
                                                       f.read())
        return snap

    @staticmethod
    def diff_snapshots(before, after):
        out = []
        for k in sorted(set(before) | set(after)):
            if k not in before:
                out.append('new file %s: %r' % (k, after[k][1][:200]))
            elif k not in after:
                out.append('file %s removed' % k)
            elif before[k] != after[k]:
                b, a = before[k], after[k]
                out.append('file %s changed: mode %o->%o, %d->%d bytes, '
                           'new tail %r' % (k, b[0] or 0, a[0] or 0,
                                            len(b[1]), len(a[1]),
                                            a[1][len(b[1]):][:200]))
        return out

    def check_line(self, line, case, t0, t1):
        """Problems with one spooled line against the case's expectation."""
        problems = []
        if not line.endswith(b'\n'):
            problems.append('line does not end in \\n: %r' % line)
        body = line[:-1]
        if b'\n' in body:
            problems.append('more than one line appended: %r' % line)
            return problems
        if any(c < 0x20 for c in body):
            problems.append('raw control character in the line: %r' % line)
        try:
            pairs = json.loads(body.decode('utf-8'),
                               object_pairs_hook=lambda p: p)
        except (UnicodeDecodeError, ValueError) as e:
            return problems + ['line is not valid JSON (%s): %r' % (e, line)]
        if not isinstance(pairs, list):
            return problems + ['line is not a JSON object: %r' % line]
        keys = [k for k, _ in pairs]
        want_keys = ['id', 'received', 'type', 'remote_addr', 'params']
        if case.verification is not None:
            want_keys.append('verification')
        if keys != want_keys:
            problems.append('keys %s, want %s' % (keys, want_keys))
        rec = dict(pairs)
        rid = rec.get('id')
        if not isinstance(rid, str) or rid == '':
            problems.append('id %r is not a non-empty string' % (rid,))
        received = rec.get('received')
        if not isinstance(received, str) or not RECEIVED_RE.match(received):
            problems.append('received %r is not RFC 3339 UTC with '
                            'microseconds' % (received,))
        else:
            when = datetime.strptime(received, '%Y-%m-%dT%H:%M:%S.%fZ'
                                     ).replace(tzinfo=timezone.utc)
            if not (t0 - timedelta(seconds=2) <= when
                    <= t1 + timedelta(seconds=2)):
                problems.append('received %s is not the time of the request '
                                '(%s .. %s)' % (received, t0.isoformat(),
                                                t1.isoformat()))
        if rec.get('type') != case.spool_type:
            problems.append('type %r, want %r' % (rec.get('type'),
                                                  case.spool_type))
        if rec.get('remote_addr') != '127.0.0.1':
            problems.append('remote_addr %r, want "127.0.0.1"'
                            % (rec.get('remote_addr'),))
        params = rec.get('params')
        want = [list(p) for p in case.params]
        if not isinstance(params, list) or \
                [list(p) for p in params] != want:
            problems.append('params %s, want %s'
                            % (json.dumps(params, ensure_ascii=False),
                               json.dumps(want, ensure_ascii=False)))
        if case.verification is not None:
            v = rec.get('verification')
            if not isinstance(v, list) or [k for k, _ in v] != ['status',
                                                                 'detail']:
                problems.append('verification %r, want keys [status, detail]'
                                % (v,))
            else:
                vd = dict(v)
                if vd['status'] != case.verification:
                    problems.append('verification status %r, want %r'
                                    % (vd['status'], case.verification))
                if not isinstance(vd['detail'], str):
                    problems.append('verification detail %r is not a string'
                                    % (vd['detail'],))
        return problems

    def check_answer(self, case, res):
        problems = []
        if res.curl_error is not None:
            problems.append('broken answer (%s)' % res.curl_error)
        if res.status != case.status:
            problems.append('status %d, want %d' % (res.status, case.status))
            return problems
        if case.server_may_answer:
            return problems
        ct = res.header('content-type')
        if ct != ['text/plain']:
            problems.append('Content-Type %s, want exactly [text/plain]' % ct)
        cc = res.header('cache-control')
        if cc != ['no-store']:
            problems.append('Cache-Control %s, want exactly [no-store]' % cc)
        if case.status == 200:
            if res.body != b'OK\n':
                problems.append('body %r, want %r' % (res.body, b'OK\n'))
        elif not re.fullmatch(rb'[^\n]+\n', res.body):
            problems.append('body %r is not one line' % res.body)
        if case.status == 405 and res.header('allow') != ['POST']:
            problems.append('Allow %s, want exactly [POST]'
                            % res.header('allow'))
        return problems

    def run_case(self, inst, case):
        if case.status is None:      # a check of the instance alone
            problems = case.check(inst, None, '')
            if problems:
                self.fail(inst.setup, case.name, problems[0], problems[1:])
            else:
                self.ok(inst.setup, case.name)
            return
        before = self.snapshot(inst.spool)
        mark = inst.log_mark()
        t0 = datetime.now(timezone.utc)
        res = self.curl(inst, case)
        t1 = datetime.now(timezone.utc)
        after = self.snapshot(inst.spool)
        problems = self.check_answer(case, res)
        if case.status == 200 and case.params is not None:
            problems += self.check_appended(case, before, after, t0, t1)
        elif before != after:
            problems.append('spool changed by a %s answer: %s'
                            % (res.status,
                               '; '.join(self.diff_snapshots(before, after))))
        if case.check is not None:
            inst.case_mark = mark
            problems += case.check(inst, res, inst.read_logs(mark))
        if problems:
            evidence = ['request: %s %s Content-Type=%r body=%r'
                        % (case.method, inst.url(case.query), case.ctype,
                           case.body if case.body is None
                           or len(case.body) < 300
                           else case.body[:120] + '…(%d bytes)'
                           % len(case.body)),
                        'want: status %d%s' % (case.status,
                                               ', params %s' % case.params
                                               if case.params else ''),
                        'got: ' + res.show()] + problems[1:]
            self.fail(inst.setup, case.name, problems[0], evidence, inst=inst,
                      log_mark=mark)
        else:
            self.ok(inst.setup, case.name)

    def run_path_case(self, inst, case):
        problems = case.prepare(inst) if case.prepare else []
        if problems:
            self.fail(inst.setup, case.name, problems[0], problems[1:])
            return
        before = self.snapshot(inst.spool)
        mark = inst.log_mark()
        res = self.curl(inst, case)
        after = self.snapshot(inst.spool)
        if res.curl_error is not None:
            problems.append('broken answer (%s)' % res.curl_error)
        if res.status not in case.status:
            problems.append('status %d, want %s' % (
                res.status, ' or '.join(str(c) for c in case.status)))
        for needle in case.lacks:
            if needle in res.body:
                problems.append('body contains %r' % needle)
        if before != after:
            problems.append('spool changed: %s' % '; '.join(
                self.diff_snapshots(before, after)))
        for line in inst.read_logs(mark).splitlines():
            if 'podio-hook[' in line:
                problems.append('podio-hook saw it: %s' % line.strip())
                break
        if problems:
            self.fail(inst.setup, case.name, problems[0],
                      ['request: %s %s body=%r' % (case.method,
                                                   inst.url('', case.path),
                                                   case.body),
                       'got: ' + res.show()] + problems[1:],
                      inst=inst, log_mark=mark)
        else:
            self.ok(inst.setup, case.name)

    # -- SIGTERM during a request (podio-hook --listen) ----------------------

    def term_in_flight(self, inst):
        """SIGTERM while a request's body is still arriving: podio-hook
        --listen must answer it (200, spooled), then exit 0."""
        name = ('SIGTERM during a request: the request is answered 200 and '
                'spooled, then podio-hook --listen exits 0')
        pairs = [('type', 'task.update'), ('task_id', '6099'),
                 ('hook_id', '1001'), ('note', 'in flight')]
        case = Case(name, 200, body=form(pairs), params=pairs)
        body = case.body.encode()
        head = ('POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
                'Content-Type: %s\r\nContent-Length: %d\r\n'
                'Connection: close\r\n\r\n'
                % (inst.hook_path, inst.port, FORM, len(body))).encode()
        before = self.snapshot(inst.spool)
        mark = inst.log_mark()
        problems = []
        t0 = datetime.now(timezone.utc)
        raw = b''
        with socket.create_connection(('127.0.0.1', inst.port), 10) as c:
            c.sendall(head + body[:10])
            # Long enough for Apache to pass the headers and the first
            # bytes on and for podio-hook to be reading the rest.
            time.sleep(0.5)
            os.kill(inst.backend.pid, signal.SIGTERM)
            time.sleep(0.5)
            if inst.backend.poll() is not None:
                problems.append('podio-hook exited (status %s) before the '
                                'request in flight was answered'
                                % inst.backend.returncode)
            try:
                c.sendall(body[10:])
                c.settimeout(20)
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
            except OSError as e:
                problems.append('connection: %s' % e)
        t1 = datetime.now(timezone.utc)
        head_raw, _, body_raw = raw.partition(b'\r\n\r\n')
        if not head_raw.startswith(b'HTTP/1.1 200 '):
            problems.append('answer %r, want 200' % raw[:300])
        elif dechunk(head_raw, body_raw) != b'OK\n':
            problems.append('answer %r, want the body OK' % raw[:300])
        after = self.snapshot(inst.spool)
        problems += self.check_appended(case, before, after, t0, t1)
        try:
            rc = inst.backend.wait(timeout=10)
            if rc != 0:
                problems.append('podio-hook --listen exited with status %d, '
                                'want 0' % rc)
        except subprocess.TimeoutExpired:
            problems.append('podio-hook --listen still running 10 s after '
                            'SIGTERM and the answer')
        if problems:
            self.fail(inst.setup, name, problems[0], problems[1:], inst=inst,
                      log_mark=mark)
        else:
            self.ok(inst.setup, name)

    def huge_body(self, inst):
        """A POST announcing a 300 MB body: the server answers 413 once the
        headers are in, without waiting for (or buffering) the body, and
        nothing reaches the spool.  Only the headers and the first 64 KiB
        are sent: a server that waited for the rest would never answer."""
        name = ('POST of 300 MB is refused with 413 after 64 KiB, before '
                'the body is read; nothing spooled')
        if inst.setup == 'apache-htaccess':
            self.skip(inst.setup, name, 'LimitRequestBody and <If> need '
                      '"AllowOverride All", which the .htaccess does not '
                      'ask for (its block for that is commented out); '
                      'podio-hook answers 413 from the length alone, but '
                      'mod_cgid still reads the body')
            return
        size = 300 * 1024 * 1024
        head = ('POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
                'Content-Type: %s\r\nContent-Length: %d\r\n'
                'Connection: close\r\n\r\n'
                % (inst.hook_path, inst.port, FORM, size)).encode()
        first = (form(ITEM) + '&pad=').encode()
        first += b'x' * (64 * 1024 - len(first))
        self.raw_refusal(inst, name, head + first, 413,
                         'no answer within 20 s after the first 64 KiB: '
                         'the server waits for the body')

    def chunked_body(self, inst):
        """A chunked POST of 256 KiB (no Content-Length to refuse it by):
        413 from the server's own body limit (411 from podio-hook behind
        mod_proxy_fcgi), and nothing spooled."""
        name = ('chunked POST of 256 KiB: refused (413; 411 via proxy-fcgi), '
                'nothing spooled')
        if inst.setup == 'apache-htaccess':
            self.skip(inst.setup, name, 'the .htaccess sets no body limit '
                      'of its own (see the 300 MB case)')
            return
        head = ('POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
                'Content-Type: %s\r\nTransfer-Encoding: chunked\r\n'
                'Connection: close\r\n\r\n'
                % (inst.hook_path, inst.port, FORM)).encode()
        body = (form(ITEM) + '&pad=').encode()
        body += b'x' * (256 * 1024 - len(body))
        chunks = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 8192]),
                                              body[i:i + 8192])
                          for i in range(0, len(body), 8192)) + b'0\r\n\r\n'
        # mod_proxy_fcgi passes a chunked body on without a length, which
        # podio-hook refuses itself: 411 Length Required.
        want = 411 if inst.setup == 'apache-proxy-fcgi' else 413
        self.raw_refusal(inst, name, head + chunks, want,
                         'no answer within 20 s')

    def raw_refusal(self, inst, name, request, want, silent_why):
        """Sends request (raw HTTP bytes) and reads the answer until the
        server closes: it must be HTTP/1.1 <want> and leave the spool as it
        was.  silent_why: the problem when no answer comes within 20 s."""
        before = self.snapshot(inst.spool)
        mark = inst.log_mark()
        problems = []
        raw = b''
        with socket.create_connection(('127.0.0.1', inst.port), 10) as c:
            try:
                c.sendall(request)
            except OSError:
                pass    # the server may close before taking it all
            c.settimeout(20)
            try:
                while True:
                    got = c.recv(65536)
                    if not got:
                        break
                    raw += got
            except socket.timeout:
                problems.append(silent_why)
            except OSError as e:
                if not raw:
                    problems.append('connection: %s' % e)
        status = raw.split(b'\r\n', 1)[0]
        if not status.startswith(b'HTTP/1.1 %d ' % want):
            problems.append('answer %r, want HTTP/1.1 %d' % (raw[:400], want))
        after = self.snapshot(inst.spool)
        if before != after:
            problems.append('spool changed: %s' % '; '.join(
                self.diff_snapshots(before, after)))
        if problems:
            self.fail(inst.setup, name, problems[0], problems[1:], inst=inst,
                      log_mark=mark)
        else:
            self.ok(inst.setup, name)

    def term_idle(self, inst):
        """SIGTERM to an idle podio-hook --listen: it exits 0."""
        name = 'SIGTERM to an idle podio-hook --listen: exit 0'
        problems = inst.stop_backend()
        if problems:
            self.fail(inst.setup, name, problems[0], problems[1:], inst=inst)
        else:
            self.ok(inst.setup, name)

    def backend_restart(self, inst):
        """After term_in_flight or term_idle: while podio-hook is down the
        server answers 503 (Apache) or 502 (nginx) and nothing is spooled;
        once it listens again (over its stale socket file, or on its port)
        the very next request is served."""
        code = BACKEND_DOWN[inst.setup]
        down = Case('%d from %s while podio-hook --listen is not running'
                    % (code, inst.setup.split('-')[0]), code, body=form(ITEM),
                    server_may_answer=True)
        self.run_case(inst, down)
        name = ('podio-hook --listen started again%s: the next request is '
                '200 and spooled' % (' over its stale socket'
                                     if inst.backend_port is None else ''))
        try:
            inst.start_backend()
            inst.wait_backend()
        except (OSError, RuntimeError) as e:
            self.fail(inst.setup, name, str(e), inst=inst)
            return
        up = Case(name, 200, body=form(ITEM), params=ITEM)
        self.run_case(inst, up)

    def check_appended(self, case, before, after, t0, t1):
        name = case.spool_type + '.jsonl'
        problems = []
        others = {k: v for k, v in after.items() if k != name}
        others_before = {k: v for k, v in before.items() if k != name}
        if others != others_before:
            problems.append('other spool files changed: %s' % '; '.join(
                self.diff_snapshots(others_before, others)))
        if name not in after:
            return problems + ['no spool file %s (spool has %s)'
                               % (name, sorted(after))]
        old = before.get(name, (None, b''))[1]
        mode, new = after[name]
        if not new.startswith(old):
            return problems + ['%s was rewritten, not appended to' % name]
        if name not in before and mode != 0o640:
            problems.append('new %s has mode %o, want 640 (file_mode)'
                            % (name, mode))
        line = new[len(old):]
        if line == b'':
            return problems + ['nothing appended to %s' % name]
        return problems + self.check_line(line, case, t0, t1)

    # -- many requests at once ---------------------------------------------

    def bulk(self, inst, n):
        """n POSTs through curl --parallel; every one spooled exactly once."""
        name = '%d POSTs at concurrency %d, each spooled once, whole' % (
            n, BULK_PARALLEL)
        etype = 'item.update'
        spool_file = os.path.join(inst.spool, etype + '.jsonl')
        try:
            with open(spool_file, 'rb') as f:
                old = f.read()
        except FileNotFoundError:
            old = b''
        outdir = os.path.join(self.work, 'bulk-%s' % inst.setup)
        os.mkdir(outdir)
        cfg = os.path.join(outdir, 'curl.cfg')
        want = {}
        with open(cfg, 'w') as f:
            for i in range(n):
                marker = 'm-%s-%05d' % (inst.setup, i)
                pairs = [('type', etype), ('item_id', str(100000 + i)),
                         ('item_revision_id', str(i % 7)),
                         ('hook_id', '1001'), ('marker', marker)]
                want[marker] = pairs
                f.write('url = "%s"\n' % inst.url())
                f.write('data-binary = "%s"\n' % form(pairs))
                f.write('header = "Content-Type: %s"\n' % FORM)
                f.write('header = "Expect:"\n')
                f.write('output = "%s/%05d"\n' % (outdir, i))
                f.write('write-out = "%{http_code} %{filename_effective}\\n"\n')
                f.write('max-time = 60\n')
                if i != n - 1:
                    f.write('next\n')
        mark = inst.log_mark()
        started = time.monotonic()
        r = subprocess.run(['curl', '-sS', '--parallel', '--parallel-max',
                            str(BULK_PARALLEL), '-K', cfg],
                           capture_output=True, text=True)
        took = time.monotonic() - started
        problems = []
        statuses = {}
        for line in r.stdout.splitlines():
            code, _, fname = line.partition(' ')
            statuses[fname] = code
        not200 = {f: c for f, c in statuses.items() if c != '200'}
        if len(statuses) != n:
            problems.append('curl reported %d transfers, want %d (rc %d, %s)'
                            % (len(statuses), n, r.returncode,
                               r.stderr.strip()[:300]))
        if not200:
            counts = {}
            for c in not200.values():
                counts[c] = counts.get(c, 0) + 1
            problems.append('%d answers not 200: %s' % (len(not200), counts))
        bodies_bad = 0
        for i in range(n):
            try:
                with open('%s/%05d' % (outdir, i), 'rb') as f:
                    if f.read() != b'OK\n':
                        bodies_bad += 1
            except OSError:
                bodies_bad += 1
        if bodies_bad:
            problems.append('%d bodies are not "OK\\n"' % bodies_bad)
        with open(spool_file, 'rb') as f:
            new = f.read()
        if not new.startswith(old):
            problems.append('%s was rewritten, not appended to' % spool_file)
        added = new[len(old):]
        if added and not added.endswith(b'\n'):
            problems.append('spool file does not end in \\n')
        lines = added.split(b'\n')[:-1] if added.endswith(b'\n') \
            else added.split(b'\n')
        if len(lines) != n:
            problems.append('%d lines appended, want %d' % (len(lines), n))
        ids = set()
        seen = {}
        bad_lines = []
        for line in lines:
            try:
                rec = json.loads(line.decode('utf-8'),
                                 object_pairs_hook=lambda p: p)
                d = dict(rec)
                params = [tuple(p) for p in d['params']]
                marker = dict(params)['marker']
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                bad_lines.append(line[:200])
                continue
            ids.add(d.get('id'))
            seen[marker] = seen.get(marker, 0) + 1
            if want.get(marker) != params or [k for k, _ in rec] != [
                    'id', 'received', 'type', 'remote_addr', 'params']:
                bad_lines.append(line[:200])
        if bad_lines:
            problems.append('%d lines malformed or with wrong params, first %r'
                            % (len(bad_lines), bad_lines[0]))
        if len(ids) != len(lines):
            problems.append('%d distinct ids for %d lines'
                            % (len(ids), len(lines)))
        missing = [m for m in want if m not in seen]
        twice = [m for m, c in seen.items() if c > 1]
        if missing:
            problems.append('%d markers missing, e.g. %s' % (len(missing),
                                                             missing[:3]))
        if twice:
            problems.append('%d markers spooled more than once, e.g. %s'
                            % (len(twice), twice[:3]))
        name += ' (%.1f s)' % took
        if problems:
            self.fail(inst.setup, name, problems[0], problems[1:], inst=inst,
                      log_mark=mark)
        else:
            self.ok(inst.setup, name)

    # -- one setup ---------------------------------------------------------

    def run_setup(self, setup, cases):
        server = setup.split('-')[0]
        if server == 'apache':
            server = 'apache2'
        if shutil.which(server, path='/usr/sbin:/usr/bin:/sbin:/bin') is None:
            self.fail(setup, 'server', '%s is not installed' % server)
            return
        if setup == 'apache-htaccess' and os.path.exists(ETC_CONFIG):
            # podio-hook would find that one: the variant cannot be made.
            why = ('%s exists, so "no config beside the binary" cannot be '
                   'tested here' % ETC_CONFIG)
            for c in cases:
                if c.variant == 'noconfig':
                    self.skip(setup, c.for_setup(setup).name, why)
            cases = [c for c in cases if c.variant != 'noconfig']
        variants = []
        for c in cases:
            if c.variant not in variants:
                variants.append(c.variant)
        instances = {}
        self.podio = None
        try:
            try:
                self.podio = podio_verify.PodioSetup(self, setup, harness.run_ids())
                variants += list(podio_verify.VARIANTS)
            except (RuntimeError, OSError) as e:
                self.fail(setup, 'start the fake Podio (test CA by openssl, '
                          'tests/podio/fake_podio.py)', str(e))
            for v in variants:
                instances[v] = Instance(self, setup, v)
                instances[v].start()
            # podio-hang first: its request's 3 s start at once.
            for v in sorted(variants, key=lambda v: v != 'podio-hang'):
                try:
                    instances[v].wait_ready()
                except RuntimeError as e:
                    self.fail(setup, 'start %s instance' % v, str(e),
                              inst=instances[v])
                    return
                if v == 'podio-hang':
                    # Its 3 s pass while the table runs on the others.
                    self.podio.start_hang(instances[v])
            # Setting up is no case of its own: it only fails.
            self.rep.note('%s: %d server instances started (%s)'
                          % (setup, len(variants), ', '.join(variants)))
            for case in cases:
                self.run_case(instances[case.variant], case.for_setup(setup))
            if self.podio is not None:
                self.podio.finish_hang()
                self.podio.run_cases(instances['podio'])
                self.podio.check_secrets(list(instances.values()))
                for v in podio_verify.VARIANTS:
                    self.run_case(instances[v], Case(
                        'log lines are "podio-hook[PID]: LEVEL: message" (%s)'
                        % v, None, variant=v, check=log_lines_wellformed))
            kind = 'fastcgi' if setup in FASTCGI_SETUPS else 'cgi'
            self.bulk(instances['main'], BULK_N[kind])
            for case in setup_cases(setup):
                self.run_path_case(instances[case.variant], case)
            self.huge_body(instances['main'])
            self.chunked_body(instances['main'])
            if setup == 'apache-proxy-fcgi':
                self.term_in_flight(instances['main'])
                self.backend_restart(instances['main'])
            elif setup in LISTEN_SETUPS:
                # nginx reads the whole body before it passes a request on,
                # so no request is in podio-hook's hands while one arrives:
                # an idle podio-hook --listen stopped instead.
                self.term_idle(instances['main'])
                self.backend_restart(instances['main'])
        finally:
            problems = []
            for v, inst in instances.items():
                problems += ['%s: %s' % (v, p) for p in inst.stop()]
            problems += self.leftovers()
            if self.podio is not None:
                rc = self.podio.stop()
                if rc not in (0, -signal.SIGTERM):
                    problems.append('the fake Podio exited with status %s '
                                    'on SIGTERM' % rc)
            name = 'stop servers, no podio-hook process left'
            if setup in LISTEN_SETUPS:
                name = ('stop servers, then each podio-hook --listen by pid '
                        '(SIGTERM, exit 0), no podio-hook process left')
            if problems:
                self.fail(setup, name, problems[0], problems[1:])
            else:
                self.ok(setup, name)

    def leftovers(self, wait=5.0):
        """Processes still running our copy of the binary; killed by pid."""
        deadline = time.monotonic() + wait
        while True:
            pids = harness.pids(lambda argv0: argv0 in self.bins)
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        harness.sigkill_pids(pids)
        return ['podio-hook process %d still running after the server '
                'stopped (killed)' % pid for pid in pids]


def main():
    suite = harness.Suite(__doc__, only=False)
    suite.parser.add_argument('--only', help='comma-separated setups: ' +
                              ', '.join(SETUPS))
    args = suite.parse()
    setups = SETUPS
    if args.only:
        setups = [s.strip() for s in args.only.split(',') if s.strip()]
        unknown = [s for s in setups if s not in SETUPS]
        if unknown:
            suite.parser.error('unknown setup %s (known: %s)'
                               % (', '.join(unknown), ', '.join(SETUPS)))
    if not suite.ready(tools=('curl',)):
        return suite.finish()
    h = Harness(suite.bin, suite.rep)
    suite.tmp = h.tmp
    cases = build_cases()
    for setup in setups:
        h.run_setup(setup, cases)
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
