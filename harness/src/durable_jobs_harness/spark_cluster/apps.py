"""The test drivers: a "sleep, then exit with code C or throw" Java program (compiled here) and its Python twin."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from durable_jobs_harness.spark_cluster.cluster import SparkClusterError

__all__ = ["TestApps", "build_test_apps"]


_SLEEP_EXIT_JAVA = """\
package demo;

/** args: seconds to sleep (float), exit code, mode ("ok" exits with the code, "throw" throws). */
public final class SleepExit {
  public static void main(String[] args) throws Exception {
    double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 0.0;
    int code = args.length > 1 ? Integer.parseInt(args[1]) : 0;
    String mode = args.length > 2 ? args[2] : "ok";
    System.out.println("SleepExit: sleeping " + seconds + "s, then mode=" + mode + " code=" + code);
    System.out.flush();
    Thread.sleep((long) (seconds * 1000.0));
    if ("throw".equals(mode)) {
      throw new IllegalStateException("boom");
    }
    if (!"ok".equals(mode)) {
      throw new IllegalArgumentException("unknown mode: " + mode);
    }
    System.exit(code);
  }
}
"""

_SLEEP_EXIT_PY = '''\
"""args: seconds to sleep (float), exit code, mode ("ok" exits with the code, "throw" raises).

Deliberately does not import pyspark, so it starts fast.
"""

import sys
import time


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if len(argv) > 0 else 0.0
    code = int(argv[1]) if len(argv) > 1 else 0
    mode = argv[2] if len(argv) > 2 else "ok"
    print(f"sleep_exit: sleeping {seconds}s, then mode={mode} code={code}", flush=True)
    time.sleep(seconds)
    if mode == "throw":
        raise RuntimeError("boom")
    if mode != "ok":
        raise ValueError(f"unknown mode: {mode}")
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
'''


@dataclass(frozen=True)
class TestApps:
    """Driver programs for tests: ``jar`` with ``main_class``, and ``python_script``.

    Both take the arguments ``<sleep seconds> <exit code> <ok|throw>``.
    """

    __test__ = False  # not a pytest test class

    jar: Path
    main_class: str
    python_script: Path


def _write_if_changed(path: Path, text: str) -> None:
    # Keep the mtime (and so the jar cache) when nothing changed; replace atomically otherwise.
    if path.is_file() and path.read_text("utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def _java_tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SparkClusterError(f"`{name}` not found on PATH or in $JAVA_HOME/bin; install a JDK 17+")
    return found


def build_test_apps(dest: Path) -> TestApps:
    """Write and compile the test drivers into ``dest`` (cached: the jar is rebuilt only when stale)."""
    dest = dest.resolve()
    source = dest / "demo" / "SleepExit.java"
    jar = dest / "sleep-exit.jar"
    script = dest / "sleep_exit.py"
    _write_if_changed(source, _SLEEP_EXIT_JAVA)
    _write_if_changed(script, _SLEEP_EXIT_PY)
    if not (jar.is_file() and jar.stat().st_mtime >= source.stat().st_mtime):
        # Build in a private directory, then move the jar into place (parallel test workers).
        with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp:
            classes = Path(tmp) / "classes"
            new_jar = Path(tmp) / "sleep-exit.jar"
            for cmd in (
                [_java_tool("javac"), "--release", "17", "-d", str(classes), str(source)],
                [_java_tool("jar"), "cf", str(new_jar), "-C", str(classes), "."],
            ):
                result = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    raise SparkClusterError(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
            os.replace(new_jar, jar)
    return TestApps(jar=jar, main_class="demo.SleepExit", python_script=script)
