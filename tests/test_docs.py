"""The README and docs/ say what the code does: the two commands, live links, every notebook, a fresh reference."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

from mqtt_pki_lab.course import NOTEBOOKS

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_first_thing_is_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert first_block, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in first_block[1].splitlines()]
    assert commands == ["python3 run.py lab", "python3 run.py test"]
    assert README.index("```bash") < README.index("## "), "the commands come before the first section"
    run_py = (REPO / "run.py").read_text(encoding="utf-8")
    assert '"lab": lab' in run_py and '"test": test' in run_py


def test_relative_links_and_images_exist() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert "docs/course-screenshot.png" in local and "docs/reference.md" in local
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_teachers_table_names_every_notebook() -> None:
    table = README[README.index("### What each notebook covers"):]
    for name, _title in NOTEBOOKS:
        assert f"`{name.removesuffix('.ipynb')}`" in table, name


def test_reference_is_generated_from_the_current_code() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docs" / "make_reference.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
