"""The manual pages in man/: each one formats without a warning from man or
groff, each program's page documents every option its --help prints (and
no option that --help does not know), and postdate.conf(5) documents every
key lib/config.c reads, with the default and the range the code has."""

import glob
import os
import re
import subprocess

from harness import TOP

MAN = os.path.join(TOP, "man")

# The pages that must exist: one per program (the FastCGI programs share
# one, postdate-fcgi(8), as they share their options), the configuration
# file, and the HTTP API reference.
REQUIRED_PAGES = ["dispatch.1", "postdate-stack.1", "postdate-fcgi.8", "postdate.conf.5",
                  "postdate-api.7"]

# Each program and the page that documents it. bin/postdate (the admin CLI)
# comes from another branch: once it is built here, its page is checked too.
FASTCGI = ["schedule", "status", "cancel", "queue", "health"]
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


def tagged(lines):
    """The tagged paragraphs (.TP) of a section's lines, as (head, body)
    pairs: a head stands at the section's first indent, its body is
    indented further (and begins on the head's line, after two spaces or
    more, when the head is shorter than the indent)."""
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    first = min(indents) if indents else 0
    paragraphs = []
    for line in lines:
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) == first:
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            paragraphs.append([parts[0], parts[1] if len(parts) > 1 else ""])
        elif paragraphs:
            paragraphs[-1][1] += " " + line.strip()
    return [(head, re.sub(r"\s+", " ", body).strip()) for head, body in paragraphs]


def help_text(program):
    p = subprocess.run([os.path.join(TOP, program), "--help"], capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (program, p)
    return p.stdout.decode("utf-8")


def help_options(text):
    """The options --help offers: those of its usage line, and the first
    column of its option lines ("  -c, --config FILE  what it does")."""
    found = set()
    for line in text.splitlines():
        if line.startswith("usage:"):
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
    for page in REQUIRED_PAGES:
        text = render(page)
        heads = [line.strip() for line in text.splitlines() if line and not line[0].isspace()]
        for want in ("NAME", "DESCRIPTION", "SEE ALSO"):
            assert want in heads, (page, want, heads)
    for _, page in PROGRAM_PAGES:
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
        documented = set()
        for head, _ in tagged(section(render(page), "OPTIONS")):
            if head.startswith("-"):
                documented |= set(OPTION.findall(head))
        missing = offered - documented
        assert not missing, f"man/{page} does not document {sorted(missing)} of {program}"
        # And the page offers nothing that the program does not know.
        known = set(OPTION.findall(text))
        extra = documented - known
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
    return {head.split()[0]: body for head, body in
            tagged(section(render("postdate.conf.5"), "KEYS"))}


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
