"""The manual pages in man/: each one formats without a warning from man or
groff, each program's page documents every option its --help prints (and
no option that --help does not know), and postdate.conf(5) documents every
key lib/config.c reads, with the default and the range the code has."""

import glob
import json
import os
import re
import shlex
import subprocess

from harness import TOP, Stack

MAN = os.path.join(TOP, "man")

# The pages that must exist: one per program (the FastCGI programs share
# one, postdate-fcgi(8), as they share their options), the configuration
# file, and the HTTP API reference.
REQUIRED_PAGES = ["dispatch.1", "postdate-stack.1", "postdate-fcgi.8", "postdate.conf.5",
                  "postdate-api.7"]

# Each program and the page that documents it. bin/postdate (the admin CLI)
# comes from another branch: once it is built here, its page is checked too.
FASTCGI = ["schedule", "status", "cancel", "queue", "topics", "recurring", "health", "metrics"]
PROGRAM_PAGES = [("bin/dispatch", "dispatch.1"), ("bin/postdate-stack", "postdate-stack.1")] + \
    [("cgi-bin/" + name, "postdate-fcgi.8") for name in FASTCGI]
if os.path.exists(os.path.join(TOP, "bin", "postdate")):
    PROGRAM_PAGES.append(("bin/postdate", "postdate.1"))

# An option as --help and the rendered page spell it: -c, --config, --no-dispatch.
OPTION = re.compile(r"(?<![\w/.-])--?[A-Za-z][A-Za-z0-9-]*(?![\w/])")


def man_env():
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    env.pop("MAN_KEEP_FORMATTING", None)
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    return env


def render(page):
    """The page as man shows it at 80 columns, as plain text (man-db strips
    bold and underline when its output is not a terminal)."""
    p = subprocess.run(["man", "-l", os.path.join(MAN, page)], capture_output=True,
                       env=man_env(), timeout=60)
    assert p.returncode == 0, (page, p.stderr)
    text = p.stdout.decode("utf-8")
    # groff may render \- as a minus sign or a hyphen; options use ASCII.
    return text.replace("\u2212", "-").replace("\u2010", "-")


def section(text, name):
    """The lines of the section headed name (up to the next heading)."""
    lines, inside = [], False
    for line in text.splitlines():
        if line and not line[0].isspace():
            inside = line.strip() == name
            continue
        if inside:
            lines.append(line)
    return lines


def roff_args(text):
    """The arguments of a macro line, as roff splits them ("" in a quoted
    argument is a quote)."""
    args, i = [], 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            j, arg = i + 1, ""
            while j < len(text) and not (text[j] == '"' and text[j + 1:j + 2] != '"'):
                arg += text[j]
                j += 2 if text[j] == '"' else 1
            args.append(arg)
            i = j + 1
        else:
            j = text.find(" ", i)
            j = len(text) if j < 0 else j
            args.append(text[i:j])
            i = j
    return args


def roff_text(line):
    """What a line of roff source says, without fonts and escapes: a
    macro's arguments joined as it joins them (.BR and its kin alternate
    fonts with no space between), or a text line as it is."""
    if line.startswith("."):
        name, _, rest = line[1:].partition(" ")
        args = roff_args(rest)
        line = ("".join(args) if len(name) == 2 and name.isalpha() and name.isupper()
                and name not in ("TP", "SH", "SS", "TH", "PP", "IP", "RS", "RE")
                else " ".join(args))
    line = re.sub(r"\\f[BIRP]|\\f\(..|\\%|\\&", "", line)
    return (line.replace(r"\-", "-").replace(r"\e", "\\").replace(r"\(lq", '"')
            .replace(r"\(rq", '"').replace(r"\ ", " "))


def roff(page):
    """The page's tagged paragraphs (.TP), as (section, subsection, tag,
    body) tuples read from its source: the tag is the line after .TP, the
    body runs to the next paragraph macro or heading."""
    with open(os.path.join(MAN, page)) as f:
        lines = f.read().split("\n")
    found, sh, ss, current = [], None, None, None
    for i, line in enumerate(lines):
        if line.startswith((".SH", ".SS", ".TP", ".PP", ".IP", ".RE", ".RS")):
            current = None
        if line.startswith(".SH "):
            sh, ss = roff_text(line), None
        elif line.startswith(".SS "):
            ss = roff_text(line)
        elif line.startswith(".TP") and i + 1 < len(lines):
            current = [sh, ss, roff_text(lines[i + 1]).strip(), ""]
            found.append(current)
        elif current is not None and i > 0 and not lines[i - 1].startswith(".TP"):
            current[3] += " " + roff_text(line)
    return [(a, b, c, re.sub(r"\s+", " ", d).strip()) for a, b, c, d in found]


def help_text(program):
    p = subprocess.run([os.path.join(TOP, program), "--help"], capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (program, p)
    return p.stdout.decode("utf-8")


def help_options(text):
    """The options --help offers: those of its usage line, and the first
    column of its option lines ("  -c, --config FILE  what it does")."""
    found, usage = set(), False
    for line in text.splitlines():
        # The usage line, and its continuation lines up to a blank one.
        usage = line.startswith("usage:") or (usage and line.strip() != "")
        if usage:
            found |= set(OPTION.findall(line))
        elif re.match(r"\s{2,}-", line):
            head = re.split(r"\s{2,}", line.strip())[0]
            found |= set(OPTION.findall(head))
    return found


def test_every_man_page_formats_without_warnings():
    pages = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[0-9]")))
    for page in REQUIRED_PAGES:
        assert page in pages, f"man/{page} is missing"
    for page in pages:
        p = subprocess.run(["man", "--warnings", "-l", os.path.join(MAN, page)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=man_env(), timeout=60)
        assert p.returncode == 0 and p.stderr == b"", (page, p.stderr.decode())


def test_every_man_page_fits_80_columns():
    # Examples and JSON are not filled: a line too long for the terminal
    # would wrap, or be cut, where a reader copies it from.
    wide = {}
    for page in sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[0-9]"))):
        lines = [line for line in render(page).splitlines() if len(line) > 80]
        if lines:
            wide[page] = lines
    assert not wide, wide


def test_every_man_page_has_the_sections_a_reader_looks_for():
    version = re.search(r'#define PD_VERSION "([^"]+)"', source("lib/postdate.h")).group(1)
    for page in REQUIRED_PAGES:
        with open(os.path.join(MAN, page)) as f:
            th = f.readline()
        # The footer names the version the page describes.
        assert th.startswith(".TH ") and f'"postdate {version}"' in th, (page, th)
        text = render(page)
        heads = [line.strip() for line in text.splitlines() if line and not line[0].isspace()]
        for want in ("NAME", "DESCRIPTION", "SEE ALSO"):
            assert want in heads, (page, want, heads)
    for page in ("dispatch.1", "postdate-stack.1", "postdate-fcgi.8"):
        heads = [line.strip() for line in render(page).splitlines()
                 if line and not line[0].isspace()]
        for want in ("SYNOPSIS", "OPTIONS", "EXIT STATUS", "EXAMPLES"):
            assert want in heads, (page, want, heads)


def test_every_option_of_a_programs_help_is_in_its_man_page():
    for program, page in PROGRAM_PAGES:
        text = help_text(program)
        offered = help_options(text)
        # Every program has at least --help and one option of its own.
        assert "--help" in offered and len(offered) >= 3, (program, offered)
        # Documented: the head of a tagged paragraph, in OPTIONS or (for a
        # program of subcommands) under the command that takes it.
        documented, in_options = set(), set()
        for sh, _, tag, _ in roff(page):
            documented |= set(OPTION.findall(tag))
            if sh == "OPTIONS":
                in_options |= set(OPTION.findall(tag))
        assert in_options, f"man/{page} has no option in its OPTIONS section"
        missing = offered - documented
        assert not missing, f"man/{page} does not document {sorted(missing)} of {program}"
        # And the page offers nothing that the program does not know.
        known = set(OPTION.findall(text))
        extra = in_options - known
        assert not extra, f"man/{page} documents {sorted(extra)}, which {program} lacks"


def config_source():
    with open(os.path.join(TOP, "lib", "config.c")) as f:
        return f.read()


def limits():
    """The numeric #defines of lib/postdate.h (PD_MAX_VISIBILITY...)."""
    with open(os.path.join(TOP, "lib", "postdate.h")) as f:
        return {m.group(1): m.group(2) for m in
                re.finditer(r"#define\s+(\w+)\s+\(?(-?\d+)\)?", f.read())}


def config_keys(source):
    keys = set(re.findall(r'strcmp\(key, "(\w+)"\) == 0', source))
    # The table's lines, not the macro's own definition.
    keys |= set(re.findall(r"^\s+INT_KEY\((\w+),", source, re.M))
    return keys


def key_paragraphs():
    """Each key of postdate.conf(5)'s KEYS section and its paragraph."""
    return {tag.split()[0]: body for sh, _, tag, body in roff("postdate.conf.5")
            if sh == "KEYS"}


def test_every_configuration_key_is_in_postdate_conf_5():
    source = config_source()
    keys = config_keys(source)
    assert {"database", "token", "max_body", "concurrency"} <= keys, keys
    documented = key_paragraphs()
    assert keys - set(documented) == set(), \
        f"postdate.conf(5) lacks {sorted(keys - set(documented))}"
    assert set(documented) - keys == set(), \
        f"postdate.conf(5) documents keys config.c does not read: " \
        f"{sorted(set(documented) - keys)}"


def test_postdate_conf_5_gives_the_defaults_and_ranges_of_the_code():
    source = config_source()
    documented = key_paragraphs()
    defaults = dict(re.findall(r"cfg->(\w+) = (\d+);", source.split("config_defaults", 1)[1]
                               .split("\n}\n", 1)[0]))
    defaults = {k: v for k, v in defaults.items() if k in config_keys(source)}
    assert len(defaults) >= 10, defaults
    for key, value in defaults.items():
        assert re.search(rf"[Dd]efault:? {value}\b", documented[key]), \
            f"postdate.conf(5) does not give {key}'s default, {value}: {documented[key]}"
    names = limits()
    ranges = re.findall(r"^\s+INT_KEY\((\w+), (\w+), (\w+)\)", source, re.M)
    assert len(ranges) >= 8, ranges
    for key, lo, hi in ranges:
        lo, hi = names.get(lo, lo), names.get(hi, hi)
        assert re.search(rf"\b{lo} to {hi}\b", documented[key]), \
            f"postdate.conf(5) does not give {key}'s range, {lo} to {hi}: {documented[key]}"
    # The defaults that are not numbers.
    database = re.search(r'set_string\(&cfg->database, "([^"]+)"\)', source).group(1)
    assert database in documented["database"], documented["database"]
    assert re.search(r"[Dd]efault:? full\b", documented["synchronous"])


def source(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def served_routes():
    """Every route the programs serve, as "METHOD /api/path": the queue
    program's table of routes, and the one route of each other program
    (its method in its pd_route, its path the program's name)."""
    routes = set()
    for name in FASTCGI:
        text = source(f"cgi-bin/{name}.c")
        table = re.findall(r'\.path = "([^"]+)", \.method = "([^"]+)"', text)
        if not table:
            table = [(f"/api/{name}", re.search(r'\.method = "([^"]+)"', text).group(1))]
        for path, methods in table:
            routes |= {f"{m} {path}" for m in methods.split()}
    return routes


def known_fields(path, function):
    """The field names a handler accepts: its known[] list."""
    body = source(path).split(f"\n{function}(", 1)[1].split("\n}\n", 1)[0]
    return set(re.findall(r'"(\w+)"', re.search(r"known\[\] = \{([^}]*)\}", body).group(1)))


def recurring_fields(schedule):
    """The fields of POST /api/recurring: its own (cron, tz, name, read in
    definition_from_request) and schedule's, but for those it refuses."""
    text = source("cgi-bin/recurring.c")
    body = text.split("\ndefinition_from_request(", 1)[1].split("\n}\n", 1)[0]
    own = set(re.findall(r'fields_get\(f, "(\w+)"\)', body))
    refused = set(re.findall(r'\{ "(\w+)", "', text.split("refused_fields[] = {", 1)[1]
                             .split("};", 1)[0]))
    assert {"cron", "tz", "name"} <= own and {"at", "delay"} <= refused, (own, refused)
    return own | (schedule - refused)


def test_every_route_and_field_is_in_postdate_api_7():
    routes = served_routes()
    # Every route nginx passes on is one a program serves.
    nginx = set(re.findall(r"location = (/api/[\w/]+)", source("etc/nginx.conf")))
    assert nginx == {r.split()[1] for r in routes}, (nginx, routes)
    paragraphs = [(ss, tag) for sh, ss, tag, _ in roff("postdate-api.7") if sh == "ROUTES"]
    with open(os.path.join(MAN, "postdate-api.7")) as f:
        routes_part = f.read().split("\n.SH ROUTES\n", 1)[1].split("\n.SH ", 1)[0]
    headings = [roff_text(line) for line in re.findall(r"^(\.SS .*)$", routes_part, re.M)]
    # A heading is "METHOD /api/path", or the same with a query ("?id=ID").
    heading_routes = {re.split(r"[?\[]", h)[0] for h in headings}
    assert routes - heading_routes == set(), f"postdate-api(7) lacks {routes - heading_routes}"
    assert heading_routes - routes == set(), \
        f"postdate-api(7) documents routes no program serves: {heading_routes - routes}"

    # The fields of each route are those its code accepts.
    schedule = set(re.findall(r'"(\w+)"', source("lib/message.c").split(
        "schedule_fields[] = {", 1)[1].split("};", 1)[0]))
    cancel = known_fields("cgi-bin/cancel.c", "only_id")
    fields = {
        "POST /api/schedule": schedule,
        "GET /api/status": known_fields("cgi-bin/status.c", "handle_status"),
        "POST /api/cancel": cancel,
        "POST /api/retry": cancel,
        "GET /api/health": set(),
        "GET /api/metrics": set(),
        "POST /api/receive": known_fields("cgi-bin/queue.c", "handle_receive"),
        "POST /api/ack": known_fields("cgi-bin/queue.c", "handle_ack"),
        "POST /api/release": known_fields("cgi-bin/queue.c", "handle_release"),
        "POST /api/extend": known_fields("cgi-bin/queue.c", "handle_extend"),
        "GET /api/queues": known_fields("cgi-bin/queue.c", "queues_get"),
        "POST /api/queues": known_fields("cgi-bin/queue.c", "queues_post"),
        "POST /api/subscribe": set(re.findall(r'"(\w+)"', source("lib/message.c").split(
            "subscribe_fields[] = {", 1)[1].split("};", 1)[0])),
        "POST /api/unsubscribe": known_fields("cgi-bin/topics.c", "handle_unsubscribe"),
        "GET /api/topics": known_fields("cgi-bin/topics.c", "handle_topics"),
        "POST /api/recurring": recurring_fields(schedule),
        "GET /api/recurring": known_fields("cgi-bin/recurring.c", "recurring_get"),
        "POST /api/recurring/pause": known_fields("cgi-bin/recurring.c", "required_id"),
        "POST /api/recurring/resume": known_fields("cgi-bin/recurring.c", "required_id"),
        "POST /api/recurring/delete": known_fields("cgi-bin/recurring.c", "required_id"),
    }
    assert set(fields) == routes, "a route of the code has no entry here: add its fields"
    assert len(schedule) >= 10 and "receipt" in fields["POST /api/ack"], fields
    assert {"after", "count"} <= fields["GET /api/recurring"], fields
    assert fields["POST /api/recurring/pause"] == {"id"}, fields
    for route, want in fields.items():
        # A field is a tagged paragraph of the route's subsection(s)
        # ("id, receipt" tags two), or a query parameter of a heading.
        given = set()
        for heading in headings:
            if re.split(r"[?\[]", heading)[0] == route:
                given |= set(re.findall(r"[?&](\w+)=", heading))
        for heading, tag in paragraphs:
            if re.split(r"[?\[]", heading)[0] == route:
                given |= set(re.split(r",\s*", tag))
        assert want - given == set(), f"postdate-api(7) does not give {want - given} of {route}"


def test_every_option_of_a_programs_help_is_in_its_usage_line():
    # Regression: postdate-stack's usage line lacked --with-dispatch, which
    # its option list (and the harness) had. The admin CLI, a program of
    # subcommands, lists its commands' options under each command instead.
    for program, _ in PROGRAM_PAGES:
        if program == "bin/postdate":
            continue
        text = help_text(program)
        lines = text.splitlines()
        usage = set()
        for i, line in enumerate(lines):
            if line.startswith("usage:"):
                for more in lines[i:]:
                    if not more.strip():
                        break
                    usage |= set(OPTION.findall(more))
        assert usage, (program, text[:200])
        for line in lines:
            if not re.match(r"\s{2,}-", line):
                continue
            forms = set(OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
            if forms & {"--help", "--version"}:
                continue
            assert forms & usage, f"{program}: {sorted(forms)} is not in its usage line"


def example_commands(page):
    """The shell commands of a page's EXAMPLES section, one per command
    (continuation lines joined), as a reader would paste them."""
    with open(os.path.join(MAN, page)) as f:
        part = f.read().split("\n.SH EXAMPLES\n", 1)[1].split("\n.SH ", 1)[0]
    commands = []
    for block in re.findall(r"^\.nf\n(.*?)^\.fi$", part, re.M | re.S):
        command = ""
        for line in block.split("\n"):
            command += roff_text(line) + "\n"
            # A command goes on after a backslash, or inside a quote.
            try:
                shlex.split(command)
            except ValueError:
                continue
            if not command.rstrip("\n").endswith("\\"):
                if command.strip():
                    commands.append(command.strip())
                command = ""
    return commands


def test_the_curl_examples_of_postdate_api_7_work():
    # What a reader pastes, against a real stack of its own (the messages
    # and the queue it makes would change the shared stack's counts): each
    # curl line of the page's examples is answered 200 or 201.
    with Stack() as stack:
        run_examples(stack)


def run_examples(stack):
    env = dict(os.environ, TOKEN=stack.token)
    prelude, ran = "", []
    for command in example_commands("postdate-api.7"):
        if not command.startswith("curl "):
            # The variables the examples set (api=..., auth=...).
            prelude += command.replace("127.0.0.1:8080", f"127.0.0.1:{stack.port}") + "\n"
            continue
        # Those that need the id or receipt of an earlier answer are left out.
        if re.search(r"\$ID|\$RECEIPT|\bID1\b", command):
            continue
        p = subprocess.run(["bash", "-c", prelude + command + " -w '\\n%{http_code}'"],
                           env=env, capture_output=True, text=True, timeout=60)
        status = p.stdout.rsplit("\n", 1)[-1]
        assert status in ("200", "201"), (command, p.stdout, p.stderr)
        ran.append(command)
    assert len(ran) >= 8 and "api=" in prelude, (prelude, ran)


def json_examples(page):
    """The JSON objects a page shows, as (section, subsection, object), for
    the blocks that are whole JSON (not those with "..." placeholders
    standing for more)."""
    with open(os.path.join(MAN, page)) as f:
        lines = f.read().split("\n")
    found, sh, ss, block = [], None, None, None
    for line in lines:
        if line.startswith(".SH "):
            sh, ss = roff_text(line), None
        elif line.startswith(".SS "):
            ss = roff_text(line)
        elif line == ".nf":
            block = []
        elif line == ".fi" and block is not None:
            try:
                found.append((sh, ss, json.loads("\n".join(block))))
            except ValueError:
                pass
            block = None
        elif block is not None:
            block.append(roff_text(line))
    return found


def test_the_json_answers_of_postdate_api_7_have_the_fields_of_the_real_ones():
    # The objects the page shows, key for key, against what a real stack
    # answers: a field added to (or dropped from) an answer must be in the
    # reference too.
    shown = {}
    for sh, ss, obj in json_examples("postdate-api.7"):
        shown.setdefault(ss or sh, []).append(obj)
    with Stack() as s:
        scheduled = s.post_form("/api/schedule", {"url": "http://127.0.0.1:9/hook",
                                                   "delay": "1h", "payload": "hello"})
        assert scheduled.status == 201, scheduled
        s.post_form("/api/schedule", {"queue": "resize", "payload": "photo-17.jpg"})
        one = s.get("/api/status", {"id": scheduled.json["id"]}).json
        listed = s.get("/api/status", {"state": "all"}).json
        health = s.get("/api/health", token=None).json
        received = s.post_form("/api/receive", {"queue": "resize"}).json["messages"][0]
        queue = s.get("/api/queues", {"name": "resize"}).json
        defined = s.post_form("/api/recurring", {"cron": "0 9 * * mon-fri",
                                                 "tz": "Europe/Berlin",
                                                 "url": "http://127.0.0.1:9/hook"})
        assert defined.status == 201, defined
        definition = s.get("/api/recurring", {"id": defined.json["id"]}).json
        paused = s.post_form("/api/recurring/pause", {"id": defined.json["id"]}).json
        deleted = s.post_form("/api/recurring/delete", {"id": defined.json["id"]}).json
    # One definition is the object that every route but delete answers.
    assert set(definition) == set(defined.json) | {"upcoming"}, definition
    assert set(paused) == set(defined.json) and paused["paused"] is True, paused
    real = {
        "POST /api/schedule": scheduled.json,
        "GET /api/health": health,
        "POST /api/receive": received,
        "GET /api/queues[?name=NAME]": queue,
        "POST /api/recurring": defined.json,
        "POST /api/recurring/delete": deleted,
        # The page's message object is one of the list, without payload.
        "MESSAGE OBJECT": listed["messages"][0],
    }
    assert set(listed) == {"messages", "next_cursor", "counts"}, listed
    assert set(one) == set(listed["messages"][0]) | {"payload", "history"}, one
    for where, answer in real.items():
        assert where in shown, f"postdate-api(7) shows no whole JSON object under {where}"
        # The first object shown there is the answer of success.
        assert set(shown[where][0]) == set(answer), \
            (where, sorted(set(shown[where][0]) ^ set(answer)))
