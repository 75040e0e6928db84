"""Who may do what: the broker's policy ``broker/acl``, in mosquitto's ``acl_file`` format.

TLS proves *who* a client is (its certificate's Common Name becomes its MQTT username:
``use_identity_as_username true``); the policy says *what* that name may do. The lab keeps it in
``broker/acl``, a file mosquitto reads itself (``acl_file`` in the exported ``mosquitto.conf``) and the
embedded broker enforces through :func:`may`, so both brokers give the same answer.

**The format** (``man mosquitto.conf``, ``acl_file``; parsed as mosquitto 2.0's ``src/security_default.c``
does). One rule per line; a line whose first character is ``#`` is a comment::

    pattern readwrite devices/%u/#      every client: %u is replaced by its username (%c by its client id)
    pattern read shared/#               every client may read shared/...
    user sensor-2                       the topic lines below are for the username sensor-2 only
    topic read devices/client/status

* The access is ``read`` (receive messages), ``write`` (publish), ``readwrite`` or ``deny``; a line without
  one means ``readwrite``. A topic is an MQTT filter: ``+`` is one whole level, ``#`` the last level.
* ``topic`` lines *before* any ``user`` line are for **anonymous** clients only (no username). This broker has
  none (every client shows a certificate), which is why rules for every client are ``pattern`` lines.
* ``%u`` and ``%c`` are substituted in ``pattern`` lines only; the man page asks that they fill a whole level.

**How mosquitto decides** (for a PUBLISH it checks ``write`` on the message's topic; for each delivery to a
subscriber it checks ``read`` on the message's topic):

1. the ``user`` lines of this username: a matching ``deny`` refuses at once; a matching grant with the right
   access allows at once; otherwise, on to the patterns (so a grant to one client beats a ``deny`` for all);
2. the ``pattern`` lines: a matching ``deny`` refuses, a matching grant with the right access allows;
3. anything else is refused. (A username or client id containing ``+`` or ``#`` is refused everything when
   there are patterns: it could otherwise match other clients' topics.)

A refused PUBLISH is **silently dropped**: mosquitto 2.0.11 still acknowledges a QoS 1 message (PUBACK; over
MQTT 3.1.1 there is no reason code to carry the refusal) and logs ``Denied PUBLISH``. A SUBSCRIBE is **never
refused** by mosquitto 2.0's ``acl_file`` (its source says "FIXME - implement ACL subscription strings"): the
SUBACK grants the QoS asked for, and every message is then checked for ``read`` on its way out, so a forbidden
subscription receives nothing. Both were measured on mosquitto 2.0.11 with paho-mqtt 2.2.

**The lab's default** (:func:`default_policy`, written by ``build``): every client may read and write
``devices/<its username>/#`` and read ``shared/#``; nothing else. mosquitto warns at start that
``shared/#`` "does not contain '%c' or '%u'": expected, it is a rule for every client.

**Editing** (:func:`grant`, :func:`deny`, :func:`reset_policy`) happens under the lab's lock and through an
atomic write (:mod:`~mqtt_pki_lab.files`): a refused edit changes nothing. A grant of the same pattern to the
same client (or to all) adds access to the existing line and removes a ``deny`` of it; a deny replaces it.
Comment lines after the first rule are not kept when the lab rewrites the file (the header is).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import diagram as D
from .errors import InputError
from .files import LabLock, check_folder, check_lab_path, read_bytes, write_atomic

Access = Literal["read", "write", "readwrite", "deny"]
RuleKind = Literal["pattern", "user", "anonymous"]
#: The access words of mosquitto's acl_file, and what each allows (bit 1 read, bit 2 write).
ACCESS_BITS: dict[str, int] = {"read": 1, "write": 2, "readwrite": 3, "deny": 0}
#: The words :func:`grant` takes (``deny`` has its own function).
GRANTS: tuple[str, ...] = ("read", "write", "readwrite")
#: What :func:`may` is asked about: receiving a message (``read``) or publishing one (``write``).
ACTIONS: tuple[str, ...] = ("read", "write")
#: ``who`` meaning every client (a ``pattern`` line); ``None`` means the same.
EVERY_CLIENT = "all"
#: The lab's default topics: each client's own subtree (``%u`` is its username), and a topic all may read.
OWN_TOPICS = "devices/%u/#"
SHARED_TOPICS = "shared/#"
#: mosquitto's limits on a topic filter (``mosquitto_sub_topic_check``): bytes and levels.
MAX_TOPIC_BYTES = 65535
MAX_TOPIC_LEVELS = 200
_BLANKS = " \t\n\v\f\r"  # C's isspace(): what mosquitto trims from a line and a topic

HEADER: tuple[str, ...] = (
    "# broker/acl: which MQTT topics each client may read and write (made by mqtt-pki-lab).",
    "# The format is mosquitto's acl_file (man mosquitto.conf): `pattern ACCESS TOPIC` is for every client,",
    "# %u standing for its username (the Common Name of its certificate); `user NAME` starts lines",
    "# `topic ACCESS TOPIC` for that client only. ACCESS is read, write, readwrite or deny. mosquitto checks a",
    "# client's own lines first, then the patterns, deny first within each; what is not granted is refused.",
    "# mosquitto warns at start that shared/# has no %u: that is expected.",
    "# Change it with: mqtt-pki-lab acl DIR grant NAME|--all TOPIC [--access ...] / deny; back to this: --reset",
)


@dataclass(frozen=True)
class Rule:
    """One line of the policy: ``pattern ACCESS TOPIC`` (every client), or ``topic ACCESS TOPIC`` for one
    username (``kind="user"``, after a ``user NAME`` line) or for anonymous clients (before any ``user`` line)."""

    kind: RuleKind
    access: Access
    topic: str
    user: str | None = None
    """The username a ``user`` rule is for; None for patterns and anonymous rules."""

    @property
    def line(self) -> str:
        """The line of ``broker/acl`` (without the ``user NAME`` line that precedes a user rule)."""
        return f"{'pattern' if self.kind == 'pattern' else 'topic'} {self.access} {self.topic}"

    @property
    def who(self) -> str:
        """``every client``, ``client 'sensor-2'`` or ``anonymous clients``."""
        return {"pattern": "every client", "anonymous": "anonymous clients"}.get(self.kind, f"client {self.user!r}")


def _order(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Rules in the order a file lists them: anonymous lines, patterns, then each user's block in turn."""
    rules = tuple(rules)
    users = list(dict.fromkeys(r.user for r in rules if r.kind == "user"))
    rank = {"anonymous": (0, 0), "pattern": (1, 0)}
    return tuple(sorted(rules, key=lambda r: rank.get(r.kind) or (2, users.index(r.user))))


@dataclass(frozen=True)
class Policy:
    """The rules of ``broker/acl`` (kept in file order) and the comment lines at its top."""

    rules: tuple[Rule, ...] = ()
    header: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", _order(self.rules))

    def text(self) -> str:
        """The file, as mosquitto reads it: header, anonymous ``topic`` lines, ``pattern`` lines, ``user`` blocks."""
        lines = list(self.header)
        user: str | None = None
        for rule in self.rules:
            if rule.kind == "user" and rule.user != user:
                user = rule.user
                lines += ["", f"user {user}"]
            lines.append(rule.line)
        return "\n".join(lines) + "\n"

    __str__ = text

    def users(self) -> tuple[str, ...]:
        """The usernames that have ``user`` lines of their own."""
        return tuple(dict.fromkeys(r.user for r in self.rules if r.kind == "user" and r.user is not None))

    def may(self, username: str | None, topic: str, action: str, *, client_id: str | None = None) -> bool:
        """Shorthand for :func:`may` on this policy."""
        return may(self, username, topic, action, client_id=client_id)

    def rules_for(self, username: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """What applies to ``username``, as ``(access, topic)``: its own lines (checked first), then the
        patterns with ``%u`` filled in."""
        own = [(r.access, r.topic) for r in self.rules if r.kind == "user" and r.user == username]
        return own, [(r.access, substitute(r.topic, username, None) or r.topic)
                     for r in self.rules if r.kind == "pattern"]

    def describe(self, usernames: Iterable[str] = ()) -> str:
        """A short view per client: what it may read and write, and what is denied to it."""
        names = list(dict.fromkeys([*usernames, *self.users()]))
        known = set(usernames)
        lines = [f"{len(self.rules)} rule{'s' * (len(self.rules) != 1)}; a client's own lines first, then the "
                 "patterns (deny first within each); anything not granted is refused"]
        patterns = [r for r in self.rules if r.kind == "pattern"]
        if patterns:
            lines.append("  every client: " + "; ".join(f"{r.access} {r.topic}" for r in patterns))
        width = max((len(n) for n in names), default=0)
        for name in names:
            own, patterns_for = self.rules_for(name)
            words = _summary(patterns_for) or "nothing (every topic is refused)"
            if own:
                words = f"{_summary(own)} (its own lines, checked first); then {words}"
            stray = "" if name in known or not known else "  (no such client in this lab)"
            lines.append(f"  {name:<{width}}  {words}{stray}")
        anonymous = [r for r in self.rules if r.kind == "anonymous"]
        if anonymous:
            lines.append("  anonymous clients (none can connect: every client shows a certificate): "
                         + "; ".join(f"{r.access} {r.topic}" for r in anonymous))
        return "\n".join(lines)

    # -- changes (pure: they return a new policy) ---------------------------------------------------
    def with_grant(self, user: str | None, topic: str, access: str = "readwrite") -> Policy:
        """This policy with ``access`` to ``topic`` granted to ``user`` (None: every client): merged into an
        existing grant of the same topic, replacing a ``deny`` of it."""
        kind: RuleKind = "pattern" if user is None else "user"
        same = [r for r in self.rules if (r.kind, r.user, r.topic) == (kind, user, topic)]
        bits = ACCESS_BITS[access]
        for rule in same:
            bits |= ACCESS_BITS[rule.access]
        merged = next(a for a, b in ACCESS_BITS.items() if b == bits and a != "deny")
        return self._replace(kind, user, topic, Rule(kind, merged, topic, user))  # type: ignore[arg-type]

    def with_deny(self, user: str | None, topic: str) -> Policy:
        """This policy with ``topic`` denied to ``user`` (None: every client), replacing a grant of it."""
        kind: RuleKind = "pattern" if user is None else "user"
        return self._replace(kind, user, topic, Rule(kind, "deny", topic, user))

    def _replace(self, kind: str, user: str | None, topic: str, new: Rule) -> Policy:
        rules: list[Rule] = []
        for rule in self.rules:
            if (rule.kind, rule.user, rule.topic) != (kind, user, topic):
                rules.append(rule)
            elif new not in rules:
                rules.append(new)
        if new not in rules:
            rules.append(new)
        return Policy(tuple(rules), self.header)


def _summary(rules: list[tuple[str, str]]) -> str:
    groups: dict[str, list[str]] = {}
    for access, topic in rules:
        groups.setdefault(access, []).append(topic)
    words = {"readwrite": "may read and write", "read": "may read", "write": "may write", "deny": "denied"}
    return "; ".join(f"{words[a]} {', '.join(groups[a])}" for a in ("deny", "readwrite", "read", "write")
                     if a in groups)


def default_policy() -> Policy:
    """The lab's default: every client reads and writes ``devices/<its username>/#`` and reads ``shared/#``."""
    return Policy((Rule("pattern", "readwrite", OWN_TOPICS), Rule("pattern", "read", SHARED_TOPICS)), HEADER)


# --- topics -----------------------------------------------------------------------------------------------

def topic_matches(topic_filter: str, topic: str) -> bool:
    """Does ``topic`` match ``topic_filter``? MQTT 3.1.1 §4.7 as mosquitto's ``mosquitto_topic_matches_sub``.

    ``+`` matches exactly one level (also an empty one), ``#`` any number of levels *including none*
    (``devices/#`` matches ``devices``), and a filter starting with a wildcard does not match a topic starting
    with ``$`` (``#`` does not match ``$SYS/...``).
    """
    if not topic_filter or not topic or (topic_filter[0] == "$") != (topic[0] == "$"):
        return False
    levels, names = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(names) or level not in ("+", names[i]):
            return False
    return len(levels) == len(names)


def substitute(topic: str, username: str | None, client_id: str | None) -> str | None:
    """A pattern with ``%u`` and ``%c`` filled in, as mosquitto does it (anywhere in the text); None when the
    pattern needs a value that is missing (mosquitto skips such a pattern)."""
    if ("%u" in topic and username is None) or ("%c" in topic and client_id is None):
        return None
    out, i = [], 0
    while i < len(topic):
        pair = topic[i:i + 2]
        if pair in ("%u", "%c"):
            out.append(username if pair == "%u" else client_id)  # type: ignore[arg-type]
            i += 2
        else:
            out.append(topic[i])
            i += 1
    return "".join(out)


def check_pattern(topic: object, where: str = "PATTERN", *, strict: bool = True, for_one: bool = False) -> str:
    """A topic filter for a rule, checked; returned unchanged.

    Always (what mosquitto refuses at start, ``mosquitto_sub_topic_check``): not empty; ``+`` a whole level;
    ``#`` a whole level and the last; at most 65535 bytes and 200 levels. Also: no control character (a newline
    would start a new rule of its own) and no blank at either end (mosquitto trims them). ``strict`` (a rule the
    lab writes): ``%u`` and ``%c`` fill a whole level, as the man page asks; ``for_one`` (a rule for one client):
    no ``%u``/``%c`` at all: a rule for one client names its topic directly.
    """
    if not isinstance(topic, str):
        raise InputError(where, f"{topic!r} is not a topic (give text such as devices/sensor-1/#)")
    if not topic:
        raise InputError(where, "the topic is empty; give one such as devices/sensor-1/#")
    bad = next((c for c in topic if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        what = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\0": "a NUL"}.get(bad, "a control "
                                                                                                "character")
        raise InputError(where, f"{topic!r} contains {what}; one rule is one line of broker/acl, so a topic "
                                "holds no control characters")
    if topic.strip(_BLANKS) != topic:
        raise InputError(where, f"{topic!r} starts or ends with a blank, which mosquitto would cut off")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise InputError(where, f"{topic!r}: '#' must be a whole level and the last one (MQTT 3.1.1 "
                                    "section 4.7.1.2), e.g. devices/#")
        if "+" in level and level != "+":
            raise InputError(where, f"{topic!r}: '+' must be a whole level (MQTT 3.1.1 section 4.7.1.3), "
                                    "e.g. devices/+/status")
        if strict and ("%u" in level or "%c" in level) and level not in ("%u", "%c"):
            raise InputError(where, f"{topic!r}: %u and %c must be the only text of their level (man "
                                    "mosquitto.conf, acl_file), e.g. devices/%u/#")
    if len(topic.encode()) > MAX_TOPIC_BYTES or len(levels) > MAX_TOPIC_LEVELS + 1:
        raise InputError(where, f"the topic is longer than mosquitto accepts ({MAX_TOPIC_BYTES} bytes, "
                                f"{MAX_TOPIC_LEVELS} levels)")
    if for_one and ("%u" in topic or "%c" in topic):
        raise InputError(where, f"{topic!r}: %u and %c are for rules for every client (--all); a rule for one "
                                "client names its topic directly, e.g. devices/sensor-1/#")
    return topic


def _check_topic_name(topic: object) -> str:
    if not isinstance(topic, str) or not topic:
        raise InputError("topic", f"{topic!r} is not a topic name (give one such as devices/client/hello)")
    if "+" in topic or "#" in topic:
        raise InputError("topic", f"{topic!r} is a filter; may() answers for one topic name, as mosquitto checks "
                                  "each PUBLISH and each delivery by its topic (e.g. devices/client/hello)")
    return topic


# --- the decision -----------------------------------------------------------------------------------------

def _decide(rules: Iterable[Rule], want: int, topic_of: Any, topic: str) -> bool | None:
    """mosquitto's loop over one list: a matching deny refuses, a matching grant with the access allows;
    None when nothing decided (denies come first in mosquitto's lists, so their order does not matter)."""
    rules = list(rules)
    for rule in [r for r in rules if r.access == "deny"] + [r for r in rules if r.access != "deny"]:
        pattern = topic_of(rule)
        if pattern is None or not topic_matches(pattern, topic):
            continue
        if rule.access == "deny":
            return False
        if ACCESS_BITS[rule.access] & want:
            return True
    return None


def may(policy: Policy, username: str | None, topic: str, action: str, *, client_id: str | None = None) -> bool:
    """Whether mosquitto (and the embedded broker) lets ``username`` ``read`` or ``write`` ``topic``.

    ``read`` is receiving a message published on ``topic`` (checked for every delivery: a subscription to a
    forbidden topic is accepted but receives nothing); ``write`` is publishing to it (a refused message is
    dropped). ``username`` None is an anonymous client. ``client_id`` fills ``%c``; without it, patterns using
    ``%c`` are skipped. The order of the checks is mosquitto 2.0's: see the module's notes. Pure: no I/O.
    """
    if action not in ACTIONS:
        raise InputError("action", f"{action!r}: choose read (receive messages) or write (publish)")
    topic, want = _check_topic_name(topic), ACCESS_BITS[action]
    own = [r for r in policy.rules if (r.kind == "anonymous" if username is None else
                                       (r.kind == "user" and r.user == username))]
    decided = _decide(own, want, lambda r: r.topic, topic)
    if decided is not None:
        return decided
    patterns = [r for r in policy.rules if r.kind == "pattern"]
    if patterns and any(w is not None and ("+" in w or "#" in w) for w in (username, client_id)):
        return False  # mosquitto: "ACL denying access to client with dangerous username/client id"
    return bool(_decide(patterns, want, lambda r: substitute(r.topic, username, client_id), topic))


# --- the file ---------------------------------------------------------------------------------------------

def parse_policy(text: str, where: str = "broker/acl") -> Policy:
    """Read the acl_file format as mosquitto 2.0 does; a line mosquitto would refuse (and so not start) is an
    :class:`InputError` naming ``where:LINE``. Comment lines before the first rule are kept as the header."""
    rules: list[Rule] = []
    header: list[str] = []
    user: str | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip(_BLANKS)
        place = f"{where}:{number}"
        if line.startswith("#") or not line.strip(" "):
            if not rules and user is None and line.startswith("#"):
                header.append(line)
            continue
        keyword, _, rest = line.lstrip(" ").partition(" ")
        if keyword in ("topic", "pattern"):
            access, _, topic = rest.lstrip(" ").partition(" ")
            if not access:
                raise InputError(place, f"{line!r}: no topic after {keyword!r}")
            topic = topic.strip(_BLANKS)
            if not topic:
                access, topic = "readwrite", access  # mosquitto: a lone word is the topic, read and write
            if access not in ACCESS_BITS:
                raise InputError(place, f"{line!r}: unknown access {access!r}; mosquitto knows read, write, "
                                        "readwrite and deny")
            check_pattern(topic, place, strict=False)
            kind: RuleKind = "pattern" if keyword == "pattern" else ("anonymous" if user is None else "user")
            rules.append(Rule(kind, access, topic, user if kind == "user" else None))  # type: ignore[arg-type]
        elif keyword == "user":
            user = rest.strip(_BLANKS)
            if not user:
                raise InputError(place, "a `user` line without a username")
        else:
            raise InputError(place, f"{line!r}: not a rule; mosquitto's acl_file has `topic`, `pattern` and "
                                    "`user` lines (and # comments)")
    return Policy(tuple(rules), tuple(header))


def format_policy(policy: Policy) -> str:
    """The text of ``broker/acl`` for ``policy`` (:meth:`Policy.text`)."""
    return policy.text()


def _root(lab_or_root: Any) -> Path:
    """The lab folder of a :class:`~mqtt_pki_lab.steps.Lab` or a path (a ``Path`` has a ``root`` of its own)."""
    return check_lab_path(lab_or_root if isinstance(lab_or_root, str | os.PathLike) else lab_or_root.root)


def policy_path(lab_or_root: Any) -> Path:
    """Where the lab keeps its policy: ``broker/acl``."""
    return _root(lab_or_root) / D.BROKER.folder / D.ACL_FILE


def read_policy_file(path: str | Path) -> Policy:
    """Read and check a policy file (bounded, a regular file, never through a link); an empty file is a policy
    that refuses everything, as for mosquitto."""
    path = Path(path)
    if path.is_symlink():
        raise InputError(path, "is a symbolic link; the lab never follows links (make it a real file)")
    try:
        data = read_bytes(path)
    except InputError as exc:
        if exc.problem != "the file is empty":
            raise
        data = b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "is not UTF-8 text; mosquitto's acl_file is a text file of rules") from None
    return parse_policy(text, str(path))


def policy_file_for(side: D.Side, acl: str | Path | bool = True) -> Path | None:
    """The policy file a broker on ``side`` enforces (the brokers' ``acl`` argument), checked.

    True: the ``acl`` file beside ``server.crt`` (``broker/acl``) when there is one (a lab made by an older
    version has none: then no policy, every client may use every topic); False: none; a path: that file.
    The file is parsed first (:func:`read_policy_file`), so a line mosquitto would refuse at start is named
    with its line number before any broker starts.
    """
    if acl is False:
        return None
    path = Path(side.cert).parent / D.ACL_FILE if acl is True else Path(acl)
    if acl is True and not os.path.lexists(path):
        return None
    read_policy_file(path)
    return path


def read_policy(lab_or_root: Any) -> Policy:
    """The lab's policy, read from ``broker/acl``; a lab without one is told how to make it."""
    root = _root(lab_or_root)
    path = policy_path(root)
    if not os.path.lexists(path):
        raise InputError(path, f"missing: the broker's policy (who may use which topic); a lab made by an older "
                               f"version has none. Make the default one: mqtt-pki-lab acl {root} --reset")
    return read_policy_file(path)


def _check_lab(root: Path) -> Path:
    if not root.is_dir():
        raise InputError(root, "no such lab folder; make one with: mqtt-pki-lab build DIR")
    if not check_folder(root, D.BROKER.folder):
        raise InputError(root / D.BROKER.folder, "no such folder: the broker's files are made by arrows 3-5; "
                                                 f"build the lab first: mqtt-pki-lab build {root}")
    path = policy_path(root)
    if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
        raise InputError(path, "is a symbolic link or a folder where the lab keeps its policy; move it away "
                               "(the lab never writes through links)")
    return path


def _write(root: Path, policy: Policy) -> None:
    path = _check_lab(root)
    write_atomic(path, policy.text().encode(), secret=False)


def _check_who(who: str | None) -> str | None:
    """None (every client) or a client name, checked as the lab checks names."""
    if who is None or who == EVERY_CLIENT:
        return None
    from .names import check_client_name

    return check_client_name(who, "NAME")


def _check_client(root: Path, name: str) -> None:
    """``name`` must be a client of the lab (a username its certificates name)."""
    from .steps import Lab

    names = Lab(root).client_names()
    if name not in names:
        raise InputError(name, f"no such client in the lab {str(root)!r} (its clients: "
                               f"{', '.join(sorted(names)) or 'none'}); add it first: mqtt-pki-lab add-client "
                               f"{root} {name}")


def _edit(lab_or_root: Any, who: str | None, topic: str, change: Any) -> Policy:
    root = _root(lab_or_root)
    user = _check_who(who)
    check_pattern(topic, "PATTERN", for_one=user is not None)
    _check_lab(root)
    if user is not None:
        _check_client(root, user)
    with LabLock(root):
        policy = read_policy(root)
        changed = change(policy, user, topic)
        if changed != policy:
            _write(root, changed)
    return changed


def grant(lab_or_root: Any, who: str | None, pattern: str, access: str = "readwrite") -> Policy:
    """Let ``who`` (a client's name, or ``"all"``/None for every client) ``access`` topics matching ``pattern``.

    ``access`` is ``read``, ``write`` or ``readwrite`` (mosquitto's words; the default, as in mosquitto). For
    every client the rule is a ``pattern`` line and may use ``%u`` (``devices/%u/status``); for one client it
    goes under ``user NAME``, and the name must be a client of the lab. Returns the policy as written.
    """
    if access not in GRANTS:
        raise InputError("--access", f"{access!r}: choose read, write or readwrite (to refuse, use deny)")
    return _edit(lab_or_root, who, pattern, lambda p, u, t: p.with_grant(u, t, access))


def deny(lab_or_root: Any, who: str | None, pattern: str) -> Policy:
    """Refuse ``who`` (a client's name, or ``"all"``/None) every access to topics matching ``pattern``.

    A deny beats the grants of its own list (mosquitto checks denies first), but a grant to one client still
    beats a deny for every client: the client's own lines are checked before the patterns.
    """
    return _edit(lab_or_root, who, pattern, lambda p, u, t: p.with_deny(u, t))


def reset_policy(lab_or_root: Any) -> Policy:
    """Write the default policy (:func:`default_policy`) to ``broker/acl``, replacing whatever is there."""
    root = _root(lab_or_root)
    _check_lab(root)
    policy = default_policy()
    with LabLock(root):
        _write(root, policy)
    return policy


def policy_view(lab_or_root: Any) -> str:
    """The lab's policy per client, in a few lines (what ``mqtt-pki-lab acl DIR`` prints)."""
    from .steps import Lab

    root = _root(lab_or_root)
    policy = read_policy(root)
    names = Lab(root).client_names()
    return f"{policy_path(root)}: {policy.describe(names)}"
