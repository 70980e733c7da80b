"""environment.yml (conda) must install what pyproject.toml (pip) installs."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda package name -> pip name


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    conda_names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line)
        if m and m.group(1) not in ("python", "pip"):
            conda_names.add(CONDA_NAMES.get(m.group(1).lower(), m.group(1).lower()))
    assert conda_names == pip_names, f"only in environment.yml: {conda_names - pip_names}; only in pyproject: {pip_names - conda_names}"


def test_torch_requirement_stays_open_for_colab():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch>=2.1" in project["dependencies"]


def test_the_site_builder_is_an_optional_extra_outside_the_learners_install():
    """`.[site]` (python -m course_lib site build) names a maintained builder; neither pyproject's
    dependencies nor environment.yml (the learner's install, for conda) pull it in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    site = {_name(r) for r in project["optional-dependencies"]["site"]}
    assert {"sphinx", "myst-nb", "sphinx-book-theme", "sphinx-mathjax-offline"} <= site
    learner = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    environment = (ROOT / "environment.yml").read_text()
    assert not site & learner and not any(re.search(rf"^\s*- {re.escape(name)}\b", environment, re.MULTILINE) for name in site)
