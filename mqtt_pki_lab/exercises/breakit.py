"""Exercises of notebook 07 (break it): name the arrow at fault in each mystery, the file, a stronger key.

``course.check("mystery-3", 5)`` judges the arrow of mystery 3; ``course.check("mystery-4-file",
"client/client.key")`` the file at fault (for the mysteries whose notebook asks it);
``course.check("mystery-6-key-type", "ec-p256")`` (or ``"P-256"``) the key type to make ``server.key`` again with. The
judges and the hints live in :mod:`mqtt_pki_lab.mysteries`; every hint a wrong answer can earn is listed
in the exercise's ``hints`` (computed from the judges, so the list never drifts from what they say).
"""

from __future__ import annotations

from typing import Any

from .. import mysteries as M
from . import Verdict, exercise

NOTEBOOK = "07_break_it.ipynb"


def _arrow_hints(mystery: M.Mystery) -> tuple[str, ...]:
    return tuple(dict.fromkeys(mystery.hint_for(a) for a in M.ARROW_TITLES if a != mystery.arrow))


def _file_hints(mystery: M.Mystery) -> tuple[str, ...]:
    names = M.lab_file_names()
    found = (M.judge_file(mystery.number, name) for name in (*names, *(n.split("/")[-1] for n in names)))
    return tuple(dict.fromkeys(h for h in found if isinstance(h, str)))


def _register(mystery: M.Mystery) -> None:
    number = mystery.number

    def arrow_judge(answer: Any) -> Verdict:
        return M.answer_mystery(number, answer)

    def file_judge(answer: Any) -> Verdict:
        return M.answer_file(number, answer)

    exercise(mystery.exercise, NOTEBOOK, f"mystery {number}: the arrow (1-10) at fault", hint=mystery.hint,
             hints=_arrow_hints(mystery))(arrow_judge)
    if not mystery.asks_file:
        return
    exercise(f"{mystery.exercise}-file", NOTEBOOK, f"mystery {number}: the file at fault, as folder/name",
             hint=mystery.hint, hints=_file_hints(mystery))(file_judge)


for _mystery in M.MYSTERIES:
    _register(_mystery)


#: Wrong key types a student may write, one for each targeted hint of ``mystery-6-key-type``.
KEY_TYPE_MISTAKES = (*M.WEAK_KEY_TYPES, "rsa-4097", "EC", "ECDSA", "RSA", "X25519", "Curve25519")


def _key_type_hints() -> tuple[str, ...]:
    found = (M.judge_key_type(a) for a in KEY_TYPE_MISTAKES)
    return tuple(dict.fromkeys(h for h in found if isinstance(h, str)))


@exercise("mystery-6-key-type", NOTEBOOK, "mystery 6: a key type to make server.key again with",
          hint="choose one of the lab's key types (mqtt_pki_lab.keys.KEY_TYPES: "
               f"{', '.join(M.key_type_names())}).", hints=_key_type_hints())
def _key_type(answer: Any) -> Verdict:
    return M.judge_key_type(answer)
