#!/usr/bin/env python3
"""Prints tests/unit/cron_cases.h: the next occurrence of cron expressions
after an instant, found by brute force with Python's zoneinfo: every whole
minute of UTC after the instant is tried in turn until one fires. That is
an implementation independent of lib/cron.c (which walks the local
calendar day by day and converts with lib/tz.c), from the same system
zoneinfo files.

A UTC minute t fires when
- the wall clock reads a matching minute at t, and t is the first instant
  with that reading (a repeated local time fires once, at its first), or
- the clocks jump forward at t over a matching local minute (a skipped
  local time fires at the end of the gap).

    python3 tests/unit/cron_cases.py > tests/unit/cron_cases.h
"""
import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()
MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
          "@annually": "0 0 1 1 *"}

# (zone, expression, after as UTC text): around the DST changes of a
# northern zone, a southern one and New York, a half-hour zone, leap
# days, month ends, the OR rule of the two day fields, names and macros.
CASES = [
    # Weekdays at 09:00 in Berlin across the March and October changes.
    ("Europe/Berlin", "0 9 * * 1-5", "2026-03-26T12:00:00"),
    ("Europe/Berlin", "0 9 * * 1-5", "2026-03-27T08:00:00"),
    ("Europe/Berlin", "0 9 * * 1-5", "2026-03-28T12:00:00"),
    ("Europe/Berlin", "0 9 * * 1-5", "2026-10-23T07:00:00"),
    ("Europe/Berlin", "0 9 * * 1-5", "2026-10-25T12:00:00"),
    ("Europe/Berlin", "0 9 * * mon-fri", "2026-10-24T00:00:00"),
    # 02:30 does not exist on 29 March (fires at 03:00 CEST) and happens
    # twice on 25 October (fires once, at the first).
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T01:30:00"),
    ("Europe/Berlin", "30 2 * * *", "2026-03-29T00:59:59"),
    ("Europe/Berlin", "30 2 * * *", "2026-03-29T01:00:00"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-25T00:30:00"),
    ("Europe/Berlin", "30 2 * * *", "2026-10-25T01:15:00"),
    # Several skipped minutes match: one occurrence at the gap's end.
    ("Europe/Berlin", "* * * * *", "2026-03-29T00:59:00"),
    ("Europe/Berlin", "* * * * *", "2026-03-29T01:00:00"),
    ("Europe/Berlin", "*/10 2 * * *", "2026-03-29T00:00:00"),
    ("Europe/Berlin", "*/10 2 * * *", "2026-03-29T01:00:00"),
    ("Europe/Berlin", "* * * * *", "2026-10-25T00:59:30"),
    # Every quarter hour across New York's fall back (06:00Z) and spring
    # forward (07:00Z).
    ("America/New_York", "*/15 * * * *", "2026-11-01T05:40:00"),
    ("America/New_York", "*/15 * * * *", "2026-11-01T05:45:00"),
    ("America/New_York", "*/15 * * * *", "2026-11-01T06:10:00"),
    ("America/New_York", "*/15 * * * *", "2026-11-01T06:59:59"),
    ("America/New_York", "*/15 * * * *", "2026-03-08T06:45:00"),
    ("America/New_York", "*/15 * * * *", "2026-03-08T07:00:00"),
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00"),
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00"),
    ("America/New_York", "30 1 * * *", "2026-11-01T05:30:00"),
    # 29 February: leap years only, and none in 2100.
    ("UTC", "0 0 29 2 *", "2026-03-01T00:00:00"),
    ("UTC", "0 0 29 2 *", "2028-02-29T00:00:00"),
    ("Europe/Berlin", "0 0 29 feb *", "2026-01-01T00:00:00"),
    ("UTC", "0 0 29 2 *", "2096-02-29T00:00:00"),
    # Both day fields restricted: the 1st of the month or a Monday.
    ("UTC", "0 12 1 * 1", "2026-06-30T12:00:00"),
    ("UTC", "0 12 1 * 1", "2026-07-01T12:00:00"),
    ("UTC", "0 12 1 * 1", "2026-08-25T00:00:00"),
    ("Europe/Berlin", "0 12 13 * fri", "2026-02-01T00:00:00"),
    # Only one restricted: only it counts.
    ("UTC", "0 12 1 * *", "2026-07-01T12:00:00"),
    ("UTC", "0 12 * * 1", "2026-07-01T12:00:00"),
    ("UTC", "0 12 */1 * 1", "2026-07-01T12:00:00"),
    # Macros.
    ("UTC", "@weekly", "2026-12-01T00:00:00"),
    ("UTC", "@weekly", "2026-12-06T00:00:00"),
    ("Australia/Sydney", "@weekly", "2026-12-01T00:00:00"),
    ("UTC", "@hourly", "2026-12-31T23:00:00"),
    ("Europe/Berlin", "@daily", "2026-03-28T23:00:00"),
    ("Europe/Berlin", "@monthly", "2026-10-31T23:00:00"),
    ("America/New_York", "@yearly", "2026-06-01T00:00:00"),
    # Sydney: clocks go forward on 4 October (16:00Z) and back on 5 April.
    ("Australia/Sydney", "30 2 * * *", "2026-10-03T12:00:00"),
    ("Australia/Sydney", "30 2 * * *", "2026-10-03T16:00:00"),
    ("Australia/Sydney", "30 2 * * *", "2026-04-04T12:00:00"),
    ("Australia/Sydney", "30 2 * * *", "2026-04-04T15:30:00"),
    ("Australia/Sydney", "0 9 * * 1-5", "2026-10-02T12:00:00"),
    # A half-hour zone.
    ("Asia/Kolkata", "0 9 * * *", "2026-07-01T00:00:00"),
    ("Asia/Kolkata", "0 9 * * *", "2026-07-01T03:30:00"),
    ("Asia/Kolkata", "0 */2 * * *", "2026-07-01T00:00:00"),
    ("Asia/Kolkata", "45 23 31 dec *", "2026-07-01T00:00:00"),
    # Month ends.
    ("UTC", "0 0 31 * *", "2026-04-01T00:00:00"),
    ("UTC", "59 23 28-31 * *", "2026-02-27T23:59:00"),
    ("UTC", "59 23 28-31 * *", "2026-02-28T23:59:00"),
    ("UTC", "0 0 1 * *", "2026-12-31T23:59:59"),
    ("Europe/Berlin", "0 0 1 * *", "2026-12-31T22:59:59"),
    ("UTC", "0 0 30 * *", "2027-01-30T00:00:00"),
    # Steps, lists and names.
    ("UTC", "5/20 * * * *", "2026-07-01T10:46:00"),
    ("UTC", "0 0-23/6 * * *", "2026-07-01T19:00:00"),
    ("UTC", "0 8 * jan,jul mon-fri", "2026-07-31T08:00:00"),
    ("UTC", "0 18 * * fri-sun", "2026-07-06T00:00:00"),
    ("UTC", "0 18 * * 5-7", "2026-07-05T18:00:00"),
    ("UTC", "15 10 * * 7", "2026-07-01T00:00:00"),
    ("UTC", "0 0 1 JAN *", "2026-07-01T00:00:00"),
    ("UTC", "1,2,3 4 * * *", "2026-07-01T04:02:00"),
]


def field_values(text, lo, hi, names, weekday):
    values = set()
    for item in text.split(","):
        rng, _, step = item.partition("/")
        step = int(step) if step else 1
        if rng == "*":
            a, b = lo, hi
        else:
            first, dash, last = rng.partition("-")

            def value(v, end=False):
                if v.isdigit():
                    return int(v)
                n = names.index(v.lower()) + lo
                return 7 if weekday and end and n == 0 else n
            a = value(first)
            b = value(last, True) if dash else (hi if step > 1 or "/" in item else a)
        values.update(v % 7 if weekday else v for v in range(a, b + 1, step))
    return values


def parse(expr):
    expr = MACROS.get(expr.lower(), expr)
    f = expr.split()
    return {
        "minute": field_values(f[0], 0, 59, None, False),
        "hour": field_values(f[1], 0, 23, None, False),
        "dom": field_values(f[2], 1, 31, None, False),
        "month": field_values(f[3], 1, 12, MONTHS, False),
        "dow": field_values(f[4], 0, 7, DAYS, True),
        "dom_star": f[2] == "*",
        "dow_star": f[4] == "*",
    }


def matches(c, r):
    if r.minute not in c["minute"] or r.hour not in c["hour"] or r.month not in c["month"]:
        return False
    dom = r.day in c["dom"]
    dow = (r.isoweekday() % 7) in c["dow"]
    if not c["dom_star"] and not c["dow_star"]:
        return dom or dow
    return dom and dow


def reading(z, s):
    return dt.datetime.fromtimestamp(s, UTC).astimezone(z).replace(tzinfo=None)


def fires(c, z, t):
    r = reading(z, t)
    if matches(c, r) and int(r.replace(tzinfo=z, fold=0).timestamp()) == t:
        return True
    before = reading(z, t - 1) + dt.timedelta(seconds=1)
    if before < r:
        # The clocks jumped forward at t: the minutes from before to r
        # were skipped.
        m = before.replace(second=0)
        if m < before:
            m += dt.timedelta(minutes=1)
        while m < r:
            if matches(c, m):
                return True
            m += dt.timedelta(minutes=1)
    return False


def next_after(zone, expr, after):
    c, z = parse(expr), ZoneInfo(zone)
    t = after // 60 * 60 + 60
    while not fires(c, z, t):
        t += 60
    return t


print("/* generated by tests/unit/cron_cases.py from Python's zoneinfo */")
print("static const struct next_case next_cases[] = {")
for zone, expr, text in CASES:
    after = int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
    want = next_after(zone, expr, after)
    local = reading(ZoneInfo(zone), want).strftime("%Y-%m-%d %H:%M %a")
    got = dt.datetime.fromtimestamp(want, UTC).strftime("%Y-%m-%dT%H:%MZ")
    print(f'\t{{ "{zone}", "{expr}", {after * 1000}LL, {want * 1000}LL }},'
          f'  /* after {text}Z: {got}, {local} local */')
print("};")
