#!/usr/bin/env python
"""What a new user's ``pip install`` does to an Airflow deployment, checked for the built wheel and every extra.

    python scripts/check_install.py                  # every extra; writes build/install-check.json
    python scripts/check_install.py --extras emr,yarn

It builds the wheel (build/dist), then per extra (none, spark, yarn, kubernetes, emr, all) makes a clean venv
under build/install-check/<extra>, installs ``apache-airflow==<the dev venv's version>`` alone, records every
distribution's version, runs ``pip install "<wheel>[extra]"`` (pip, the user's command), records them again and
runs ``pip check`` and ``airflow providers list``. It fails (exit 1) when

- the wheel's metadata lacks the SPDX license or the LICENSE file, or the build warns of a deprecation;
- ``pip check`` is not clean, or ``airflow providers list`` does not show this package at its version;
- a requirement of Airflow itself (the Requires-Dist of apache-airflow, apache-airflow-core and
  apache-airflow-task-sdk) is no longer satisfied, or an Airflow distribution changed version;
- a distribution changed version or was removed, unless the change is *forced*: the old version is outside a
  specifier that another installed distribution (not this package) declares and the new one is inside it, and
  the new version still meets Airflow's own requirements. That is how the EMR extra moves python-dateutil
  (botocore and aiobotocore declare ``<3.0.0``, Airflow asks ``>=2.7.0``): reported, allowed, documented in
  README's Install section and docs/emr.md.

Fresh venvs and Airflow's install go through uv when it is there (``make setup`` installs it: seconds instead
of minutes); our wheel always through pip. Built wheels (gssapi and krb5 compile from source on Linux) stay in
pip's cache, so only the first run compiles; the other extras are checked beside that compile.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
DIST_DIR = BUILD / "dist"
VENVS = BUILD / "install-check"
REPORT = BUILD / "install-check.json"
PACKAGE = "airflow-durable-jobs"
EXTRAS = ("none", "spark", "yarn", "kubernetes", "emr", "all")
# Two lanes in parallel: the extras that compile gssapi and krb5 (yarn first, then all reuses the wheels pip cached),
# and the rest beside them. A cold pip cache costs the compile's ~3 minutes once, not twice.
COMPILING = ("yarn", "all")
AIRFLOW_DISTS = ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")
STEP_TIMEOUT = 1200  # compiling gssapi and krb5 from source takes about 3 minutes on 2 cores

# Run inside a venv: every distribution's version and requirements, as JSON.
PROBE = """
import json
from importlib import metadata
out = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if name:
        out[name] = {"version": d.version, "requires": d.requires or []}
print(json.dumps(out))
"""

Installed = dict[str, "Dist"]


@dataclass(frozen=True)
class Dist:
    version: str
    requires: tuple[str, ...]


@dataclass
class Change:
    name: str
    before: str
    after: str
    direction: str  # "upgrade" or "downgrade"
    forced_by: list[str]  # "<dist> <version> declares <requirement>": whose specifier excludes the old version
    airflow_requires: list[str]  # "<dist>: <requirement>" for every Airflow requirement on this name
    allowed: bool
    why: str


@dataclass
class ExtraResult:
    extra: str
    ok: bool = False
    seconds: float = 0.0
    pip_check_before: str = ""
    pip_check: str = ""
    pip_check_ok: bool = False
    providers_list: str = ""
    providers_list_ok: bool = False
    added: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    airflow_violations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)


# ---- the rules (pure; tests/core/test_check_install.py feeds them made-up environments) ----


def _reqs(dist: Dist) -> list[Requirement]:
    out = []
    for text in dist.requires:
        try:
            out.append(Requirement(text))
        except InvalidRequirement:
            continue
    return out


def requested_extras(env: Installed, roots: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Which extras of each installed distribution are in effect: from ``roots`` through every requirement."""
    wanted: dict[str, set[str]] = {name: set(extras) for name, extras in roots.items()}
    changed = True
    while changed:
        changed = False
        for name, dist in env.items():
            for req in active_requirements(dist, wanted.get(name, set())):
                have = wanted.setdefault(canonicalize_name(req.name), set())
                if not req.extras <= have:
                    have |= req.extras
                    changed = True
    return wanted


def active_requirements(dist: Dist, extras: Iterable[str]) -> list[Requirement]:
    """The requirements of ``dist`` that apply here, given the extras of it that were asked for."""
    envs = [{"extra": e} for e in ("", *extras)]
    return [r for r in _reqs(dist) if r.marker is None or any(r.marker.evaluate(e) for e in envs)]


def airflow_requirements(env: Installed) -> dict[str, list[tuple[str, Requirement]]]:
    """Airflow's own requirements (no extra), by the canonical name they are on."""
    out: dict[str, list[tuple[str, Requirement]]] = {}
    for dist_name in AIRFLOW_DISTS:
        dist = env.get(dist_name)
        if dist is not None:
            for req in active_requirements(dist, ()):
                out.setdefault(canonicalize_name(req.name), []).append((dist_name, req))
    return out


def airflow_violations(env: Installed) -> list[str]:
    """Airflow's requirements that the installed versions no longer meet (absent optional ones aside)."""
    bad = []
    for name, reqs in sorted(airflow_requirements(env).items()):
        dist = env.get(name)
        for owner, req in reqs:
            if dist is not None and not req.specifier.contains(dist.version, prereleases=True):
                bad.append(f"{owner} requires {req}; installed {name} {dist.version}")
    return bad


def compare(before: Installed, after: Installed, extra: str) -> tuple[dict[str, str], list[str], list[Change]]:
    """What the install added, removed and changed, each change judged (see the module docstring)."""
    roots: dict[str, set[str]] = {name: set() for name in AIRFLOW_DISTS}
    roots[canonicalize_name(PACKAGE)] = set() if extra == "none" else {extra}
    wanted = requested_extras(after, roots)
    ours = canonicalize_name(PACKAGE)
    af_reqs = airflow_requirements(after)
    added = {n: after[n].version for n in sorted(after.keys() - before.keys())}
    removed = sorted(before.keys() - after.keys())
    changes = []
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name].version, after[name].version
        if old == new:
            continue
        forced_by: list[str] = []
        by_us: list[str] = []
        for owner, dist in sorted(after.items()):
            for req in active_requirements(dist, wanted.get(owner, set())):
                if canonicalize_name(req.name) != name:
                    continue
                spec = req.specifier
                if not spec.contains(old, prereleases=True) and spec.contains(new, prereleases=True):
                    (by_us if owner == ours else forced_by).append(f"{owner} {dist.version} declares {req}")
        mine = af_reqs.get(name, [])
        airflow_ok = all(req.specifier.contains(new, prereleases=True) for _, req in mine)
        if name.startswith("apache-airflow"):
            allowed, why = False, "an Airflow distribution changed version"
        elif by_us:
            allowed, why = False, f"{PACKAGE}'s own requirement moves it: {'; '.join(by_us)}"
        elif not forced_by:
            allowed, why = False, "no installed distribution's requirement excludes the old version"
        elif not airflow_ok:
            allowed, why = False, "the new version is outside Airflow's own requirement"
        else:
            allowed, why = True, "forced by a dependency's declared specifier; Airflow's requirement still met"
        changes.append(
            Change(
                name=name,
                before=old,
                after=new,
                direction="upgrade" if Version(new) > Version(old) else "downgrade",
                forced_by=forced_by,
                airflow_requires=[f"{owner}: {req}" for owner, req in mine],
                allowed=allowed,
                why=why,
            )
        )
    return added, removed, changes


# ---- running it ----


def clean_env() -> dict[str, str]:
    """The environment for the venvs' processes: nothing from the dev venv or this checkout leaks in."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AIRFLOW")}


def run(cmd: list[str], log: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=dict(env) if env is not None else clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    if log is not None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n[exit {proc.returncode}]\n\n")
    return proc.returncode, proc.stdout


def find_uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def build_wheel(problems: list[str]) -> Path:
    """``pip wheel --no-deps`` from a clean setuptools build dir; the wheel's license metadata checked."""
    for stale in (DIST_DIR, BUILD / "lib", *BUILD.glob("bdist.*")):
        shutil.rmtree(stale, ignore_errors=True)  # setuptools would put a deleted module's stale copy in the wheel
    log = BUILD / "wheel-build.log"
    log.unlink(missing_ok=True)
    code, out = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(DIST_DIR), str(REPO)], log)
    if code != 0:
        sys.exit(f"wheel build failed; see {log}")
    shutil.rmtree(BUILD / "lib", ignore_errors=True)
    for line in out.splitlines():
        if re.search(r"Deprecat\w*Warning|\bis deprecated\b|^DEPRECATION:", line.strip()):
            problems.append(f"the build warns: {line.strip()}")
    (wheel,) = DIST_DIR.glob("airflow_durable_jobs-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode()
    if "License-Expression: Apache-2.0" not in meta.splitlines():
        problems.append("the wheel's METADATA has no `License-Expression: Apache-2.0`")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("the wheel carries no LICENSE")
    if not any(n.startswith("durable_jobs/") for n in names) or any(
        n.startswith(("durable_jobs_harness/", "tests/")) for n in names
    ):
        problems.append("the wheel holds the wrong packages (the library only; no harness, no tests)")
    return wheel


def probe(python: Path, log: Path) -> Installed:
    code, out = run([str(python), "-c", PROBE], log)
    if code != 0:
        raise RuntimeError(f"probe failed in {python}: {out[-2000:]}")
    raw = json.loads(out.strip().splitlines()[-1])
    return {canonicalize_name(k): Dist(v["version"], tuple(v["requires"])) for k, v in raw.items()}


def make_venv(path: Path, uv: str | None, log: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    if uv:
        cmd = [uv, "venv", "--seed", "--quiet", "--python", sys.executable, str(path)]
    else:
        cmd = [sys.executable, "-m", "venv", str(path)]
    code, out = run(cmd, log)
    if code != 0:
        raise RuntimeError(f"venv creation failed: {out[-2000:]}")
    return path / "bin" / "python"


def check_extra(extra: str, wheel: Path, airflow_version: str, uv: str | None) -> ExtraResult:
    res = ExtraResult(extra)
    start = time.monotonic()
    home = VENVS / extra
    log = VENVS / f"{extra}.log"
    log.unlink(missing_ok=True)
    python = make_venv(home / "venv", uv, log)
    airflow = f"apache-airflow=={airflow_version}"
    pip = [uv, "pip", "install", "--python", str(python)] if uv else [str(python), "-m", "pip", "install"]
    code, out = run([*pip, airflow], log)
    if code != 0:
        res.problems.append(f"installing {airflow} alone failed (see {log})")
        return res
    before = probe(python, log)
    _, res.pip_check_before = run([str(python), "-m", "pip", "check"], log)
    target = str(wheel) if extra == "none" else f"{wheel}[{extra}]"
    code, out = run([str(python), "-m", "pip", "install", target], log)
    if code != 0:
        res.problems.append(f"pip install {target} failed: {out.strip().splitlines()[-1:]} (see {log})")
        return res
    after = probe(python, log)
    code, res.pip_check = run([str(python), "-m", "pip", "check"], log)
    res.pip_check_ok = code == 0
    res.pip_check = res.pip_check.strip()
    res.before = {n: d.version for n, d in sorted(before.items())}
    res.after = {n: d.version for n, d in sorted(after.items())}
    res.added, res.removed, res.changes = compare(before, after, extra)
    res.airflow_violations = airflow_violations(after)
    env = clean_env() | {"AIRFLOW_HOME": str(home / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    code, out = run([str(python), "-m", "airflow", "providers", "list", "--output", "json"], log, env)
    version = after[canonicalize_name(PACKAGE)].version
    try:
        rows = json.loads(out[out.index("[") :]) if code == 0 else []
    except ValueError:
        rows = []
    shown = [r.get("version") for r in rows if isinstance(r, dict) and r.get("package_name") == PACKAGE]
    res.providers_list = f"{PACKAGE} {shown[0]}" if shown else "not listed"
    res.providers_list_ok = shown == [version]
    if not res.pip_check_ok:
        res.problems.append(f"pip check: {res.pip_check}")
    if not res.providers_list_ok:
        res.problems.append(f"`airflow providers list` shows {res.providers_list}, not {PACKAGE} {version}")
    res.problems += [f"Airflow's requirement broken: {v}" for v in res.airflow_violations]
    res.problems += [f"removed: {n} {before[n].version}" for n in res.removed]
    res.problems += [f"{c.name} {c.before} -> {c.after}: {c.why}" for c in res.changes if not c.allowed]
    res.ok = not res.problems
    res.seconds = round(time.monotonic() - start, 1)
    return res


def table(results: list[ExtraResult]) -> str:
    lines = [
        "| extra | pip check | providers list | added | changed (allowed / not) | Airflow's requirements | seconds |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for r in results:
        allowed = sum(c.allowed for c in r.changes)
        lines.append(
            f"| {r.extra} | {'clean' if r.pip_check_ok else 'BROKEN'} | {r.providers_list} | {len(r.added)} "
            f"| {allowed} / {len(r.changes) - allowed} | {'met' if not r.airflow_violations else 'BROKEN'} "
            f"| {r.seconds:.0f} |"
        )
    for r in results:
        for c in r.changes:
            verdict = "allowed" if c.allowed else "NOT ALLOWED"
            lines.append(f"\n{r.extra}: {c.name} {c.before} -> {c.after} ({c.direction}, {verdict}): {c.why}")
            lines += [f"    forced by: {f}" for f in c.forced_by]
            lines += [f"    Airflow requires: {a}" for a in c.airflow_requires]
        lines += [f"\n{r.extra}: PROBLEM: {p}" for p in r.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--extras", default=",".join(EXTRAS), help="comma-separated, from: " + ", ".join(EXTRAS))
    args = parser.parse_args(argv)
    extras = [e for e in args.extras.split(",") if e]
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        parser.error(f"unknown extras: {sorted(unknown)}")
    start = time.monotonic()
    VENVS.mkdir(parents=True, exist_ok=True)
    build_problems: list[str] = []
    wheel = build_wheel(build_problems)
    airflow_version = metadata.version("apache-airflow")
    uv = find_uv()

    def lane(names: list[str]) -> list[ExtraResult]:
        done = []
        for extra in names:
            try:
                done.append(check_extra(extra, wheel, airflow_version, uv))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # a step that broke or hung
                done.append(ExtraResult(extra, problems=[f"{type(exc).__name__}: {exc}"]))
            print(f"check-install: {extra}: {'ok' if done[-1].ok else 'FAILED'} ({done[-1].seconds:.0f} s)", flush=True)
        return done

    lanes = [[e for e in extras if e in COMPILING], [e for e in extras if e not in COMPILING]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        by_extra = {r.extra: r for rs in pool.map(lane, lanes) for r in rs}
    results = [by_extra[e] for e in extras]
    seconds = round(time.monotonic() - start, 1)
    ok = not build_problems and all(r.ok for r in results)
    report: dict[str, Any] = {
        "ok": ok,
        "wheel": wheel.name,
        "airflow": airflow_version,
        "python": sys.version.split()[0],
        "venvs_by": "uv" if uv else "venv + pip",
        "seconds": seconds,
        "build_problems": build_problems,
        "extras": [asdict(r) for r in results],
    }
    REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    for p in build_problems:
        print(f"\nbuild: PROBLEM: {p}")
    print(
        f"\ncheck-install: {'ok' if ok else 'FAILED'} wheel={wheel.name} airflow={airflow_version} "
        f"extras={len(results)} seconds={seconds:.0f} report={REPORT.relative_to(REPO)}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
