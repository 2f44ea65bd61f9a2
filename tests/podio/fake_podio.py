#!/usr/bin/env python3
"""fake_podio.py - a fake Podio API over HTTPS for podio-hook's tests.

    python3 fake_podio.py --port 0 --cert server.pem --key server.key \
        --log requests.jsonl --scenario scenario.json --port-file port

Binds 127.0.0.1 only, writes the chosen port to --port-file once it
listens, serves each connection in its own thread (the TLS handshake too,
so a stalled client blocks nobody) and stops cleanly on SIGTERM/SIGINT.

It checks what the real Podio checks (SPEC section 1):

  POST   /oauth/token                 form-encoded body, no Authorization;
                                      grant_type app | password | refresh_token
  POST   /hook/{id}/verify/validate   JSON {"code":...}, OAuth2 token
  POST   /hook/{ref_type}/{ref_id}/   JSON {"url","type"} -> {"hook_id":N}
  GET    /hook/{ref_type}/{ref_id}/   -> [{hook_id,status,type,url}, ...]
  DELETE /hook/{id}                   -> 204
  POST   /hook/{id}/verify/request    -> 204

Paths exactly as written; anything else is a 404 JSON error.  An expired or
unknown token is 401 {"error":"unauthorized","error_description":
"expired_token"}.

The scenario file is JSON, re-read on every request (write it atomically,
e.g. a temporary file and os.replace).  Keys, all optional:

  client_id, client_secret     expected client credentials
  app_id, app_token            the app grant's credentials
  username, password           the password grant's credentials
  codes                        {"HOOK_ID": "CODE"} the code each hook expects
  expires_in                   token lifetime in seconds (default 28800)
  expire_all_tokens_now        any new truthy value (true, 1, 2, ...)
                               expires every access token issued so far,
                               once per distinct value
  reject_refresh_tokens        true: the refresh_token grant answers 400
                               invalid_grant (as after a Podio-side revoke)
  no_refresh_token             true: token answers carry no refresh_token
  reject_all_tokens            true: every API call answers 401
                               expired_token, even with a fresh token
  hang_seconds                 sleep this long before answering ...
  hang_on                      ... these endpoints (default ["validate"]);
                               names: token validate create list delete
                               request
  html_error                   true, or {"status": N, "on": [names]}: answer
                               an HTML page (default 500, every endpoint but
                               token)
  json_error                   {"status": N, "body": {...}, "on": [names]}
                               (default: every endpoint but token)
  rate_limit                   true, or {"limit": N, "remaining": N,
                               "on": [names]}: 420 with X-Rate-Limit-*
  hooks                        seed hooks, read once at start:
                               [{"ref_type","ref_id","hook_id","status",
                                 "type","url"}]
  next_hook_id                 first id for created hooks (read at start;
                               default 1001)

Error injections apply after the token check, as Podio checks the token
first.  Every request is logged as one JSON line: time, method, path,
query, headers (lower-case names), body, and what was answered (status,
response headers, response body, hang).  A hanging answer is logged before
the sleep, so a test sees it even when the client gave up.
"""

import argparse
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDPOINTS = ("token", "validate", "create", "list", "delete", "request")
REF_TYPES = ("app", "app_field", "space")


def is_id(s):
    return s.isdigit() and 0 < len(s) <= 20 and s.isascii()


class State:
    """Tokens and hooks, shared by all handler threads."""

    def __init__(self, scenario_path, log_path):
        self.lock = threading.Lock()
        self.scenario_path = scenario_path
        self.log_path = log_path
        self.tokens = {}  # access token -> {"expires_at", "owner", "refresh"}
        self.refresh = {}  # refresh token -> owner (a dict for "ref")
        self.expire_marker = None
        self.hooks = {}  # hook_id -> {ref_type, ref_id, hook_id, ...}
        self.stopping = threading.Event()
        sc = self.scenario()
        self.next_hook_id = int(sc.get("next_hook_id", 1001))
        for h in sc.get("hooks", []):
            h = dict(h)
            h["hook_id"] = int(h["hook_id"])
            h["ref_id"] = str(h["ref_id"])
            self.hooks[h["hook_id"]] = h
            self.next_hook_id = max(self.next_hook_id, h["hook_id"] + 1)
        # Opened once, appended line by line.
        self.log_file = open(log_path, "a", encoding="utf-8")

    def scenario(self):
        """The scenario as it is now; a half-written file is retried."""
        last = None
        for _ in range(50):
            try:
                with open(self.scenario_path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                return {}
            except ValueError as e:
                last = e
                time.sleep(0.01)
        raise RuntimeError("scenario %s: %s" % (self.scenario_path, last))

    def log(self, entry):
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False)
        with self.lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def apply_expiry(self, sc):
        mark = sc.get("expire_all_tokens_now")
        with self.lock:
            if mark and mark != self.expire_marker:
                self.expire_marker = mark
                for t in self.tokens.values():
                    t["expires_at"] = 0.0


def injected(sc, key, endpoint):
    """The scenario's injection `key` when it applies to endpoint."""
    v = sc.get(key)
    if not v:
        return None
    if not isinstance(v, dict):
        v = {}
    on = v.get("on")
    if on is None:
        on = [e for e in ENDPOINTS if e != "token"]
    if isinstance(on, str):
        on = [on]
    return v if endpoint in on or "all" in on else None


class Answer(Exception):
    """Raised to answer at once: status, JSON (or text) body, headers."""

    def __init__(self, status, body=None, headers=None, ctype=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.ctype = ctype


def jerr(status, error, description, **extra):
    body = {"error": error, "error_description": description,
            "error_detail": None, "error_parameters": {},
            "error_propagate": False}
    body.update(extra)
    return Answer(status, body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-podio/1.0"
    timeout = 30

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # -- plumbing --

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        state = self.server.state
        t = time.time()
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        entry = {
            "time": t,
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
        hang = 0
        try:
            sc = state.scenario()
            state.apply_expiry(sc)
            endpoint, args = self.route(url.path, url.query)
            hang = float(sc.get("hang_seconds") or 0)
            on = sc.get("hang_on", ["validate"])
            if isinstance(on, str):
                on = [on]
            if endpoint not in on and "all" not in on:
                hang = 0
            ans = self.dispatch(sc, endpoint, args, headers, body)
        except Answer as a:
            ans = a
        except Exception as e:  # a bug here must not look like Podio
            ans = Answer(599, {"error": "fake_podio_bug",
                               "error_description": repr(e)})
        payload, ctype = self.encode(ans)
        entry["status"] = ans.status
        entry["response_headers"] = dict(ans.headers)
        entry["response"] = payload.decode("utf-8", "replace")
        if hang > 0:
            entry["hang_seconds"] = hang
        state.log(entry)
        if hang > 0 and state.stopping.wait(hang):
            self.close_connection = True
            return
        try:
            self.send_response(ans.status)
            for k, v in ans.headers.items():
                self.send_header(k, v)
            if ans.status != 204:
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if ans.status != 204 and self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    @staticmethod
    def encode(ans):
        if ans.status == 204:
            return b"", None
        if ans.ctype is not None:
            return ans.body.encode("utf-8"), ans.ctype
        return (json.dumps(ans.body).encode("utf-8"),
                "application/json; charset=utf-8")

    # -- routing --

    def route(self, path, query):
        p = path.split("/")
        m = self.command
        if path == "/oauth/token" and m == "POST":
            return "token", {}
        # /hook/{id}/verify/validate and /hook/{id}/verify/request
        if (len(p) == 5 and p[1] == "hook" and is_id(p[2])
                and p[3] == "verify" and m == "POST"):
            if p[4] == "validate":
                return "validate", {"hook_id": int(p[2])}
            if p[4] == "request":
                return "request", {"hook_id": int(p[2])}
        # /hook/{ref_type}/{ref_id}/  (with the trailing slash)
        if (len(p) == 5 and p[1] == "hook" and p[2] in REF_TYPES
                and is_id(p[3]) and p[4] == ""):
            if m == "POST":
                return "create", {"ref_type": p[2], "ref_id": p[3]}
            if m == "GET":
                return "list", {"ref_type": p[2], "ref_id": p[3]}
        # /hook/{id}  (no trailing slash)
        if len(p) == 3 and p[1] == "hook" and is_id(p[2]) and m == "DELETE":
            return "delete", {"hook_id": int(p[2])}
        raise jerr(404, "not_found", "No such endpoint: %s %s" % (m, path))

    def dispatch(self, sc, endpoint, args, headers, body):
        if endpoint != "token":
            self.authorize(headers)
            if sc.get("reject_all_tokens"):
                raise jerr(401, "unauthorized", "expired_token")
        for key in ("rate_limit", "json_error", "html_error"):
            inj = injected(sc, key, endpoint)
            if inj is None:
                continue
            if key == "rate_limit":
                raise Answer(
                    420,
                    {"error": "rate_limit",
                     "error_description":
                         "You have hit the rate limit. Please wait 3600 "
                         "seconds before trying again"},
                    {"X-Rate-Limit-Limit": str(inj.get("limit", 250)),
                     "X-Rate-Limit-Remaining": str(inj.get("remaining", 0))})
            if key == "json_error":
                raise Answer(int(inj.get("status", 400)),
                             inj.get("body", {"error": "invalid_value",
                                              "error_description": "x"}))
            status = int(inj.get("status", 500))
            page = ("<!DOCTYPE html>\n<html><head><title>%d Internal "
                    "Server Error</title></head>\n<body><h1>Oops</h1>\n"
                    "<p>Something went wrong at Podio.</p></body></html>\n"
                    % status)
            raise Answer(status, page, ctype="text/html; charset=utf-8")
        if endpoint == "token":
            return self.token(sc, headers, body)
        return getattr(self, "ep_" + endpoint)(sc, args, headers, body)

    # -- OAuth --

    def token(self, sc, headers, body):
        state = self.server.state
        if "authorization" in headers:
            raise jerr(400, "invalid_request",
                       "No Authorization header allowed on /oauth/token")
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != \
                "application/x-www-form-urlencoded":
            raise jerr(400, "invalid_request",
                       "The body must be application/x-www-form-urlencoded")
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"),
                                           keep_blank_values=True,
                                           strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            raise jerr(400, "invalid_request", "Malformed form body")
        form = {}
        for k, v in pairs:
            if k in form:
                raise jerr(400, "invalid_request", "Duplicate parameter " + k)
            form[k] = v
        if (form.get("client_id") != str(sc.get("client_id"))
                or form.get("client_secret") != str(sc.get("client_secret"))):
            raise jerr(401, "invalid_client",
                       "Invalid client_id or client_secret")
        gt = form.get("grant_type")
        expect = {"app": ("app_id", "app_token"),
                  "password": ("username", "password"),
                  "refresh_token": ("refresh_token",)}
        if gt not in expect:
            raise jerr(400, "unsupported_grant_type",
                       "Unsupported grant_type %r" % gt)
        allowed = set(expect[gt]) | {"grant_type", "client_id",
                                      "client_secret"}
        extra = sorted(set(form) - allowed)
        if extra:
            raise jerr(400, "invalid_request",
                       "Unexpected parameters: " + ", ".join(extra))
        if gt == "app":
            if (sc.get("app_id") is None
                    or form.get("app_id") != str(sc.get("app_id"))
                    or form.get("app_token") != str(sc.get("app_token"))):
                raise jerr(400, "invalid_grant", "Invalid app_id or app_token")
            owner = {"type": "app", "id": int(form["app_id"])}
        elif gt == "password":
            if (sc.get("username") is None
                    or form.get("username") != str(sc.get("username"))
                    or form.get("password") != str(sc.get("password"))):
                raise jerr(400, "invalid_grant",
                           "Invalid username or password")
            owner = {"type": "user", "id": 7}
        else:
            with state.lock:
                owner = state.refresh.get(form.get("refresh_token"))
            if owner is None or sc.get("reject_refresh_tokens"):
                raise jerr(400, "invalid_grant", "Invalid refresh_token")
        ttl = int(sc.get("expires_in", 28800))
        access = "tok-" + secrets.token_hex(12)
        refresh = (form["refresh_token"] if gt == "refresh_token"
                   else "ref-" + secrets.token_hex(12))
        with state.lock:
            state.tokens[access] = {"expires_at": time.time() + ttl,
                                    "owner": owner, "refresh": refresh}
            state.refresh[refresh] = owner
        ans = {"access_token": access, "token_type": "bearer",
               "expires_in": ttl, "refresh_token": refresh,
               "scope": "global:all", "ref": owner}
        if sc.get("no_refresh_token"):
            del ans["refresh_token"]
            with state.lock:
                del state.refresh[refresh]
        return Answer(200, ans)

    def authorize(self, headers):
        state = self.server.state
        auth = headers.get("authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme != "OAuth2" or not tok or " " in tok:
            raise jerr(401, "unauthorized",
                       "Missing or malformed Authorization header; expected "
                       "'OAuth2 <access_token>'")
        with state.lock:
            t = state.tokens.get(tok)
            ok = t is not None and t["expires_at"] > time.time()
        if not ok:
            raise jerr(401, "unauthorized", "expired_token")

    @staticmethod
    def json_body(headers, body):
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise jerr(400, "invalid_value",
                       "Content-Type must be application/json, got %r"
                       % ctype)
        try:
            j = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise jerr(400, "invalid_value", "The body is not valid JSON")
        if not isinstance(j, dict):
            raise jerr(400, "invalid_value", "The body must be an object")
        return j

    # -- hooks --

    def ep_validate(self, sc, args, headers, body):
        j = self.json_body(headers, body)
        code = j.get("code")
        if not isinstance(code, str):
            raise jerr(400, "invalid_value", "code is required")
        want = sc.get("codes", {}).get(str(args["hook_id"]))
        if want is None:
            raise jerr(404, "not_found", "Object not found")
        if code != want:
            raise jerr(400, "invalid_value", "Invalid code")
        state = self.server.state
        with state.lock:
            h = state.hooks.get(args["hook_id"])
            if h is not None:
                h["status"] = "active"
        return Answer(204)

    def ep_create(self, sc, args, headers, body):
        j = self.json_body(headers, body)
        if not isinstance(j.get("url"), str) or not j["url"]:
            raise jerr(400, "invalid_value", "url is required")
        if not isinstance(j.get("type"), str) or not j["type"]:
            raise jerr(400, "invalid_value", "type is required")
        state = self.server.state
        with state.lock:
            hid = state.next_hook_id
            state.next_hook_id += 1
            state.hooks[hid] = {"ref_type": args["ref_type"],
                                "ref_id": args["ref_id"], "hook_id": hid,
                                "status": "inactive", "type": j["type"],
                                "url": j["url"]}
        return Answer(200, {"hook_id": hid})

    def ep_list(self, sc, args, headers, body):
        state = self.server.state
        with state.lock:
            out = [{"hook_id": h["hook_id"], "status": h["status"],
                    "type": h["type"], "url": h["url"]}
                   for h in sorted(state.hooks.values(),
                                   key=lambda h: h["hook_id"])
                   if h["ref_type"] == args["ref_type"]
                   and h["ref_id"] == args["ref_id"]]
        return Answer(200, out)

    def ep_delete(self, sc, args, headers, body):
        state = self.server.state
        with state.lock:
            if state.hooks.pop(args["hook_id"], None) is None:
                raise jerr(404, "not_found", "Object not found")
        return Answer(204)

    def ep_request(self, sc, args, headers, body):
        state = self.server.state
        with state.lock:
            known = args["hook_id"] in state.hooks
        if not known and str(args["hook_id"]) not in sc.get("codes", {}):
            raise jerr(404, "not_found", "Object not found")
        return Answer(204)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, state):
        self.ctx = ctx
        self.state = state
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread.
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.state.log({"time": time.time(), "method": None,
                            "path": None, "tls_error": str(e)})
            return
        try:
            tls.settimeout(Handler.timeout)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--port-file")
    o = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(o.cert, o.key)
    state = State(o.scenario, o.log)
    srv = Server(("127.0.0.1", o.port), ctx, state)

    def stop(signum, frame):
        state.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = srv.server_address[1]
    if o.port_file:
        tmp = o.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, o.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
        state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
