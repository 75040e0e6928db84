"""The broker's policy (``broker/acl``): mosquitto's acl_file format read and written, mosquitto's decisions
(deny first, a client's own lines before the patterns, ``+``/``#``, ``%u``/``%c``), the lab's default written by
``build``, and the API and ``mqtt-pki-lab acl`` refusing bad input in one line with nothing on disk changed.

Real brokers enforcing the same file are in ``tests/test_mqtt_acl.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from test_safety import assert_one_line_refusal, tree

from mqtt_pki_lab import diagram as L
from mqtt_pki_lab.acl import (
    HEADER,
    Policy,
    Rule,
    default_policy,
    deny,
    grant,
    may,
    parse_policy,
    policy_path,
    policy_view,
    read_policy,
    reset_policy,
    topic_matches,
)
from mqtt_pki_lab.errors import InputError, RefusedError
from mqtt_pki_lab.export import mosquitto_conf_text
from mqtt_pki_lab.files import LabLock, mode_of
from mqtt_pki_lab.steps import Lab

DEFAULT = default_policy()


# --- the file format ---------------------------------------------------------------------------------------

def test_the_default_policy_round_trips_and_says_what_it_is() -> None:
    text = DEFAULT.text()
    assert text.splitlines()[-2:] == ["pattern readwrite devices/%u/#", "pattern read shared/#"]
    assert "man mosquitto.conf" in text and all(line.startswith("#") for line in HEADER)
    again = parse_policy(text)
    assert again == DEFAULT and again.header == HEADER and again.text() == text


def test_a_hand_written_file_is_read_as_mosquitto_reads_it() -> None:
    text = ("# a comment\r\n"
            "topic read public/#\n"             # before any user line: anonymous clients only
            "pattern write status/%u\n"
            "user sensor-2\n"
            "topic devices/client/status\n"    # no access word: read and write
            "   topic   deny    devices/client/secret  \n"
            "\n"
            "user client\n"
            "# comment inside\n"
            "topic read shared/news\n"
            "user sensor-2\n"                   # the same user again: one block
            "topic write shared/sensor-2\n")
    policy = parse_policy(text)
    assert policy.rules == (
        Rule("anonymous", "read", "public/#"),
        Rule("pattern", "write", "status/%u"),
        Rule("user", "readwrite", "devices/client/status", "sensor-2"),
        Rule("user", "deny", "devices/client/secret", "sensor-2"),
        Rule("user", "write", "shared/sensor-2", "sensor-2"),
        Rule("user", "read", "shared/news", "client"),
    )
    assert policy.header == ("# a comment",)
    assert parse_policy(policy.text()) == policy
    assert policy.text().count("user sensor-2") == 1


@pytest.mark.parametrize(("line", "words"), [
    ("topic readonly a/b", "unknown access 'readonly'"),
    ("pattern write a/#/b", "'#' must be a whole level"),
    ("topic read a+/b", "'+' must be a whole level"),
    ("user", "without a username"),
    ("topics read a", "not a rule"),
    ("topic", "no topic after 'topic'"),
    ("  # indented comment", "not a rule"),  # mosquitto too: only a # in the first column is a comment
    ("topic\tread a", "not a rule"),          # mosquitto splits words at spaces only
])
def test_a_line_mosquitto_would_refuse_is_named_with_its_number(line: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_policy(f"pattern read shared/#\n{line}\n", "pki/broker/acl")
    assert caught.value.where == "pki/broker/acl:2" and words in caught.value.problem


# --- matching and deciding, as mosquitto does -----------------------------------------------------------------

@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("devices/client/#", "devices/client/t", True), ("devices/client/#", "devices/client", True),
    ("devices/client/#", "devices/clientx/t", False), ("devices/+/t", "devices/a/t", True),
    ("devices/+/t", "devices/a/b/t", False), ("a/+", "a/", True), ("+/#", "a", True), ("#", "a/b/c", True),
    ("#", "$SYS/broker/uptime", False), ("+/broker", "$SYS/broker", False), ("$SYS/#", "$SYS/broker", True),
    ("a/b", "a/b/c", False), ("a/b/c", "a/b", False),
])
def test_topics_match_as_in_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


MIXED = parse_policy("pattern readwrite devices/%u/#\npattern read shared/#\npattern deny shared/secret/#\n"
                     "pattern deny devices/client/locked/#\npattern write in/%c\ntopic read open/#\n"
                     "user sensor-2\ntopic read devices/client/status\ntopic read shared/secret/sensor-2\n"
                     "user client\ntopic deny devices/client/private\n")


@pytest.mark.parametrize(("username", "topic", "action", "expected", "why"), [
    ("client", "devices/client/t", "write", True, "its own subtree"),
    ("client", "devices/client/t", "read", True, "its own subtree"),
    ("sensor-2", "devices/client/t", "write", False, "another device's topic"),
    ("sensor-2", "devices/client/t", "read", False, "another device's topic"),
    ("client", "shared/x", "read", True, "shared is read-only for all"),
    ("client", "shared/x", "write", False, "a read rule gives no write"),
    ("client", "shared/secret/x", "read", False, "a pattern deny beats a pattern grant"),
    ("sensor-2", "shared/secret/sensor-2", "read", True, "its own line beats a deny for all"),
    ("sensor-2", "devices/client/status", "read", True, "granted to it alone"),
    ("sensor-2", "devices/client/status", "write", False, "granted read only"),
    ("client", "devices/client/private", "write", False, "its own deny beats the pattern grant"),
    ("client", "devices/client/locked/x", "write", False, "a pattern deny of part of its own subtree"),
    ("client", "open/x", "read", False, "topic lines before any user line are for anonymous clients"),
    (None, "open/x", "read", True, "an anonymous client"),
    (None, "devices/client/t", "read", False, "an anonymous client has no %u"),
    ("+", "devices/client/t", "write", False, "a username + would match every device: mosquitto refuses it"),
])
def test_may_decides_as_mosquitto(username: str | None, topic: str, action: str, expected: bool, why: str) -> None:
    assert may(MIXED, username, topic, action) is expected, why


def test_client_id_fills_percent_c_and_is_needed_for_it() -> None:
    assert may(MIXED, "client", "in/id-1", "write", client_id="id-1")
    assert not may(MIXED, "client", "in/id-1", "write", client_id="id-2")
    assert not may(MIXED, "client", "in/id-1", "write")
    assert not may(MIXED, "client", "devices/client/t", "write", client_id="bad#id")


def test_an_empty_policy_refuses_everything_and_may_wants_a_topic_name() -> None:
    assert not may(parse_policy(""), "client", "devices/client/t", "write")
    with pytest.raises(InputError, match="is a filter"):
        may(DEFAULT, "client", "devices/client/#", "read")
    with pytest.raises(InputError, match="choose read"):
        may(DEFAULT, "client", "devices/client/t", "publish")


def test_grant_merges_and_deny_replaces_the_same_pattern() -> None:
    policy = DEFAULT.with_grant("sensor-2", "shared/x", "read").with_grant("sensor-2", "shared/x", "write")
    assert [r for r in policy.rules if r.user == "sensor-2"] == [Rule("user", "readwrite", "shared/x", "sensor-2")]
    denied = policy.with_deny(None, "devices/%u/#")
    assert Rule("pattern", "deny", "devices/%u/#") in denied.rules
    assert not any(r.access == "readwrite" and r.topic == "devices/%u/#" for r in denied.rules)
    assert denied.with_grant(None, "devices/%u/#").rules == DEFAULT.with_grant("sensor-2", "shared/x").rules
    assert policy.with_grant("sensor-2", "shared/x", "read") == policy


def test_the_view_per_client_shows_own_lines_first() -> None:
    text = MIXED.describe(["client", "sensor-2"])
    line = next(x for x in text.splitlines() if x.strip().startswith("sensor-2"))
    assert "may read devices/client/status" in line and "its own lines, checked first" in line
    assert "may read and write devices/sensor-2/#" in line
    assert "anonymous clients" in text


# --- the lab's file --------------------------------------------------------------------------------------

def test_build_writes_the_default_policy_and_a_forced_build_keeps_an_edited_one(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "pki")
    lab.build_all()
    path = policy_path(lab)
    assert path == tmp_path / "pki" / "broker" / "acl" and mode_of(path) == 0o644
    assert read_policy(lab) == DEFAULT and path.read_text() == DEFAULT.text()
    grant(lab, None, "shared/#", "readwrite")
    edited = path.read_text()
    lab.build_all(force=True)
    assert path.read_text() == edited


def test_grant_deny_reset_through_the_api(lab_copy: Path) -> None:
    Lab(lab_copy).add_client("sensor-2")
    policy = grant(lab_copy, "sensor-2", "devices/client/status", "read")
    assert read_policy(lab_copy) == policy and may(policy, "sensor-2", "devices/client/status", "read")
    policy = deny(lab_copy, "all", "shared/#")
    assert not may(read_policy(lab_copy), "client", "shared/x", "read")
    assert "sensor-2" in policy_view(lab_copy) and "denied shared/#" in policy_view(lab_copy)
    assert reset_policy(lab_copy) == DEFAULT == read_policy(lab_copy)


def test_cli_shows_grants_denies_and_resets(lab_copy: Path) -> None:
    Lab(lab_copy).add_client("sensor-2")
    shown = run_cli("acl", str(lab_copy))
    assert shown.returncode == 0, shown.stderr
    assert "sensor-2  may read and write devices/sensor-2/#; may read shared/#" in shown.stdout
    done = run_cli("acl", str(lab_copy), "grant", "sensor-2", "devices/client/status", "--access", "read")
    assert done.returncode == 0 and "may read devices/client/status" in done.stdout, done.stderr
    done = run_cli("acl", str(lab_copy), "deny", "--all", "shared/secret")
    assert done.returncode == 0 and "denied shared/secret" in done.stdout, done.stderr
    assert "user sensor-2\ntopic read devices/client/status" in policy_path(lab_copy).read_text()
    assert run_cli("acl", str(lab_copy), "--reset").returncode == 0
    assert policy_path(lab_copy).read_text() == DEFAULT.text()


def test_a_lab_made_before_policies_is_told_how_to_make_one(lab_copy: Path) -> None:
    policy_path(lab_copy).unlink()
    before = tree(lab_copy)
    with pytest.raises(InputError, match=r"acl .* --reset"):
        read_policy(lab_copy)
    conf = mosquitto_conf_text(lab_copy, 8883)
    assert "acl_file" not in "\n".join(x for x in conf.splitlines() if not x.startswith("#"))
    assert f"mqtt-pki-lab acl {lab_copy.resolve()} --reset" in conf
    assert tree(lab_copy) == before  # the export wrote nothing into the lab
    shown = run_cli("acl", str(lab_copy))
    assert_one_line_refusal(shown, "acl", 2, "--reset")
    assert run_cli("acl", str(lab_copy), "--reset").returncode == 0 and read_policy(lab_copy) == DEFAULT


def test_the_exported_conf_points_at_the_policy(built_lab: Path) -> None:
    lines = mosquitto_conf_text(built_lab, 8883).splitlines()
    assert f"acl_file {policy_path(built_lab).resolve()}" in lines
    assert {"require_certificate true", "use_identity_as_username true"} <= set(lines)


# --- bad input: one line, nothing changed -------------------------------------------------------------------

BAD = {
    "newline": (("grant", "--all", "devices/a\nb"), "contains a newline"),
    "hash-in-the-middle": (("grant", "--all", "devices/#/status"), "'#' must be a whole level"),
    "plus-inside-a-level": (("grant", "--all", "a+/b"), "'+' must be a whole level"),
    "unknown-access": (("grant", "client", "shared/#", "--access", "all"), "invalid choice"),
    "unknown-client": (("grant", "nobody", "shared/#"), "no such client"),
    "deny-unknown-client": (("deny", "nobody", "shared/#"), "no such client"),
    "percent-u-for-one-client": (("grant", "client", "devices/%u/#"), "for rules for every client"),
    "percent-u-inside-a-level": (("grant", "--all", "devices/x%u/#"), "only text of their level"),
    "empty-pattern": (("deny", "--all", ""), "the topic is empty"),
    "blank-at-the-end": (("grant", "--all", "shared/# "), "blank"),
    "missing-pattern": (("grant", "client"), "NAME and PATTERN"),
    "reset-and-grant": (("--reset", "grant", "--all", "x"), "takes nothing else"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_acl_input_is_refused_in_one_line_and_changes_nothing(case: str, lab_copy: Path) -> None:
    args, words = BAD[case]
    before = tree(lab_copy.parent)
    done = run_cli("acl", str(lab_copy), *args)
    assert tree(lab_copy.parent) == before, case
    prog = "acl dir grant" if case == "unknown-access" else "acl"
    assert_one_line_refusal(done, prog, 2, words)


@pytest.mark.parametrize("text", ["topic readonly a", "pattern read a/#/b", "bogus"])
def test_a_damaged_policy_file_is_named_and_left_alone(lab_copy: Path, text: str) -> None:
    policy_path(lab_copy).write_text(f"pattern read shared/#\n{text}\n")
    before = tree(lab_copy.parent)
    for args in ((), ("grant", "--all", "x/#")):
        done = run_cli("acl", str(lab_copy), *args)
        assert_one_line_refusal(done, "acl", 2, "broker/acl:2")
    done = run_cli("export", "mosquitto-conf", str(lab_copy))
    assert_one_line_refusal(done, "export", 2, "broker/acl:2")
    assert tree(lab_copy.parent) == before


def test_a_policy_that_is_a_link_is_never_written_through(lab_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(DEFAULT.text())
    path = policy_path(lab_copy)
    path.unlink()
    path.symlink_to(elsewhere)
    before = tree(tmp_path)
    for call in (lambda: grant(lab_copy, None, "x/#"), lambda: reset_policy(lab_copy), lambda: read_policy(lab_copy)):
        with pytest.raises(InputError, match="symbolic link"):
            call()
    assert tree(tmp_path) == before


def test_a_locked_lab_is_not_edited(lab_copy: Path) -> None:
    before = tree(lab_copy)
    with LabLock(lab_copy), pytest.raises(RefusedError, match="another mqtt-pki-lab command"):
        grant(lab_copy, None, "x/#")
    assert tree(lab_copy) == before


def test_api_bad_input_names_the_argument(lab_copy: Path) -> None:
    with pytest.raises(InputError) as caught:
        grant(lab_copy, None, "x/#", "deny")
    assert caught.value.where == "--access"
    with pytest.raises(InputError) as caught:
        grant(lab_copy, "bad name", "x/#")
    assert caught.value.where == "NAME"
    with pytest.raises(InputError, match="not a topic"):
        deny(lab_copy, None, 42)  # type: ignore[arg-type]
    assert read_policy(lab_copy) == DEFAULT
    assert sorted(p.name for p in (lab_copy / L.BROKER.folder).iterdir()) == [
        "acl", "ca.crt", "server.crt", "server.csr", "server.key"]  # no temporary file left
    shutil.rmtree(lab_copy / "broker")
    with pytest.raises(InputError, match="build the lab first"):
        reset_policy(lab_copy)


def test_policy_equality_ignores_the_header() -> None:
    assert Policy(DEFAULT.rules) == DEFAULT
