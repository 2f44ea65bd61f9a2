#!/usr/bin/env python3
"""podio-hook drain and status, end to end (SPEC sections 5 and 8).

    python3 tests/drain/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                               [-v]

Every case gets its own spool under one temporary directory.  Spools are
filled by the real binary run as a CGI program, or with lines written
byte for byte where a case needs exact bytes.  Prints "ok - name" or
"FAIL - name: why" per case ("skip - name: why" for a case that cannot
run here) and, as its last line, "N passed, M failed, K skipped"
(tests/lib/harness.py's Suite, which also gives the options); exits 1
when a case failed.  The temporary directory is removed when everything
passed (kept, and named, otherwise).

Needs python3, curl, lighttpd (mod_fastcgi) and, for the Redis recipe,
redis-server and redis-tools (skipped with a message when absent).
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, Skip, check, eq  # noqa: E402
from spool import (OLD, Lighttpd, Spool, Workspace, lines_of,  # noqa: E402
                   make_line, post_many, read_calls, recorder, run_suite,
                   script, wait_for)


def ids_of(lines):
    return [json.loads(l)['id'] for l in lines]


# --------------------------------------------------------------------------
# Cases

def case_print_mode(h):
    sp = Spool(h, 'print')
    # A work file a killed drain left behind: its first event was handed
    # over (the state says so), its second was not.
    left1 = make_line('left-1', 'item.create', {'item_id': '1'}, OLD)
    left2 = make_line('left-2', 'item.create', {'item_id': '2'}, OLD)
    work = 'item.create.jsonl.claim-0000000000000001'
    sp.write(work, left1 + left2)
    sp.write(work + '.state', b'offset %d\n' % len(left1))
    # Pending: an old line written by hand, then two the receiver wrote.
    old = make_line('old-1', 'item.create',
                    {'item_id': '3', 'note': 'caf\u00e9 "q" \\ \u2028'}, OLD)
    sp.write('item.create.jsonl', old)
    p2 = sp.post([('type', 'item.create'), ('item_id', '4'), ('hook_id', '9')])
    p3 = sp.post([('type', 'item.create'), ('item_id', '5'),
                  ('external_id', 'x\ty')])
    c1 = sp.post([('type', 'comment.create'), ('item_id', '4'),
                  ('comment_id', '77')])
    c2 = sp.post([('type', 'comment.create'), ('item_id', '5'),
                  ('comment_id', '78')])

    j, rc = sp.status(want_exit=0)
    t = j['types']
    eq(sorted(t), ['comment.create', 'item.create'], 'status types')
    ic = t['item.create']
    eq((ic['pending'], ic['in_progress'], ic['failed'], ic['quarantined']),
       (3, 1, 0, 0), 'item.create pending/in_progress/failed/quarantined')
    check(ic['oldest_pending_age_s'] > 365 * 86400,
          'oldest_pending_age_s %r for a line received in 2020',
          ic['oldest_pending_age_s'])
    cc = t['comment.create']
    eq((cc['pending'], cc['in_progress'], cc['failed'], cc['quarantined']),
       (2, 0, 0, 0), 'comment.create counts')
    check(0 < cc['oldest_pending_age_s'] < 120,
          'oldest_pending_age_s %r for a line received just now',
          cc['oldest_pending_age_s'])
    eq(set(ic), {'pending', 'oldest_pending_age_s', 'in_progress', 'failed',
                 'quarantined'}, 'status keys')

    r = sp.drain()
    eq(r.returncode, 0, 'drain exit status')
    eq(r.stderr, b'', 'drain stderr without -v')
    got = lines_of(r.stdout)
    eq(sorted(got), sorted([left2, old, p2, p3, c1, c2]), 'lines printed')
    # Oldest first: the earlier claim before the fresh file of its type,
    # and each file in its order.
    eq([l for l in got if b'"item.create"' in l], [left2, old, p2, p3],
       'item.create lines in order')
    eq([l for l in got if b'"comment.create"' in l], [c1, c2],
       'comment.create lines in order')
    sp.expect_empty()
    j, rc = sp.status(want_exit=0)
    for name, c in j['types'].items():
        eq((c['pending'], c['in_progress'], c['failed'], c['quarantined'],
            c['oldest_pending_age_s']), (0, 0, 0, 0, 0),
           'status of %s after the drain' % name)

    # Nothing more to hand over; -v reports on stderr only.
    r = sp.drain('-v')
    eq((r.returncode, r.stdout), (0, b''), 'second drain')
    check(b'0 handled' in r.stderr, 'drain -v summary: %r', r.stderr)
    p4 = sp.post([('type', 'item.delete'), ('item_id', '6')])
    r = sp.drain('-v')
    eq((r.returncode, r.stdout), (0, p4), 'drain -v of one event')
    check(b'1 handled' in r.stderr, 'drain -v summary: %r', r.stderr)


def case_oldest_age_long_first_line(h):
    """oldest_pending_age_s when the oldest event is a long line."""
    sp = Spool(h, 'age-long')
    sp.write('item.update.jsonl',
             make_line('big', 'item.update', {'item_id': '1',
                                              'blob': 'x' * 10000}, OLD)
             + make_line('small', 'item.update', {'item_id': '2'}))
    c = sp.counts('item.update', want_exit=0)
    eq(c['pending'], 2, 'pending')
    check(c['oldest_pending_age_s'] > 365 * 86400,
          'oldest_pending_age_s is %r for an event received in 2020 whose '
          'line is 10 KB long', c['oldest_pending_age_s'])


def case_type_glob(h):
    sp = Spool(h, 'glob')
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    b = sp.post([('type', 'comment.create'), ('item_id', '1'),
                 ('comment_id', '2')])
    d = sp.post([('type', 'comment.delete'), ('comment_id', '3')])
    r = sp.drain('--type', 'comment.*')
    eq(r.returncode, 0, 'exit')
    eq(sorted(lines_of(r.stdout)), sorted([b, d]), 'comment.* lines')
    eq(sp.read('item.create.jsonl'), a, 'item.create left pending')
    r = sp.drain()
    eq(r.stdout, a, 'the rest')


def case_any_wellformed_type(h):
    """A well-formed type the receiver accepts is drained and counted."""
    sp = Spool(h, 'odd-type')
    a = sp.post([('type', 'custom.jsonlx'), ('item_id', '1')])
    b = sp.post([('type', 'item.jsonl'), ('item_id', '2')])
    eq(sorted(n for n in os.listdir(sp.spool) if n.endswith('.jsonl')),
       ['custom.jsonlx.jsonl', 'item.jsonl.jsonl'], 'spool files')
    j, _ = sp.status()
    r = sp.drain()
    problems = []
    if sorted(lines_of(r.stdout)) != sorted([a, b]):
        problems.append('drain handed over %d of the 2 lines and left %s'
                        % (len(lines_of(r.stdout)), sp.leftovers()))
    if sorted(j['types']) != ['custom.jsonlx', 'item.jsonl']:
        problems.append('status listed types %s' % sorted(j['types']))
    check(not problems, '; '.join(problems))


def case_usage(h):
    sp = Spool(h, 'usage')
    for args in (['--exec', 'true', '--batch', 'true'], ['--max-attempts', '0'],
                 ['--timeout', 'x'], ['--limit', '-1'], ['--bogus'],
                 ['--exec'], ['--exec', ''], ['--batch', ' \t']):
        r = sp.drain(*args)
        eq(r.returncode, 2, 'drain %s exit status' % ' '.join(args))
        check(r.stderr.strip() != b'', 'drain %s: no message', args)
    # An unset $HANDLER in a crontab: an error, not every event handled.
    line = sp.post([('type', 'item.create'), ('item_id', '1')])
    for flag in ('--exec', '--batch'):
        r = sp.drain(flag, '')
        eq((r.returncode, r.stderr),
           (2, b'podio-hook: drain: %s wants a command, not an empty '
            b'string\n' % flag.encode()), 'drain %s ""' % flag)
    eq(sp.drain().stdout, line, 'the event, still pending')
    r = sp.run(['status', '--bogus'])
    eq(r.returncode, 2, 'status --bogus exit status')


def case_exec_env_and_stdin(h):
    sp = Spool(h, 'exec')
    calls, handler = recorder(sp)
    a = sp.post([('type', 'item.create'), ('item_id', '101'),
                 ('item_revision_id', '5'), ('external_id', 'ext one'),
                 ('hook_id', '9')])
    b = sp.post([('type', 'item.create'), ('item_id', '102'),
                 ('note', 'caf\u00e9 "q" \\ $HOME `x` \u2028')],
                query='app_ref=7')
    c = sp.post([('type', 'comment.create'), ('item_id', '103'),
                 ('comment_id', '55')])
    r = sp.drain('--exec', handler)
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    got = read_calls(calls)
    eq(sorted(x[0] for x in got), sorted([a, b, c]), 'handler stdin')
    by_line = {x[0]: x[1] for x in got}
    order = [x[0] for x in got]
    check(order.index(a) < order.index(b), 'item.create events out of order')
    for line in (a, b, c):
        ev = json.loads(line)
        env = by_line[line]
        eq(env.get('PODIO_EVENT_ID'), ev['id'], 'PODIO_EVENT_ID')
        eq(env.get('PODIO_EVENT_TYPE'), ev['type'], 'PODIO_EVENT_TYPE')
        for k, v in ev['params'].items():
            eq(env.get('PODIO_PARAM_' + k.upper()), v,
               'PODIO_PARAM_%s' % k.upper())
        check('PODIO_PARAMS_OMITTED' not in env, 'nothing omitted')
    eq(by_line[a].get('PODIO_PARAM_ITEM_REVISION_ID'), '5',
       'PODIO_PARAM_ITEM_REVISION_ID')
    eq(by_line[b].get('PODIO_PARAM_APP_REF'), '7', 'query param in env')
    eq(by_line[c].get('PODIO_PARAM_COMMENT_ID'), '55',
       'PODIO_PARAM_COMMENT_ID')
    check('PODIO_PARAM_COMMENT_ID' not in by_line[a],
          'env leaks between events')
    sp.expect_empty()


def state_of(sp):
    works = sp.work_files()
    eq(len(works), 1, 'work files')
    with open(sp.path(works[0] + '.state'), 'rb') as f:
        return works[0], f.read()


def case_exec_failure_retry_dead_letter(h):
    sp = Spool(h, 'fail')
    fail_file = os.path.join(sp.dir, 'fail-ids')
    calls, handler = recorder(sp, fail_file)
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    # B is the one that fails; control characters and UTF-8 check that it
    # comes back from failed/ byte for byte.
    b = sp.post([('type', 'item.create'), ('item_id', '2'), ('hook_id', '8'),
                 ('note', 'l1\nl2\t\x01\x1f\x7f caf\u00e9 \u2028 '
                  '\U0001F600 "q" \\ / </script>')])
    c = sp.post([('type', 'item.create'), ('item_id', '3')])
    b_id = json.loads(b)['id']
    with open(fail_file, 'w') as f:
        f.write(b_id + '\n')
    argv = ['--exec', handler, '--max-attempts', '3']

    r = sp.drain(*argv)
    eq(r.returncode, 1, 'run 1 exit status (one left for retry)')
    eq([x[0] for x in read_calls(calls)], [a, b, c], 'run 1 offered')
    work, st = state_of(sp)
    eq(st, b'offset %d\nretry %d 1 "exit status 3"\n'
       % (len(a + b + c), len(a)), 'state after run 1')
    cnt = sp.counts('item.create', want_exit=0)
    eq((cnt['pending'], cnt['in_progress'], cnt['failed']), (0, 1, 0),
       'status after run 1')

    d = sp.post([('type', 'item.create'), ('item_id', '4')])
    r = sp.drain(*argv)
    eq(r.returncode, 1, 'run 2 exit status')
    eq([x[0] for x in read_calls(calls)][3:], [b, d], 'run 2 offered')
    eq(sp.read(work + '.state'), b'offset %d\nretry %d 2 "exit status 3"\n'
       % (len(a + b + c), len(a)), 'state after run 2')
    eq(len(sp.work_files()), 1, 'work files after run 2')

    r = sp.drain(*argv)
    eq(r.returncode, 1, 'run 3 exit status (one failed)')
    eq([x[0] for x in read_calls(calls)][5:], [b], 'run 3 offered')
    eq(sp.leftovers(), ['failed/item.create.jsonl'], 'files after run 3')
    dead = sp.read('failed', 'item.create.jsonl')
    check(dead.endswith(b'\n') and dead.count(b'\n') == 1,
          'failed file %r', dead)
    dj = json.loads(dead)
    bj = json.loads(b)
    check(isinstance(dj.get('attempts'), int) and dj['attempts'] == 3,
          'attempts %r', dj.get('attempts'))
    eq(dj.get('last_error'), 'exit status 3', 'last_error')
    eq({k: v for k, v in dj.items() if k not in ('attempts', 'last_error')},
       bj, 'dead letter otherwise')
    eq(list(dj)[:len(bj)], list(bj), 'dead letter key order')
    cnt = sp.counts('item.create', want_exit=1)
    eq((cnt['pending'], cnt['in_progress'], cnt['failed']), (0, 0, 1),
       'status after run 3')

    r = sp.drain(*argv)
    eq((r.returncode, len(read_calls(calls))), (0, 6),
       'a drain with nothing to do')

    # --retry-failed: back into the spool as it was, and handed over.
    os.unlink(fail_file)
    r = sp.drain('--retry-failed', *argv)
    eq(r.returncode, 0, '--retry-failed exit status (stderr %r)'
       % r.stderr[-300:])
    got = read_calls(calls)[6:]
    eq([x[0] for x in got], [b], '--retry-failed handed over')
    eq(got[0][1].get('PODIO_PARAM_NOTE'), bj['params']['note'],
       'PODIO_PARAM_NOTE')
    sp.expect_empty()
    sp.counts('item.create', want_exit=0)


def case_exec_dead_letter_at_once(h):
    """--max-attempts 1: the first failure is final; exit 1."""
    sp = Spool(h, 'fail-once')
    a = sp.post([('type', 'task.create'), ('task_id', '1')])
    b = sp.post([('type', 'task.create'), ('task_id', '2')])
    r = sp.drain('--exec', 'test "$PODIO_PARAM_TASK_ID" != 1', '--max-attempts', '1')
    eq(r.returncode, 1, 'exit status')
    eq(sp.leftovers(), ['failed/task.create.jsonl'], 'files')
    dj = json.loads(sp.read('failed', 'task.create.jsonl'))
    eq((dj['id'], dj['attempts'], dj['last_error']),
       (json.loads(a)['id'], 1, 'exit status 1'), 'dead letter')
    del b


def case_retry_failed_long_line(h):
    """--retry-failed brings back a dead letter longer than 64 KiB."""
    sp = Spool(h, 'retry-long')
    # Within max_body (65536): 21000 escaped control characters make a
    # line of about 126 KB, each one \\u0001 in the JSON.
    pairs = [('type', 'item.create'), ('item_id', '1'),
             ('note', '\x01' * 21000)]
    big = sp.post(pairs)
    check(len(big) > 100000, 'line is %d bytes', len(big))
    small = sp.post([('type', 'item.create'), ('item_id', '2')])
    r = sp.drain('--exec', 'exit 5', '--max-attempts', '1')
    eq(r.returncode, 1, 'exit status')
    dead = lines_of(sp.read('failed', 'item.create.jsonl'))
    eq(len(dead), 2, 'dead letters')
    r = sp.drain('--retry-failed')
    got = lines_of(r.stdout)
    check([len(l) for l in got] == [len(big), len(small)],
          '--retry-failed handed over lines of %s bytes, want %s; files '
          'left: %s', [len(l) for l in got], [len(big), len(small)],
          sp.leftovers())
    eq(got, [big, small], 'lines --retry-failed handed over')
    eq(r.returncode, 0, 'exit status')


def case_exec_timeout(h):
    sp = Spool(h, 'timeout')
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    token = '30.%06d' % random.randrange(10 ** 6)
    argv = ['--exec', 'sleep %s' % token, '--timeout', '1',
            '--max-attempts', '2']
    t0 = time.monotonic()
    r = sp.drain(*argv)
    took = time.monotonic() - t0
    eq(r.returncode, 1, 'exit status')
    check(0.9 < took < 5, 'drain took %.1f s with --timeout 1', took)
    work, st = state_of(sp)
    m = re.fullmatch(rb'offset (\d+)\nretry 0 1 ("[^\n]*")\n', st)
    check(m is not None, 'state %r', st)
    eq(int(m.group(1)), len(a), 'offset')
    err = json.loads(m.group(2))
    check('timed out' in err or 'timeout' in err,
          'last_error %r does not mention the timeout', err)
    # The handler is gone, not left running.
    time.sleep(0.1)
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    cmd = f.read()
            except OSError:
                continue
            check(token.encode() not in cmd, 'handler still running: %r',
                  cmd)
    r = sp.drain(*argv)
    eq(r.returncode, 1, 'second run exit status')
    dj = json.loads(sp.read('failed', 'item.create.jsonl'))
    eq(dj['attempts'], 2, 'attempts')
    check('timed out' in dj['last_error'] or 'timeout' in dj['last_error'],
          'last_error %r', dj['last_error'])
    eq(sp.leftovers(), ['failed/item.create.jsonl'], 'files')


def batch_recorder(sp, fail_flag):
    calls = os.path.join(sp.dir, 'batches')
    os.mkdir(calls)
    return calls, script(sp, 'batch.sh', (
        'd=%s\n'
        'n=$(printf %%05d $(ls "$d" | wc -l))\n'
        'cat > "$d/$n"\n'
        'if [ -f %s ] && grep -q \'"type":"comment.create"\' "$d/$n"; then\n'
        '  exit 4\n'
        'fi\n' % (calls, fail_flag)))


def read_batches(calls):
    out = []
    for n in sorted(os.listdir(calls)):
        with open(os.path.join(calls, n), 'rb') as f:
            out.append(f.read())
    return out


def case_batch(h):
    sp = Spool(h, 'batch')
    flag = os.path.join(sp.dir, 'fail-comments')
    calls, handler = batch_recorder(sp, flag)
    left = make_line('left-1', 'item.create', {'item_id': '1'}, OLD)
    sp.write('item.create.jsonl.claim-0000000000000001', left)
    i1 = sp.post([('type', 'item.create'), ('item_id', '2')])
    i2 = sp.post([('type', 'item.create'), ('item_id', '3')])
    c1 = sp.post([('type', 'comment.create'), ('item_id', '2'),
                  ('comment_id', '9')])
    c2 = sp.post([('type', 'comment.create'), ('item_id', '3'),
                  ('comment_id', '10')])
    open(flag, 'w').close()
    r = sp.drain('--batch', handler)
    eq(r.returncode, 1, 'run 1 exit status (comment batch failed)')
    got = read_batches(calls)
    eq(sorted(got), sorted([left, i1 + i2, c1 + c2]),
       'one batch per claimed file')
    check(got.index(left) < got.index(i1 + i2),
          'the earlier claim was not handed over first')
    work, st = state_of(sp)
    check(work.startswith('comment.create.jsonl.claim-'), 'work %s', work)
    eq(st, b'offset %d\nretry 0 1 "exit status 4"\nretry %d 1 '
       b'"exit status 4"\n' % (len(c1 + c2), len(c1)), 'state')
    cnt = sp.counts('comment.create', want_exit=0)
    eq(cnt['in_progress'], 2, 'in_progress')

    r = sp.drain('--batch', handler)
    eq(r.returncode, 1, 'run 2 exit status')
    eq(read_batches(calls)[3:], [c1 + c2], 'run 2 offered')
    work, st = state_of(sp)
    eq(st, b'offset %d\nretry 0 2 "exit status 4"\nretry %d 2 '
       b'"exit status 4"\n' % (len(c1 + c2), len(c1)), 'state after run 2')

    os.unlink(flag)
    c3 = sp.post([('type', 'comment.create'), ('item_id', '4'),
                  ('comment_id', '11')])
    r = sp.drain('--batch', handler)
    eq(r.returncode, 0, 'run 3 exit status')
    eq(read_batches(calls)[4:], [c1 + c2, c3], 'run 3 offered')
    sp.expect_empty()
    # A batch handler knows its type and the drain's config.
    seen = os.path.join(sp.dir, 'batch-env')
    sp.post([('type', 'task.create'), ('task_id', '5')])
    r = sp.drain('--batch', 'cat >/dev/null; printf "%%s %%s" '
                 '"$PODIO_EVENT_TYPE" "$PODIO_HOOK_CONFIG" > %s' % seen)
    eq(r.returncode, 0, 'run 4 exit status')
    with open(seen) as f:
        eq(f.read(), 'task.create %s' % sp.ini, 'the batch environment')


def case_batch_dead_letters(h):
    sp = Spool(h, 'batch-dead')
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    b = sp.post([('type', 'item.create'), ('item_id', '2')])
    r = sp.drain('--batch', 'cat >/dev/null; exit 2', '--max-attempts', '1')
    eq(r.returncode, 1, 'exit status')
    dead = lines_of(sp.read('failed', 'item.create.jsonl'))
    eq([json.loads(l)['id'] for l in dead], ids_of([a, b]), 'dead letters')
    for l in dead:
        j = json.loads(l)
        eq((j['attempts'], j['last_error']), (1, 'exit status 2'), 'fields')
    eq(sp.leftovers(), ['failed/item.create.jsonl'], 'files')


QUARANTINE_BAD = [b'{not json}\n', b'[1,2]\n', b'"just a string"\n',
                  b'{"id":"torn","type":"item.create"']


def quarantine_spool(h, name):
    sp = Spool(h, name)
    v = [make_line('v%d' % i, 'item.create', {'item_id': str(i)})
         for i in range(3)]
    data = (v[0] + QUARANTINE_BAD[0] + v[1] + QUARANTINE_BAD[1]
            + QUARANTINE_BAD[2] + v[2] + QUARANTINE_BAD[3])
    sp.write('item.create.jsonl', data)
    return sp, v


def check_quarantine(sp):
    eq(sp.read('bad', 'item.create.jsonl'),
       b''.join(QUARANTINE_BAD) + b'\n', 'bad/item.create.jsonl')
    eq(sp.leftovers(), ['bad/item.create.jsonl'], 'files')
    cnt = sp.counts('item.create', want_exit=1)
    eq((cnt['pending'], cnt['in_progress'], cnt['failed'],
        cnt['quarantined']), (0, 0, 0, 4), 'status counts')


def case_quarantine_print(h):
    sp, v = quarantine_spool(h, 'quarantine-print')
    c = sp.counts('item.create', want_exit=0)
    eq(c['pending'], 7, 'pending before (a torn line counts)')
    r = sp.drain()
    eq(r.stdout, b''.join(v), 'lines handed over')
    eq(r.returncode, 1, 'exit status')
    check_quarantine(sp)
    # Quarantine never deletes: later runs keep what is there.
    sp.write('item.create.jsonl', b'also bad\n')
    r = sp.drain()
    eq((r.returncode, r.stdout), (1, b''), 'second run')
    eq(sp.read('bad', 'item.create.jsonl'),
       b''.join(QUARANTINE_BAD) + b'\nalso bad\n', 'bad file after two runs')


def case_quarantine_exec(h):
    sp, v = quarantine_spool(h, 'quarantine-exec')
    calls, handler = recorder(sp)
    r = sp.drain('--exec', handler)
    eq([x[0] for x in read_calls(calls)], v, 'handed over')
    eq(r.returncode, 1, 'exit status')
    check_quarantine(sp)


def case_quarantine_batch(h):
    sp, v = quarantine_spool(h, 'quarantine-batch')
    calls = os.path.join(sp.dir, 'batch.out')
    r = sp.drain('--batch', 'cat > %s' % calls)
    with open(calls, 'rb') as f:
        eq(f.read(), b''.join(v), 'batch input')
    eq(r.returncode, 1, 'exit status')
    check_quarantine(sp)


def case_limit(h):
    sp = Spool(h, 'limit')
    items = [make_line('i%02d' % i, 'item.create', {'item_id': str(i)})
             for i in range(10)]
    sp.write('item.create.jsonl', b''.join(items))
    r = sp.drain('--limit', '3')
    eq((r.returncode, r.stdout), (0, b''.join(items[:3])), 'first --limit 3')
    cnt = sp.counts('item.create', want_exit=0)
    eq((cnt['pending'], cnt['in_progress']), (0, 7), 'status after --limit')
    more = sp.post([('type', 'item.create'), ('item_id', '99')])
    r = sp.drain('--limit', '3')
    eq(r.stdout, b''.join(items[3:6]), 'second --limit 3')
    r = sp.drain('--limit', '0')
    eq(r.stdout, b'', '--limit 0')
    calls, handler = recorder(sp)
    r = sp.drain('--exec', handler, '--limit', '2')
    eq([x[0] for x in read_calls(calls)], items[6:8], '--exec --limit 2')
    r = sp.drain()
    eq((r.returncode, r.stdout), (0, b''.join(items[8:]) + more), 'the rest')
    sp.expect_empty()


def case_lock(h):
    sp = Spool(h, 'lock')
    sp.post([('type', 'item.create'), ('item_id', '1')])
    started = os.path.join(sp.dir, 'started')
    done = os.path.join(sp.dir, 'done')
    slow = sp.popen_drain('--exec', 'touch %s; sleep 2; touch %s'
                          % (started, done))
    t0 = time.monotonic()
    wait_for(lambda: os.path.exists(started), 5, 'the slow handler')
    late = sp.post([('type', 'item.create'), ('item_id', '2')])
    t1 = time.monotonic()
    r = sp.drain(timeout=10)
    took = time.monotonic() - t1
    eq((r.returncode, r.stdout, r.stderr), (0, b'', b''),
       'second drain (exit, stdout, stderr)')
    check(took < 1, 'second drain took %.1f s', took)
    eq(sp.read('item.create.jsonl'), late, 'pending after the second drain')
    r = sp.drain('-v')
    eq(r.returncode, 0, 'drain -v exit status')
    check(b'another drain' in r.stderr, 'drain -v said %r', r.stderr)
    check(slow.poll() is None, 'the slow drain ended early')
    r = sp.drain('--wait', timeout=15)
    waited = time.monotonic() - t0
    # The lock is the slow drain's until its handler is done (the process
    # may still be exiting: under ASan the leak check runs after that).
    check(os.path.exists(done), 'drain --wait returned while the slow '
          "drain's handler still ran")
    eq(slow.wait(), 0, 'slow drain exit status')
    check(waited > 1.5, 'drain --wait returned after %.1f s', waited)
    eq((r.returncode, r.stdout), (0, late), 'drain --wait output')
    sp.expect_empty()


def case_crash(h):
    sp = Spool(h, 'crash')
    n = 80
    ids = ['e%03d' % i for i in range(n)]
    half = n // 2
    sp.write('item.create.jsonl', b''.join(
        make_line(i, 'item.create', {'item_id': i[1:]}) for i in ids[:half]))
    sp.write('comment.create.jsonl', b''.join(
        make_line(i, 'comment.create', {'comment_id': i[1:]})
        for i in ids[half:]))
    out = os.path.join(sp.dir, 'out')
    open(out, 'w').close()
    cmd = 'printf "%%s\\n" "$PODIO_EVENT_ID" >> %s; sleep 0.05' % out
    rnd = random.Random(os.getpid())
    in_flight = []
    kills = 0
    for _ in range(8):
        p = sp.popen_drain('--exec', cmd)
        time.sleep(rnd.uniform(0.05, 0.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        time.sleep(0.12)  # an orphaned handler finishes its line
        with open(out) as f:
            seen = f.read().split()
        if seen:
            in_flight.append(seen[-1])
    r = sp.drain('--exec', cmd, timeout=60)
    eq(r.returncode, 0, 'final drain exit status (stderr %r)'
       % r.stderr[-300:])
    with open(out) as f:
        seen = f.read().split()
    missing = sorted(set(ids) - set(seen))
    eq(missing, [], 'events never handed over')
    dups = {i: seen.count(i) for i in set(seen) if seen.count(i) > 1}
    check(sum(c - 1 for c in dups.values()) <= kills,
          '%d duplicates after %d kills: %r',
          sum(c - 1 for c in dups.values()), kills, dups)
    check(set(dups) <= set(in_flight),
          'duplicates %r were not in flight at a kill (%r)', dups, in_flight)
    eq(sorted(set(seen)), ids, 'handed over ids')
    sp.expect_empty()
    h.note('crash: %d kills, %d duplicates' % (kills, len(dups)))


def case_crash_between_rename_and_lock(h):
    """A drain killed right after its rename, while a writer that opened
    the file before the rename still holds the lock mid-append: the next
    drain must not lose the writer's line (SPEC section 5: nothing is
    lost when a drain is killed at any point)."""
    sp = Spool(h, 'crash-rename')
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    b = make_line('late', 'item.create', {'item_id': '2'})
    pending = sp.path('item.create.jsonl')
    r_fd, w_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer, following the writer protocol
        try:
            os.close(r_fd)
            import fcntl
            fd = os.open(pending, os.O_RDWR | os.O_APPEND)
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            ps = os.stat(pending)
            assert (st.st_ino, st.st_dev) == (ps.st_ino, ps.st_dev)
            os.write(w_fd, b'L')
            time.sleep(0.8)  # e.g. fsync of a new file's directory
            os.write(fd, b)
            os.close(fd)
            os._exit(0)
        except BaseException:
            os._exit(3)
    os.close(w_fd)
    eq(os.read(r_fd, 1), b'L', 'writer ready')
    os.close(r_fd)
    # What claim_take did before its drain was killed.
    work = 'item.create.jsonl.claim-%016d' % int(time.time() * 1e6)
    os.rename(pending, sp.path(work))
    r = sp.drain(timeout=10)
    _, status = os.waitpid(pid, 0)
    eq(status, 0, 'writer exit status')
    got = r.stdout
    if sp.exists(work):
        got += sp.drain().stdout
    eq(got, a + b, 'lines handed over (the writer appended its line to '
       'the claimed file while holding the lock)')


def case_orphan_handler_overlap(h):
    """After kill -9 of a drain, its handler may still be running; the next
    drain must not hand the same event over at the same time."""
    sp = Spool(h, 'orphan')
    sp.write('item.create.jsonl', make_line('only', 'item.create',
                                            {'item_id': '1'}))
    out = os.path.join(sp.dir, 'out')
    cmd = ('echo "start $PODIO_EVENT_ID $$" >> %s; sleep 1; '
           'echo "end $PODIO_EVENT_ID $$" >> %s' % (out, out))
    p = sp.popen_drain('--exec', cmd)
    wait_for(lambda: os.path.exists(out), 5, 'the handler')
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = sp.drain('--wait', '--exec', cmd, timeout=15)
    time.sleep(1.2)
    with open(out) as f:
        log = [l.split() for l in f.read().splitlines()]
    running = 0
    most = 0
    for ev in log:
        running += 1 if ev[0] == 'start' else -1
        most = max(most, running)
    check(most <= 1, 'event handed over twice at the same time: %r (the '
          'killed drain\'s handler kept running while the next drain, '
          'which got the lock, ran it again)', [' '.join(e[:2]) for e in log])
    eq(r.returncode, 0, 'exit status')


# -- lighttpd stress ------------------------------------------------------

def markers_in(path):
    with open(path, 'rb') as f:
        data = f.read()
    out = []
    for l in lines_of(data):
        check(l.endswith(b'\n'), 'a torn line in the output: %r', l)
        j = json.loads(l)
        out.append((j['params']['marker'], j['id']))
    return out


def case_stress(h):
    sp = Spool(h, 'stress')
    server = Lighttpd(h, sp)
    server.start()
    n = 1000

    # 1: drains in a loop, alternating --exec 'cat >> OUT' and print mode.
    out = os.path.join(sp.dir, 'out1')
    open(out, 'w').close()
    # Run as root, drain becomes the spool's owner (the web server's
    # user, since Lighttpd gave it the spool): its handlers write as that.
    harness.chown_run(out, 0o644)
    done = threading.Event()
    errors = []
    runs = [0]

    def loop():
        k = 0
        try:
            while True:
                last = done.is_set()
                if k % 2:
                    r = sp.drain('--exec', 'cat >> %s' % out, timeout=60)
                else:
                    with open(out, 'ab') as f:
                        r = sp.drain(stdout=f, timeout=60)
                k += 1
                if r.returncode != 0:
                    errors.append('drain exited %d: %r' % (r.returncode,
                                                           r.stderr[-300:]))
                    return
                if last:
                    return
        finally:
            runs[0] = k
    th = threading.Thread(target=loop)
    th.start()
    t0 = time.monotonic()
    try:
        codes = post_many(h, server, 'a', n)
    finally:
        done.set()
        th.join()
    took = time.monotonic() - t0
    check(not errors, '%s', errors)
    eq(len(codes), n, 'answers')
    bad = [c for c in codes if c != '200']
    eq(bad, [], 'answers other than 200')
    got = markers_in(out)
    markers = [m for m, _ in got]
    want = ['a%04d' % i for i in range(n)]
    eq(sorted(set(want) - set(markers)), [], 'markers never handed over')
    dups = sorted(m for m in set(markers) if markers.count(m) > 1)
    eq(dups, [], 'markers handed over twice')
    eq(len(got), n, 'lines handed over')
    eq(len({i for _, i in got}), n, 'distinct ids')
    j, _ = sp.status(want_exit=0)
    for t, c in j['types'].items():
        eq((c['pending'], c['in_progress']), (0, 0), 'status of ' + t)
    h.note('stress: %d events in %.1f s with %d drains' % (n, took, runs[0]))

    # 2: the same while drains are killed with SIGKILL at random moments.
    out2 = os.path.join(sp.dir, 'out2')
    open(out2, 'w').close()
    harness.chown_run(out2, 0o644)
    done.clear()
    kills = [0]
    rnd = random.Random(os.getpid() + 1)

    def killer():
        while not done.is_set():
            p = sp.popen_drain('--exec', 'cat >> %s' % out2)
            time.sleep(rnd.uniform(0.002, 0.05))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills[0] += 1
            p.wait()
    th = threading.Thread(target=killer)
    th.start()
    try:
        codes = post_many(h, server, 'b', n)
    finally:
        done.set()
        th.join()
    time.sleep(0.2)
    r = sp.drain('--exec', 'cat >> %s' % out2, timeout=60)
    eq(r.returncode, 0, 'final drain exit status (stderr %r)'
       % r.stderr[-300:])
    time.sleep(0.2)
    eq(len(codes), n, 'answers')
    eq([c for c in codes if c != '200'], [], 'answers other than 200')
    markers = [m for m, _ in markers_in(out2)]
    want = ['b%04d' % i for i in range(n)]
    eq(sorted(set(want) - set(markers)), [], 'markers never handed over')
    extra = len(markers) - len(set(markers))
    check(extra <= kills[0], '%d duplicates after %d kills', extra, kills[0])
    j, _ = sp.status(want_exit=0)
    for t, c in j['types'].items():
        eq((c['pending'], c['in_progress']), (0, 0), 'status of ' + t)
    server.stop()
    h.note('stress with kills: %d kills, %d duplicates' % (kills[0], extra))


# -- Redis recipe ---------------------------------------------------------

class Redis:
    def __init__(self, h, sp):
        self.h = h
        self.port = harness.free_port()
        self.dir = os.path.join(sp.dir, 'redis')
        os.mkdir(self.dir)
        self.log = open(os.path.join(sp.dir, 'redis.log'), 'wb')
        self.proc = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--daemonize', 'no',
             '--dir', self.dir],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        h.stoppers.append(self.stop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli('PING').stdout == b'PONG\n':
                return
            time.sleep(0.05)
        raise Failure('redis-server did not answer PING')

    def cli(self, *args):
        return subprocess.run(['redis-cli', '-p', str(self.port)] + list(args),
                              capture_output=True, timeout=20)

    def xrange(self, stream):
        r = self.cli('--raw', 'XRANGE', stream, '-', '+')
        eq(r.returncode, 0, 'redis-cli XRANGE exit status')
        rows = r.stdout.split(b'\n')
        check(rows[-1] == b'', 'XRANGE output %r', r.stdout[-100:])
        rows = rows[:-1]
        check(len(rows) % 3 == 0, 'XRANGE printed %d lines', len(rows))
        out = []
        for i in range(0, len(rows), 3):
            eq(rows[i + 1], b'event', 'field name')
            out.append(rows[i + 2] + b'\n')
        return out

    def stop(self):
        if self.proc.poll() is None:
            harness.terminate(self.proc, 10)
        self.log.close()


def redis_handler(port, stream):
    # redis-cli exits 0 on an error reply, so the recipe checks the reply
    # is a stream id.
    return ('id=$(redis-cli -p %d XADD %s "*" event "$(cat)") && '
            'case "$id" in [0-9]*-[0-9]*) ;; *) echo "$id" >&2; exit 1;; esac'
            % (port, stream))


def case_redis(h):
    if shutil.which('redis-server') is None or shutil.which('redis-cli') \
            is None:
        raise Skip('redis-server/redis-cli not installed; install the Debian '
                   'packages redis-server and redis-tools')
    sp = Spool(h, 'redis')
    redis = Redis(h, sp)
    lines = [sp.post([('type', 'item.create'), ('item_id', str(i)),
                      ('note', 'n%d "q" \\ $HOME `id` caf\u00e9 \u2028 '
                       '*  ; | & %%s' % i)]) for i in range(12)]
    lines.append(sp.post([('type', 'comment.create'), ('item_id', '1'),
                          ('comment_id', '2')]))

    # Redis down (wrong port): everything stays for retry.
    down = harness.free_port()
    r = sp.drain('--exec', redis_handler(down, 'podio'))
    eq(r.returncode, 1, 'exit status with Redis unreachable')
    cnt = sp.counts('item.create', want_exit=0)
    eq(cnt['in_progress'], 12, 'in progress after a failed run')

    # A reply that is an error (wrong type) is a failure too.
    eq(redis.cli('SET', 'notastream', 'x').stdout, b'OK\n', 'SET')
    r = sp.drain('--exec', redis_handler(redis.port, 'notastream'))
    eq(r.returncode, 1, 'exit status when XADD answers an error')
    eq(redis.cli('GET', 'notastream').stdout, b'x\n', 'notastream untouched')

    r = sp.drain('--exec', redis_handler(redis.port, 'podio'))
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    got = redis.xrange('podio')
    eq(sorted(got), sorted(lines), 'stream podio holds every line once')
    eq(len(got), len(set(got)), 'duplicates in the stream')
    sp.expect_empty()

    # --batch: one shell loop per claimed file.
    lines2 = [sp.post([('type', 'task.create'), ('task_id', str(i)),
                       ('note', ' lead and trail \\ ')]) for i in range(5)]
    batch = ('while IFS= read -r line; do '
             'id=$(redis-cli -p %d XADD podio2 "*" event "$line") && '
             'case "$id" in [0-9]*-[0-9]*) ;; *) exit 1;; esac || exit 1; '
             'done' % redis.port)
    r = sp.drain('--batch', batch)
    eq(r.returncode, 0, '--batch exit status (stderr %r)' % r.stderr[-300:])
    eq(redis.xrange('podio2'), lines2, 'stream podio2')
    sp.expect_empty()
    redis.stop()


CASES = [
    ('print mode: exact lines oldest first, status before and after',
     case_print_mode),
    ('status: oldest_pending_age_s of a long first line',
     case_oldest_age_long_first_line),
    ('--type GLOB', case_type_glob),
    ('any well-formed type is drained and reported', case_any_wellformed_type),
    ('usage errors exit 2', case_usage),
    ('--exec: stdin byte for byte and PODIO_PARAM_* environment',
     case_exec_env_and_stdin),
    ('--exec: failing event retried, dead-lettered, --retry-failed',
     case_exec_failure_retry_dead_letter),
    ('--exec --max-attempts 1', case_exec_dead_letter_at_once),
    ('--retry-failed: a dead letter longer than 64 KiB',
     case_retry_failed_long_line),
    ('--timeout kills a hanging handler', case_exec_timeout),
    ('--batch: one run per claimed file, failing batch offered again',
     case_batch),
    ('--batch: dead letters', case_batch_dead_letters),
    ('quarantine: print mode', case_quarantine_print),
    ('quarantine: --exec', case_quarantine_exec),
    ('quarantine: --batch', case_quarantine_batch),
    ('--limit N', case_limit),
    ('lock: a second drain exits 0 at once, --wait waits', case_lock),
    ('crash: kill -9 at random moments, then to completion', case_crash),
    ('crash: drain killed between rename and lock wait loses no line',
     case_crash_between_rename_and_lock),
    ('crash: orphaned handler and the next drain never overlap',
     case_orphan_handler_overlap),
    ('stress: lighttpd FastCGI, 1000 events at concurrency 8, drains in a '
     'loop (and killed)', case_stress),
    ('Redis recipe: --exec XADD and --batch loop', case_redis),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready():
        return suite.finish()
    return run_suite(suite, Workspace(suite.bin, 'podio-drain.'), slow=20)


if __name__ == '__main__':
    sys.exit(main())
