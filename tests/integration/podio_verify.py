"""hook.verify through the real servers, against the fake Podio over HTTPS.

Called by run.py for every setup; not a program of its own.  Per setup it
starts one tests/podio/fake_podio.py (certificate from a test CA that the
openssl CLI makes once per run; [podio] ca_file names the CA, readable by
the server's user) and two server instances whose config carries [podio]
credentials for it (timeout = 3):

  podio-hang  one request only, sent in the background while run.py's case
              table runs on the other instances (the fake is otherwise
              idle then): the validate call hangs 30 s; the answer must
              come within timeout + 1 s, spooled "failed", and the fake
              must see the token request and that one validate, no retry.
  podio       the other cases, one after the other, the fake's scenario
              reset between them:
                - validated: /oauth/token (form, grant app, client id and
                  secret, no Authorization), then validate (JSON code,
                  application/json, OAuth2 <that token>); CGI: the token
                  cached in {spool}/.podio-token, mode 0600, owned by the
                  server's user (FastCGI: only checked if it is there)
                - a second verify reuses the token: FastCGI with the cache
                  file moved away before each request (so only memory
                  holds it), checked per process by the PID in the log
                  lines (lighttpd and mod_fcgid run several): a process
                  new to the case asks for a token once, one seen before
                  asks for none, and some process must serve two requests
                  (up to three tries); CGI through the cache file (a new
                  process, no token request)
                - expired token (expire_all_tokens_now): validate 401,
                  grant_type=refresh_token with that token's refresh
                  token, validate again -> validated.  FastCGI: the cache
                  file is put back first, so that whichever process gets
                  the request holds a token (its own or the file's)
                - wrong code: "failed" with Podio's error in the detail,
                  one validate (FastCGI: a process with a token the
                  previous case expired may renew it first)
              then no code, token, client secret or app token in any of
              the setup's server logs, nor a token or secret in the spool.

Every request is made by the curl binary through the server; every verdict
comes from the spooled line and the fake's request log.
"""

import json
import os
import re
import secrets
import stat
import threading
import time
from datetime import datetime, timezone

# tests/lib/fakepodio.py (run.py puts tests/lib on the path): the fake's
# wrapper, the test CA, the credentials the fake accepts and the checks of
# what the fake saw.
import fakepodio as P
from harness import Failure, form

VARIANTS = ('podio', 'podio-hang')
TIMEOUT = 3                     # [podio] timeout of both instances
HANG = 30                       # the fake's hang_seconds
FORM = 'application/x-www-form-urlencoded'
TOKEN_FILE = '.podio-token'

HOOK_OK = 42
HOOKS_REUSE = (43, 44, 45)      # FastCGI: until one process serves twice
HOOK_EXPIRED = 46
HOOK_HANG = 47
HOOK_WRONG = 48
ALL_HOOKS = (HOOK_OK,) + HOOKS_REUSE + (HOOK_EXPIRED, HOOK_HANG, HOOK_WRONG)

PREFIX = 'hook.verify via the fake Podio: '


class VCase:
    """What run.py's Harness.curl / check_answer / check_line read."""

    def __init__(self, hook, code, verification):
        self.name = 'hook.verify %s' % hook
        self.status = 200
        self.params = [('type', 'hook.verify'), ('hook_id', str(hook)),
                       ('code', code)]
        self.body = form(self.params)
        self.query = ''
        self.method = 'POST'
        self.ctype = FORM
        self.spool_type = 'hook.verify'
        self.verification = verification
        self.server_may_answer = False


class Sent:
    """One verify request through a server and what came of it."""

    def __init__(self, hook, code):
        self.hook = hook
        self.code = code
        self.problems = []
        self.detail = None
        self.pid = None
        self.elapsed = None
        self.res = None
        self.n0 = 0            # the fake's log length before the request
        self.reqs = []         # what the fake saw during the request
        self.mark = None       # the instance's log sizes before it


def certs_for(h):
    """The run's test CA and server certificate (made once)."""
    if getattr(h, 'podio_certs', None) is None:
        d = os.path.join(h.tmp, 'podio-certs')
        os.mkdir(d)
        certs = P.Certs(d)
        # The server's user reads the CA ([podio] ca_file); the keys stay
        # the harness's (the fake runs as the harness).
        os.chmod(d, 0o755)
        os.chmod(certs.ca, 0o644)
        h.podio_certs = certs
    return h.podio_certs


def is_token_file(rel):
    return os.path.basename(rel).startswith(TOKEN_FILE)


SLOT_RE = re.compile(r'^\.verify-slot-\d+$')


def is_slot_file(rel):
    """The inline verification slot lock files (SPEC section 14): empty
    dotfiles a verification holds a flock on."""
    return SLOT_RE.match(os.path.basename(rel)) is not None


def describe(reqs):
    return '[%s]' % P.describe_log(reqs) if reqs else '[nothing]'


class PodioSetup:
    """One setup's fake Podio and its hook.verify cases."""

    def __init__(self, h, setup, run_ids):
        self.h = h
        self.setup = setup
        self.ids = run_ids
        self.fastcgi = setup in ('lighttpd-fastcgi', 'apache-fcgid',
                                 'apache-proxy-fcgi', 'nginx-fastcgi')
        self.dir = os.path.join(h.tmp, 'fake-podio-' + setup)
        os.mkdir(self.dir, 0o700)
        self.codes = {hook: 'vc%d-%s' % (hook, secrets.token_hex(6))
                      for hook in ALL_HOOKS}
        self.wrong = 'wrong-%s' % secrets.token_hex(6)
        self.expire_seq = 0
        self.seq = 0
        self.hang_thread = None
        self.hang_sent = None
        self.fake = P.Fake(self.dir, certs_for(h), self.scenario())

    # -- the fake ------------------------------------------------------------

    def scenario(self, **over):
        return P.base_scenario(
            codes={str(k): v for k, v in self.codes.items()}, **over)

    def reset(self, **over):
        self.fake.set(self.scenario(**over))

    def requests(self):
        return self.fake.requests()

    def stop(self):
        """Stops the fake by its PID; returns its exit status."""
        if self.hang_thread is not None:
            self.hang_thread.join(HANG + 10)
        return self.fake.stop()

    def config_text(self):
        certs = certs_for(self.h)
        return ('[podio]\napi_url = %s\nclient_id = %s\nclient_secret = %s\n'
                'app_id = %s\napp_token = %s\ntimeout = %d\nca_file = %s\n\n'
                % (self.fake.url, P.CLIENT_ID, P.CLIENT_SECRET, P.APP_ID,
                   P.APP_TOKEN, TIMEOUT, certs.ca))

    # -- one request ---------------------------------------------------------

    def send(self, inst, hook, code, want):
        """POSTs a hook.verify through inst; checks the answer (200 OK,
        text/plain, no-store) and that exactly one line, with verification
        status want, was appended to hook.verify.jsonl and nothing else
        changed but the token cache."""
        h = self.h
        s = Sent(hook, code)
        case = VCase(hook, code, want)
        self.seq += 1
        base = os.path.join(h.work, 'podio-%s-%s-%d' % (self.setup,
                                                        inst.variant,
                                                        self.seq))
        before = h.snapshot(inst.spool)
        s.mark = inst.log_mark()
        s.n0 = len(self.requests())
        t0 = datetime.now(timezone.utc)
        m0 = time.monotonic()
        s.res = h.curl(inst, case, base=base)
        s.elapsed = time.monotonic() - m0
        t1 = datetime.now(timezone.utc)
        after = h.snapshot(inst.spool)
        s.reqs = self.requests()[s.n0:]
        s.problems = h.check_answer(case, s.res)
        if s.problems:
            s.problems.append('got: ' + s.res.show())
        old = {k: v for k, v in before.items()
               if not is_token_file(k) and not is_slot_file(k)}
        new = {k: v for k, v in after.items()
               if not is_token_file(k) and not is_slot_file(k)}
        slots = {k: v for k, v in after.items() if is_slot_file(k)}
        if any(v[1] != b'' for v in slots.values()):
            s.problems.append('verification slot files with content: %s'
                              % sorted(slots))
        name = 'hook.verify.jsonl'
        others_old = {k: v for k, v in old.items() if k != name}
        others_new = {k: v for k, v in new.items() if k != name}
        if others_old != others_new:
            s.problems.append('other spool files changed: %s' % '; '.join(
                h.diff_snapshots(others_old, others_new)))
        temps = [k for k in after if os.path.basename(k).startswith(
            TOKEN_FILE + '.')]
        if temps:
            s.problems.append('temporary token files left in the spool: %s'
                              % temps)
        was = old.get(name, (None, b''))[1]
        now = new.get(name, (None, b''))[1]
        if not now.startswith(was):
            s.problems.append('%s was rewritten, not appended to' % name)
        elif now == was:
            s.problems.append('nothing appended to %s' % name)
        else:
            line = now[len(was):]
            s.problems += h.check_line(line, case, t0, t1)
            try:
                rec = json.loads(line)
                s.detail = rec['verification']['detail']
            except (ValueError, KeyError, TypeError):
                pass
        return s

    def pid_of(self, inst, s, wait=2.0):
        """The PID of the podio-hook line that names the request's hook
        (logged during the request, or just after it)."""
        pat = re.compile(r'podio-hook\[(\d+)\]: [a-z]+: .*hook_id=%d(?!\d)'
                         % s.hook)
        deadline = time.monotonic() + wait
        while True:
            m = pat.search(inst.read_logs(s.mark))
            if m:
                return int(m.group(1))
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def issued(self):
        """{access token: the token answer} of every token the fake issued
        in this setup."""
        out = {}
        for e in self.requests():
            if e.get('path') == '/oauth/token' and e.get('status') == 200:
                j = json.loads(e['response'])
                out[j['access_token']] = j
        return out

    def token_file(self, inst):
        """The cache file's text; checks it is a file of mode 0600 owned
        by the server's user."""
        path = os.path.join(inst.spool, TOKEN_FILE)
        try:
            st = os.stat(path)
        except OSError as e:
            raise Failure('no token cache %s: %s (spool holds %s)'
                          % (path, e.strerror,
                             sorted(os.listdir(inst.spool))))
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode) or mode != 0o600:
            raise Failure('%s has mode %o, want a file of mode 600'
                          % (path, mode))
        if self.ids is not None and (st.st_uid, st.st_gid) != self.ids:
            raise Failure('%s is owned by %d:%d, want the server\'s user '
                          '%d:%d' % ((path, st.st_uid, st.st_gid) + self.ids))
        with open(path) as f:
            return f.read()

    # -- reporting -----------------------------------------------------------

    def run(self, inst, name, fn, *args):
        """Runs one case; prints ok or FAIL with the fake's log and the
        server's log lines of the case as evidence."""
        state = {'n0': len(self.requests()), 'mark': inst.log_mark()}
        try:
            fn(inst, state, *args)
        except Exception as e:  # a harness bug is a failure too
            why = getattr(e, 'why', None) or (
                str(e) if isinstance(e, P.Failure)
                else '%s: %s' % (type(e).__name__, e))
            evidence = list(getattr(e, 'evidence', []))
            evidence.append('the fake saw during the case: %s'
                            % describe(self.requests()[state['n0']:]))
            self.h.fail(self.setup, PREFIX + name, why, evidence, inst=inst,
                        log_mark=state['mark'])
            return False
        self.h.ok(self.setup, PREFIX + name)
        return True

    @staticmethod
    def must(s, what):
        if s.problems:
            raise Failure('%s: %s' % (what, s.problems[0]), s.problems[1:])

    # -- the hanging API, in the background ----------------------------------

    def start_hang(self, inst):
        """Sets the fake to hang on validate and sends the podio-hang
        instance's one request from a thread; run.py's table runs
        meanwhile (nothing else talks to the fake)."""
        self.reset(hang_seconds=HANG)
        self.hang_inst = inst
        self.hang_n0 = len(self.requests())

        def go():
            try:
                self.hang_sent = self.send(inst, HOOK_HANG,
                                           self.codes[HOOK_HANG], 'failed')
            except Exception as e:   # reported by finish_hang
                self.hang_sent = e
        self.hang_thread = threading.Thread(target=go, daemon=True)
        self.hang_thread.start()

    def finish_hang(self):
        """Waits for the background request, checks it, resets the fake."""
        name = ('hanging validate (hang %d s, [podio] timeout = %d): 200 '
                'within %d s, spooled failed (timed out), token then one '
                'validate, not retried' % (HANG, TIMEOUT, TIMEOUT + 1))
        self.hang_thread.join(HANG + 10)
        inst = self.hang_inst
        s = self.hang_sent
        try:
            if self.hang_thread.is_alive():
                raise Failure('no answer after %d s' % (HANG + 10))
            if isinstance(s, Exception):
                raise Failure('the request broke: %r' % s)
            self.must(s, 'the answer or the spooled line')
            if s.elapsed > TIMEOUT + 1:
                raise Failure('answered after %.2f s, bound %d s'
                              % (s.elapsed, TIMEOUT + 1))
            if not re.search(r'time[d ]?out|timeout', s.detail or '', re.I):
                raise Failure('detail does not say it timed out: %r'
                              % s.detail)
            # Everything since: a retry would show here (the table ran on
            # after the answer).
            reqs = self.requests()[self.hang_n0:]
            path = '/hook/%d/verify/validate' % HOOK_HANG
            got = [(e.get('method'), e.get('path')) for e in reqs]
            if got != [('POST', '/oauth/token'), ('POST', path)]:
                raise Failure('the fake saw %s, want the token request '
                              'and one validate' % describe(reqs))
            tok = P.check_token_request(reqs[0], 'app')
            P.check_api_request(reqs[1], 'POST', path, tok['access_token'],
                                {'code': self.codes[HOOK_HANG]})
            P.eq(reqs[1].get('hang_seconds'), HANG, 'the validate call hung')
        except Exception as e:  # a harness bug is a failure too
            self.h.fail(self.setup, PREFIX + name, getattr(e, 'why', str(e)),
                        list(getattr(e, 'evidence', [])) + [
                            'the fake saw: %s'
                            % describe(self.requests()[self.hang_n0:])],
                        inst=inst,
                        log_mark=s.mark if isinstance(s, Sent) else None)
        else:
            self.h.ok(self.setup, PREFIX + name + ' (%.2f s)' % s.elapsed)
        self.reset()

    # -- the cases on the podio instance -------------------------------------

    def run_cases(self, inst):
        self.reset()
        self.pid_token = {}
        self.first = None
        self.run(inst, 'POST type=hook.verify&hook_id=%d&code=... -> '
                        '200 OK, validated; the fake saw /oauth/token (form, '
                        'grant_type=app, client id and secret, no '
                        'Authorization) then POST /hook/%d/verify/validate '
                        '(application/json {"code"}, Authorization: OAuth2 '
                 '<that token>)%s' % (HOOK_OK, HOOK_OK, '' if self.fastcgi
                                      else '; token cached in %s (0600, the '
                                      'server\'s user)' % TOKEN_FILE),
                 self.case_validated)
        if self.fastcgi:
            self.run(inst, 'second verify in one FastCGI process reuses its '
                     'token from memory (%s removed before each request): '
                     'one token request per process, by the PIDs in the '
                     'log' % TOKEN_FILE, self.case_reuse_fastcgi)
        else:
            self.run(inst, 'second verify (a new CGI process) reuses the '
                     'token cached in %s: no token request' % TOKEN_FILE,
                     self.case_reuse_cgi)
        self.run(inst, 'expired token: validate 401 expired_token, '
                 '/oauth/token grant_type=refresh_token once, validate '
                 'again -> validated%s' % ('' if self.fastcgi else
                                           '; the new token cached'),
                 self.case_expired)
        self.reset()
        self.run(inst, 'wrong code: failed with Podio\'s error '
                 '(invalid_value: Invalid code) in the detail, not retried',
                 self.case_wrong)

    def case_validated(self, inst, state):
        s = self.send(inst, HOOK_OK, self.codes[HOOK_OK], 'validated')
        self.must(s, 'the answer or the spooled line')
        P.eq(s.detail, '', 'detail of a validated hook')
        P.check_sequence(s.reqs, [
            ('POST', '/oauth/token', 200),
            ('POST', '/hook/%d/verify/validate' % HOOK_OK, 204)])
        tok = P.check_token_request(s.reqs[0], 'app')
        P.check_api_request(s.reqs[1], 'POST',
                            '/hook/%d/verify/validate' % HOOK_OK,
                            tok['access_token'],
                            {'code': self.codes[HOOK_OK]}, 204)
        s.pid = self.pid_of(inst, s)
        if s.pid is None and self.fastcgi:
            raise Failure('no podio-hook log line naming hook_id=%d: no '
                          'PID for the request' % HOOK_OK)
        self.pid_token[s.pid] = tok['access_token']
        self.first = s
        # CGI: the cache file is the only way to the next run (SPEC 6).
        # FastCGI keeps it in memory; a file it writes must be as private.
        if not self.fastcgi or os.path.exists(
                os.path.join(inst.spool, TOKEN_FILE)):
            text = self.token_file(inst)
            if not self.fastcgi and tok['access_token'] not in text:
                raise Failure('%s does not hold the issued token'
                              % TOKEN_FILE)

    def needs_first(self):
        if self.first is None or (self.fastcgi and self.first.pid is None):
            raise Failure('not run: the first verify failed')

    def case_reuse_cgi(self, inst, state):
        self.needs_first()
        hook = HOOKS_REUSE[0]
        s = self.send(inst, hook, self.codes[hook], 'validated')
        self.must(s, 'the answer or the spooled line')
        path = '/hook/%d/verify/validate' % hook
        P.check_sequence(s.reqs, [('POST', path, 204)])
        P.check_api_request(s.reqs[0], 'POST', path,
                            self.pid_token[self.first.pid],
                            {'code': self.codes[hook]}, 204)
        s.pid = self.pid_of(inst, s)
        if s.pid is not None and s.pid == self.first.pid:
            raise Failure('the same PID %d served both requests: not a new '
                          'CGI process' % s.pid)

    def case_reuse_fastcgi(self, inst, state):
        """Before each request the cache file goes (moved aside, to be put
        back for the expired-token case); a process new to the case asks
        for a token once, a process seen before uses the one it got."""
        self.needs_first()
        self.saved_token_file = os.path.join(inst.dir, 'podio-token.saved')
        served = [self.first.pid]
        notes = []
        for hook in HOOKS_REUSE:
            cache = os.path.join(inst.spool, TOKEN_FILE)
            if os.path.exists(cache):
                os.rename(cache, self.saved_token_file)
            s = self.send(inst, hook, self.codes[hook], 'validated')
            self.must(s, 'hook_id=%d: the answer or the spooled line' % hook)
            s.pid = self.pid_of(inst, s)
            if s.pid is None:
                raise Failure('hook_id=%d: no podio-hook log line naming it: '
                              'no PID for the request' % hook)
            path = '/hook/%d/verify/validate' % hook
            if s.pid in self.pid_token:
                P.check_sequence(s.reqs, [('POST', path, 204)])
                P.check_api_request(s.reqs[0], 'POST', path,
                                    self.pid_token[s.pid],
                                    {'code': self.codes[hook]}, 204)
                notes.append('hook %d: pid %d again, its token' % (hook,
                                                                  s.pid))
            else:
                # A process that never had a token: one request for it.
                P.check_sequence(s.reqs, [('POST', '/oauth/token', 200),
                                          ('POST', path, 204)])
                tok = P.check_token_request(s.reqs[0], 'app')
                P.check_api_request(s.reqs[1], 'POST', path,
                                    tok['access_token'],
                                    {'code': self.codes[hook]}, 204)
                self.pid_token[s.pid] = tok['access_token']
                notes.append('hook %d: new pid %d, one token request'
                             % (hook, s.pid))
            served.append(s.pid)
            if len(set(served)) < len(served):
                return
        raise Failure('every request went to another process (PIDs %s): '
                      'reuse in one process not shown' % served, notes)

    def case_expired(self, inst, state):
        cache = os.path.join(inst.spool, TOKEN_FILE)
        saved = getattr(self, 'saved_token_file', None)
        if saved and not os.path.exists(cache) and os.path.exists(saved):
            # So that a FastCGI process without a token of its own loads
            # one too (any process must meet the 401 here).
            os.rename(saved, cache)
        issued = self.issued()
        self.expire_seq += 1
        self.reset(expire_all_tokens_now='expire-%d' % self.expire_seq)
        hook = HOOK_EXPIRED
        s = self.send(inst, hook, self.codes[hook], 'validated')
        self.reset()
        self.must(s, 'the answer or the spooled line')
        path = '/hook/%d/verify/validate' % hook
        P.check_sequence(s.reqs, [('POST', path, 401),
                                  ('POST', '/oauth/token', 200),
                                  ('POST', path, 204)])
        old = s.reqs[0]['headers'].get('authorization', '').partition(' ')[2]
        if old not in issued:
            raise Failure('the first validate carried %r, not a token the '
                          'fake issued' % s.reqs[0]['headers'].get(
                              'authorization'))
        P.check_api_request(s.reqs[0], 'POST', path, old,
                            {'code': self.codes[hook]}, 401)
        P.eq(json.loads(s.reqs[0]['response']).get('error_description'),
             'expired_token', "the fake's 401")
        new = P.check_token_request(s.reqs[1], 'refresh_token',
                                    refresh=issued[old]['refresh_token'])
        if new['access_token'] == old:
            raise Failure('the refresh gave the same token')
        P.check_api_request(s.reqs[2], 'POST', path, new['access_token'],
                            {'code': self.codes[hook]}, 204)
        if not self.fastcgi and new['access_token'] not in self.token_file(
                inst):
            raise Failure('%s does not hold the refreshed token'
                          % TOKEN_FILE)

    def case_wrong(self, inst, state):
        hook = HOOK_WRONG
        s = self.send(inst, hook, self.wrong, 'failed')
        self.must(s, 'the answer or the spooled line')
        if not ('invalid_value' in (s.detail or '')
                and 'Invalid code' in s.detail):
            raise Failure("detail lacks Podio's error (invalid_value, "
                          "Invalid code): %r" % s.detail)
        path = '/hook/%d/verify/validate' % hook
        want = [('POST', path, 400)]
        if self.fastcgi and len(s.reqs) == 3:
            # A process still holding a token that the expired case made
            # stale renews it first: that is the refresh, not a retry.
            want = [('POST', path, 401), ('POST', '/oauth/token', 200)] + want
        P.check_sequence(s.reqs, want)
        tok = s.reqs[-1]['headers'].get('authorization',
                                        '').partition(' ')[2]
        if tok not in self.issued():
            raise Failure('validate carried %r, not a token the fake issued'
                          % s.reqs[-1]['headers'].get('authorization'))
        P.check_api_request(s.reqs[-1], 'POST', path, tok,
                            {'code': self.wrong}, 400)

    # -- secrets -------------------------------------------------------------

    def check_secrets(self, instances):
        """No code, token or credential in any server log of the setup;
        no token or credential in any spool file."""
        name = ('no verification code, token, client secret or app token '
                'in the server logs; no token or secret in the spool')
        issued = self.issued()
        logs = {P.CLIENT_SECRET: 'client_secret', P.APP_TOKEN: 'app_token',
                self.wrong: 'the wrong code'}
        for hook, code in self.codes.items():
            logs[code] = 'the code of hook %d' % hook
        spool = {P.CLIENT_SECRET: 'client_secret', P.APP_TOKEN: 'app_token'}
        for access, j in issued.items():
            logs[access] = spool[access] = 'an access token'
            if j.get('refresh_token'):
                logs[j['refresh_token']] = spool[j['refresh_token']] = \
                    'a refresh token'
        problems = []
        if not issued:
            problems.append('the fake issued no token: nothing to look for')
        for inst in instances:
            text = inst.read_logs()
            for value, what in logs.items():
                for line in text.splitlines():
                    if value in line:
                        problems.append('%s in the %s instance\'s log: %s'
                                        % (what, inst.variant, line.strip()))
            for root, _, files in os.walk(inst.spool):
                for f in files:
                    if f.startswith(TOKEN_FILE):
                        continue
                    with open(os.path.join(root, f), 'rb') as fh:
                        data = fh.read().decode('utf-8', 'replace')
                    for value, what in spool.items():
                        if value in data:
                            problems.append('%s in %s' % (what, os.path.join(
                                root, f)))
        if problems:
            self.h.fail(self.setup, PREFIX + name, problems[0], problems[1:])
        else:
            self.h.ok(self.setup, PREFIX + name)
