"""tests/lib/fakepodio.py - the fake Podio API (tests/podio/fake_podio.py)
for the suites that run the binary against it (tests/podio/*.py,
tests/integration/podio_verify.py, tests/faults, tests/threads).

    sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
    import fakepodio

The credentials the fake accepts and base_scenario(); Certs, a test CA made
with the openssl CLI; Fake, fake_podio.py in its own process with its
scenario and its log; Env, one case's spool, config and fake, with the
binary run as CGI, as a FastCGI server (FcgiServer, requests by cgi-fcgi)
or as the command line (Result); the checks of what the fake saw
(check_sequence, check_token_request, check_api_request ...); secrets that
must never reach the binary's stderr (secret(), record_stderr(),
no_secret_in_stderr(), the last case of a suite).  Every process is in
PROCS until stop_pid() stops it by its PID.  Python 3 standard library
only.
"""

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import Failure, check, eq

FAKE = os.path.join(harness.REPO, "tests", "podio", "fake_podio.py")

TIMEOUT = 3  # [podio] timeout in the configs below

# Credentials the fake accepts.  Distinctive, so a leak is easy to spot.
CLIENT_ID = "podio-hook-test"
CLIENT_SECRET = "cs-5ecret-7f3d2a"
APP_ID = "123456"
APP_TOKEN = "at-70ken-9c1e4b"
USERNAME = "ops@example.com"
PASSWORD = "pw-pa55-0b7e9d"

CODE42 = "abc"  # the brief's code for hook 42
CODE43 = "code-43-e6a1f0"
WRONG_CODE = "wrong-code-5d2c"
CODE77 = "code-77-a4c9e2"


def base_scenario(**over):
    sc = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "app_id": int(APP_ID),
        "app_token": APP_TOKEN,
        "username": USERNAME,
        "password": PASSWORD,
        "codes": {"42": CODE42, "43": CODE43, "77": CODE77},
        "expires_in": 28800,
        "hooks": [
            {"ref_type": "app", "ref_id": "123", "hook_id": 501,
             "status": "active", "type": "item.create",
             "url": "https://example.com/hook?secret=s1"},
            {"ref_type": "app", "ref_id": "123", "hook_id": 502,
             "status": "inactive", "type": "comment.create",
             "url": "https://example.com/hook2"},
            {"ref_type": "space", "ref_id": "9", "hook_id": 503,
             "status": "active", "type": "task.create",
             "url": "https://example.com/elsewhere"},
        ],
        "next_hook_id": 1001,
    }
    sc.update(over)
    return sc


def short(b, n=600):
    """Text (bytes decoded) stripped and cut to about n characters."""
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    b = b.strip()
    return b if len(b) <= n else b[:n] + "..."


# ---------------------------------------------------------------------------
# Secrets that must never reach the binary's stderr (case i)

SECRETS = {}  # value -> what it is
STDERRS = []  # (case, what, text)
CURRENT = ["?"]


def secret(value, what):
    if value:
        SECRETS[str(value)] = what


def record_stderr(what, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    STDERRS.append((CURRENT[0], what, text))


for _v, _w in ((CLIENT_SECRET, "client_secret"), (APP_TOKEN, "app_token"),
               (PASSWORD, "password"), (CODE42, "code of hook 42"),
               (CODE43, "code of hook 43"), (WRONG_CODE, "wrong code"),
               (CODE77, "code of hook 77")):
    secret(_v, _w)


# ---------------------------------------------------------------------------
# Processes: every one is stopped by its PID in a finally block

PROCS = {}  # pid -> Popen


def stop_pid(p, sig=signal.SIGTERM, wait=5.0):
    """Stops p by PID; returns its exit status (None if it had to be
    killed)."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            PROCS.pop(p.pid, None)
            return None
    PROCS.pop(p.pid, None)
    return p.returncode


class Certs:
    """A test CA and, signed by it, a server certificate for 127.0.0.1 and
    localhost (cert, key) and one for another name only (wrong_cert,
    wrong_key: host verification must refuse it for 127.0.0.1)."""

    EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.run(["openssl", "req", "-x509"] + self.EC +
                 ["-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                  "-subj", "/CN=podio-hook test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self.cert, self.key = self.server("server", "127.0.0.1",
                                          "IP:127.0.0.1, DNS:localhost")
        self.wrong_cert, self.wrong_key = self.server(
            "wrong", "wrong.example", "DNS:wrong.example")

    @staticmethod
    def run(cmd):
        r = subprocess.run(cmd, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd[:3]),
                                           short(r.stderr)))

    def server(self, name, cn, san):
        d = self.dir
        cert = os.path.join(d, name + ".pem")
        key = os.path.join(d, name + ".key")
        csr = os.path.join(d, name + ".csr")
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName = %s\n"
                    "basicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature, keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid, issuer\n" % san)
        self.run(["openssl", "req"] + self.EC +
                 ["-keyout", key, "-out", csr, "-subj", "/CN=" + cn])
        self.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca,
                  "-CAkey", self.ca_key, "-CAcreateserial", "-out", cert,
                  "-days", "2", "-extfile", ext])
        return cert, key


class Fake:
    """fake_podio.py in its own process, with its scenario and log."""

    def __init__(self, d, certs, scenario, cert=None, key=None):
        self.dir = d
        self.scenario_path = os.path.join(d, "scenario.json")
        self.log_path = os.path.join(d, "requests.jsonl")
        self.err_path = os.path.join(d, "fake.stderr")
        port_file = os.path.join(d, "fake.port")
        self.set(scenario)
        self.ca = certs.ca
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0",
             "--cert", cert or certs.cert, "--key", key or certs.key, "--log", self.log_path, "--scenario",
             self.scenario_path, "--port-file", port_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err)
        PROCS[self.proc.pid] = self.proc
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake Podio did not start: " +
                                   short(open(self.err_path, "rb").read()))
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = "https://127.0.0.1:%d" % self.port

    def set(self, scenario):
        self.scenario = scenario
        tmp = self.scenario_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(scenario, f)
        os.replace(tmp, self.scenario_path)

    def update(self, **changes):
        sc = dict(self.scenario)
        sc.update(changes)
        self.set(sc)

    def log(self):
        """Every entry of the fake's log so far."""
        out = []
        if os.path.exists(self.log_path):
            with open(self.log_path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        return out

    def deliveries(self):
        """The hook.verify posts the fake made (deliver_verify)."""
        return [e for e in self.log() if e.get("kind") == "delivery"]

    def control(self, method, path, body=None):
        """A /_fake/ control endpoint (never in the log); its JSON."""
        ctx = ssl.create_default_context(cafile=self.ca)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def set_hook_status(self, hook_id, status):
        """As Podio after 50 failed deliveries: the hook is inactive."""
        return self.control("POST", "/_fake/hook/%d/status" % hook_id,
                            {"status": status})

    def hooks(self):
        return self.control("GET", "/_fake/hooks")

    def requests(self):
        """Every request the fake logged so far; registers issued tokens
        as secrets."""
        out = [e for e in self.log() if "kind" not in e]
        for e in out:
            if e.get("path") == "/oauth/token" and e.get("status") == 200:
                j = json.loads(e["response"])
                secret(j.get("access_token"), "access token")
                secret(j.get("refresh_token"), "refresh token")
        return out

    def stop(self):
        rc = stop_pid(self.proc)
        self.err.close()
        return rc


# ---------------------------------------------------------------------------
# The binary

class Result:
    def __init__(self, rc, out, err, elapsed):
        self.rc = rc
        self.out = out
        self.err = err
        self.elapsed = elapsed
        self.status = None
        self.headers = {}
        self.body = None

    def parse_cgi(self):
        """Splits a CGI answer into status, headers and body."""
        out = self.out
        sep = out.find(b"\r\n\r\n")
        n = 4
        if sep < 0:
            sep, n = out.find(b"\n\n"), 2
        check(sep >= 0, "no CGI header block in %r" % short(out))
        for line in out[:sep].decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = out[sep + n:]
        st = self.headers.get("status", "200 OK")
        self.status = int(st.split()[0])
        return self

    def describe(self):
        return "rc=%s stdout=%r stderr=%r" % (self.rc, short(self.out),
                                               short(self.err))


class Env:
    """One case's world: a temp dir, a spool, a config and a fake."""

    def __init__(self, top, name, certs, binary, scenario=None,
                 with_fake=True):
        self.dir = tempfile.mkdtemp(prefix="case-", dir=top)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self.certs = certs
        self.binary = binary
        self.fake = None
        if with_fake:
            self.fake = Fake(self.dir, certs,
                             scenario if scenario is not None
                             else base_scenario())
        self.ini = self.config()
        self.servers = []

    def config(self, name="podio-hook.ini", creds="app", **podio):
        """Writes a config; podio overrides [podio] keys (None drops)."""
        keys = {
            "api_url": self.fake.url if self.fake else "https://127.0.0.1:9",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "app_id": APP_ID,
            "app_token": APP_TOKEN,
            "ca_file": self.certs.ca,
            "timeout": str(TIMEOUT),
        }
        if creds == "password":
            del keys["app_id"], keys["app_token"]
            keys["username"] = USERNAME
            keys["password"] = PASSWORD
        elif creds is None:
            for k in ("client_id", "client_secret", "app_id", "app_token"):
                del keys[k]
        keys.update(podio)
        text = "[spool]\ndir = %s\nsync = no\n\n[podio]\n" % self.spool
        for k, v in keys.items():
            if v is not None:
                text += "%s = %s\n" % (k, v)
        text += "\n[log]\nlevel = debug\n"
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def close(self):
        for s in self.servers:
            s.stop()
        if self.fake is not None:
            self.fake.stop()

    # -- running the binary --

    def cgi_env(self, body, query="", ini=None, extra=None):
        env = harness.cgi_post_env(os.environ.get("PATH", "/usr/bin:/bin"),
                                   "podio-hook-tests", body, query,
                                   ini or self.ini)
        env.update(extra or {})
        return env

    def cgi(self, body, query="", ini=None, extra=None, wrap=None,
            timeout=30):
        if isinstance(body, str):
            body = body.encode()
        env = self.cgi_env(body, query, ini, extra)
        cmd = (wrap or []) + [self.binary]
        t0 = time.monotonic()
        p = subprocess.run(cmd, input=body, env=env, capture_output=True,
                           timeout=timeout)
        r = Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
        record_stderr("CGI", p.stderr)
        return r.parse_cgi()

    def cli(self, *args, ini=None, timeout=30, stdin=None):
        """The binary run as the command line (args); stdin: bytes on its
        standard input (default /dev/null)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        t0 = time.monotonic()
        io = ({"stdin": subprocess.DEVNULL} if stdin is None
              else {"input": stdin})
        p = subprocess.run([self.binary, "--config", ini or self.ini] +
                           list(args), env=env, capture_output=True,
                           timeout=timeout, **io)
        record_stderr("CLI " + " ".join(args), p.stderr)
        return Result(p.returncode, p.stdout, p.stderr,
                      time.monotonic() - t0)

    def fastcgi(self, ini=None, extra=None):
        s = FcgiServer(self, ini or self.ini, extra)
        self.servers.append(s)
        return s

    # -- the spool --

    def spooled(self, type_):
        """The spool file's records, each as a list of (key, value) pairs
        (key order kept)."""
        path = os.path.join(self.spool, type_ + ".jsonl")
        check(os.path.exists(path), "%s.jsonl was not spooled" % type_)
        with open(path, "rb") as f:
            data = f.read()
        check(data.endswith(b"\n"), "%s does not end in \\n" % path)
        out = []
        for line in data.split(b"\n")[:-1]:
            out.append(json.loads(line.decode("utf-8"),
                                  object_pairs_hook=list))
        return out


class FcgiServer:
    """podio-hook --listen 127.0.0.1:PORT; requests sent with cgi-fcgi."""

    def __init__(self, env, ini, extra):
        self.env = env
        self.ini = ini
        self.err_path = os.path.join(env.dir, "fcgi-%d.stderr" % id(self))
        self.err = open(self.err_path, "wb")
        self.proc = None
        self.stopped_rc = "not stopped"
        for _ in range(3):  # the free port may be taken meanwhile
            self.port = harness.free_port()
            penv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            penv.update(extra or {})
            self.proc = subprocess.Popen(
                [env.binary, "--config", ini, "--listen",
                 "127.0.0.1:%d" % self.port],
                stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
                env=penv)
            PROCS[self.proc.pid] = self.proc
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if b"listening on" in self.stderr_bytes():
                    return
                time.sleep(0.02)
            stop_pid(self.proc)
        raise RuntimeError("FastCGI server did not start: %s"
                           % short(self.stderr_bytes()))

    def stderr_bytes(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def request(self, body, query="", extra=None, timeout=30):
        if isinstance(body, str):
            body = body.encode()
        cenv = self.env.cgi_env(body, query, self.ini, extra)
        del cenv["PODIO_HOOK_CONFIG"]
        t0 = time.monotonic()
        p = subprocess.run(["cgi-fcgi", "-bind", "-connect",
                            "127.0.0.1:%d" % self.port], input=body,
                           env=cenv, capture_output=True, timeout=timeout)
        r = Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
        check(p.returncode == 0, "cgi-fcgi failed: " + r.describe())
        return r.parse_cgi()

    def stop(self):
        """SIGTERM by PID; returns the exit status (SPEC: 0)."""
        if self.proc is not None and self.stopped_rc == "not stopped":
            self.stopped_rc = stop_pid(self.proc)
            self.err.close()
            record_stderr("FastCGI server", self.stderr_bytes())
        return self.stopped_rc


# ---------------------------------------------------------------------------
# Assertions on what the fake saw and what was spooled

def media(headers):
    return headers.get("content-type", "").split(";")[0].strip().lower()


def form_of(entry):
    pairs = urllib.parse.parse_qsl(entry["body"], keep_blank_values=True,
                                   strict_parsing=True)
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)),
          "token request repeats a parameter: %r" % keys)
    return dict(pairs)


def describe_log(log):
    return "; ".join("%s %s -> %s" % (e.get("method"), e.get("path"),
                                      e.get("status", e.get("tls_error")))
                     for e in log)


def check_sequence(log, want):
    """want: [(method, path, status)], exactly, in order."""
    got = [(e.get("method"), e.get("path"), e.get("status")) for e in log]
    if got != want:
        raise Failure("the fake saw [%s], want [%s]" % (
            describe_log(log),
            "; ".join("%s %s -> %s" % w for w in want)))


def check_token_request(e, grant, refresh=None):
    """An /oauth/token request as SPEC section 1 says; returns the issued
    tokens."""
    eq((e["method"], e["path"], e["query"]), ("POST", "/oauth/token", ""),
       "token request line")
    check("authorization" not in e["headers"],
          "/oauth/token was sent an Authorization header: %r"
          % e["headers"].get("authorization"))
    eq(media(e["headers"]), "application/x-www-form-urlencoded",
       "token request Content-Type")
    form = form_of(e)
    want = {"grant_type": grant, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}
    if grant == "app":
        want.update(app_id=APP_ID, app_token=APP_TOKEN)
    elif grant == "password":
        want.update(username=USERNAME, password=PASSWORD)
    else:
        want["refresh_token"] = refresh
    eq(form, want, "token request form")
    eq(e["status"], 200, "token answer status (%s)" % short(e["response"]))
    return json.loads(e["response"])


def check_api_request(e, method, path, token, body=None, status=None):
    eq((e["method"], e["path"], e["query"]), (method, path, ""),
       "request line")
    eq(e["headers"].get("authorization"), "OAuth2 " + token,
       "Authorization of %s %s" % (method, path))
    if body is not None:
        eq(media(e["headers"]), "application/json",
           "Content-Type of %s %s" % (method, path))
        try:
            got = json.loads(e["body"])
        except ValueError:
            raise Failure("%s %s body is not JSON: %r" % (method, path,
                                                         e["body"]))
        eq(got, body, "JSON body of %s %s" % (method, path))
    if status is not None:
        eq(e["status"], status, "fake's answer to %s %s (%s)"
           % (method, path, short(e.get("response", ""))))


def check_verify_record(rec, hook, code, status):
    """One spooled hook.verify line (key order kept); returns the
    verification as a dict."""
    keys = [k for k, _ in rec]
    eq(keys, ["id", "received", "type", "remote_addr", "params",
              "verification"], "record keys")
    d = dict(rec)
    check(isinstance(d["id"], str) and d["id"], "empty id")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",
                       d["received"]), "received %r" % d["received"])
    eq(d["type"], "hook.verify", "record type")
    eq(d["remote_addr"], "192.0.2.10", "remote_addr")
    eq(d["params"], [("type", "hook.verify"), ("hook_id", hook),
                     ("code", code)], "params")
    v = d["verification"]
    eq([k for k, _ in v], ["status", "detail"], "verification keys")
    v = dict(v)
    check(isinstance(v["detail"], str), "detail is not a string")
    eq(v["status"], status, "verification.status (detail %r)" % v["detail"])
    return v


def check_exit(r, want, what):
    check(r.rc == want, "%s: exit %s, want %s; %s" % (what, r.rc, want,
                                                     r.describe()))


def check_ok(r):
    check(r.status == 200 and r.body == b"OK\n",
          "answer: status %s body %r; %s" % (r.status, r.body, r.describe()))
    eq(r.headers.get("content-type"), "text/plain", "answer Content-Type")


def verify_body(hook, code):
    return "type=hook.verify&hook_id=%s&code=%s" % (
        hook, urllib.parse.quote(code, safe=""))


def no_secret_in_stderr():
    """The last case of a suite: no secret (registered with secret(), or a
    token the fake issued) in the stderr of any run recorded with
    record_stderr()."""
    leaks = []
    runs = 0
    for case_name, what, text in STDERRS:
        runs += 1
        for value, kind in SECRETS.items():
            pat = r"(?<![A-Za-z0-9_-])%s(?![A-Za-z0-9_-])" % re.escape(value)
            m = re.search(pat, text)
            if m:
                line = text[text.rfind("\n", 0, m.start()) + 1:
                            text.find("\n", m.end())]
                leaks.append("%s (%s) in stderr of %s [%s]: %r"
                             % (kind, value, what, case_name[:40], line))
    check(runs > 0, "no stderr collected")
    check(any(k == "access token" for k in SECRETS.values()),
          "no token was ever issued, nothing to look for")
    check(not leaks, "; ".join(leaks[:5]))

# Objects of the fake's scenario that the api and fetch suites ask for.
ITEM_1 = {"item_id": 1, "title": "Quarterly report", "app": {"app_id": 55},
          "fields": [{"external_id": "status", "values": [{"value": "open"}]}],
          "revision": 3}
TASK_2 = {"task_id": 2, "text": "Call back", "status": "active"}


# ---------------------------------------------------------------------------
# A suite whose cases each get a fake

def run_suite(doc, cases, prefix, start, stop=Env.close, call=None,
              tools=("openssl",), last=None):
    """The main() of a suite whose cases each get a fake: its command line
    (harness.Suite(doc, cases)), then each case in a temporary tree
    (prefix) holding one test CA (certs/, the CA readable by the servers'
    user) and a copy of the binary that user can reach (harness's
    copy_binary): start(case, top, certs, binary) makes what the case
    gets, stop(it) after the case (see Suite.run for call).  Last, unless
    last is None, no_secret_in_stderr() as a case of that name.  Every
    process still in PROCS is stopped by its PID.  Returns the exit
    status."""
    tail = [(last, no_secret_in_stderr)] if last is not None else []
    suite = harness.Suite(doc, list(cases) + tail)
    suite.parse()
    if not suite.ready(tools):
        return suite.finish()
    top = suite.tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(top, 0o755)
    certs_dir = os.path.join(top, "certs")
    os.mkdir(certs_dir)
    os.chmod(certs_dir, 0o755)
    try:
        certs = Certs(certs_dir)
    except (RuntimeError, OSError) as e:
        suite.rep.fail("setup: test CA and server certificate", str(e))
        return suite.finish()
    os.chmod(certs.ca, 0o644)
    binary = harness.copy_binary(suite.bin, top)

    def begin(case):
        CURRENT[0] = case[0]
        return start(case, top, certs, binary)
    try:
        suite.run(cases, start=begin, call=call, stop=stop)
        suite.run(tail)
    finally:
        for p in list(PROCS.values()):
            stop_pid(p)
    return suite.finish()
