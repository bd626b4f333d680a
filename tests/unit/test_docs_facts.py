"""What the docs (docs/*.md and the README) tell operators to type exists: every `manage.py` command they name with
its options, and every environment variable they name is in the configuration reference."""

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from tests.unit.test_configuration_reference import documented_rows

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
POLICIES = ROOT / "docs" / "policies"
# Prefixes of the environment variables orgdns, Django and its libraries read (and nothing else in the docs has).
VARIABLE = re.compile(
    r"\b((?:ORGDNS|EXTERNALDNS|VAULT|AWS|SECURE|LOGIN|REDIS|KUBE|DATABASE|PROMETHEUS|SESSION|TRUSTED|CSRF|ALLOWED|"
    r"SECRET|LOG|TIME)_[A-Z0-9_]+|DEBUG)\b"
)
EXAMPLE_VARIABLES = {"ORGDNS_URL", "ORGDNS_TOKEN"}  # the API examples' own (docs/api.md): a CI job's, not orgdns's
SCRIPTS = ("devstack", "image", "bench")  # the local stack's, the image build's and the benches' variables count too


def command_lines():
    """(page, command, its options) for every `manage.py <command> …` and every `<command> --option` of ours."""
    commands = get_commands()
    ours = {name for name, app in commands.items() if app == "provisioning"}
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"manage\.py ([a-z_]+)([^\n`#>|]*)", text):
            yield page.name, match[1], re.findall(r"(?<![\w-])--[a-z][a-z-]*", match[2])
        for match in re.finditer(r"`([a-z_]+)((?: [^`\n]*)?)`", text):
            if match[1] in ours:
                yield page.name, match[1], re.findall(r"(?<![\w-])--[a-z][a-z-]*", match[2])


def test_the_docs_name_commands():
    assert len(list(command_lines())) > 30  # the reader still finds them


@pytest.mark.parametrize("page, command, options", sorted(set((p, c, tuple(o)) for p, c, o in command_lines())))
def test_every_command_the_docs_name_exists_with_its_options(page, command, options):
    commands = get_commands()
    assert command in commands, f"{page}: manage.py {command} does not exist"
    parser = load_command_class(commands[command], command).create_parser("manage.py", command)
    unknown = [option for option in options if option not in parser._option_string_actions]
    assert not unknown, f"{page}: manage.py {command} has no {', '.join(unknown)}"


def test_every_variable_the_docs_name_is_in_the_configuration_reference():
    documented = set(documented_rows())
    placeholders = {name for path in POLICIES.iterdir() for name in re.findall(r"\$\{(\w+)\}", path.read_text())}
    code = "\n".join(
        path.read_text() for package in ("provisioning", "orgdns_site") for path in (ROOT / package).rglob("*.py")
    )
    scripts = [
        ROOT / "Makefile",
        *(path for folder in SCRIPTS for path in (ROOT / folder).rglob("*") if path.is_file()),
    ]
    tooling = "\n".join(path.read_text(errors="replace") for path in scripts if path.suffix in ("", ".py", ".sh"))
    unknown = set()
    for page in PAGES:
        for span in re.findall(r"`([^`\n]+)`", page.read_text()):
            for name in VARIABLE.findall(span):
                read = name.removesuffix("_FILE")
                constant = re.search(rf"^{name}\b", code, re.M)  # a constant of the code the docs point to
                if name in EXAMPLE_VARIABLES or re.search(rf"\b{name}\b", tooling):  # the local stack's, a build's
                    continue
                if read not in documented and name not in placeholders and not constant:
                    unknown.add(f"{page.name}: {name}")
    assert not unknown, f"named in the docs but not in docs/configuration.md: {', '.join(sorted(unknown))}"
