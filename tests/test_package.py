"""tinhgon installed as a package (``pip install .``, not editable): the wheel
holds the migrations, the routes, the pages' templates and static files, and
the installed command works outside the checkout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tests.conftest import DEFINITIONS, ROOT


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    built = tmp_path / "wheel"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-q", "-w", built, cwd=tmp_path)
    (wheel,) = built.glob("tinhgon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("engine/migrations/env.py", "engine/migrations/versions/0001_first_tables.py", "api/routes/cases.py"):
        assert needed in names, needed
    assert "api/web/templates/base.html" in names and "api/web/static/tinhgon.css" in names

    # A fresh environment: tinhgon only from the wheel; its dependencies
    # from this one (read from a path, so this checkout's editable install
    # is not picked up), since nothing may be downloaded here.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=tmp_path)
    where = _run(
        python, "-c", "import api, engine, procedures; print(api.__file__, engine.__file__, procedures.__file__)", cwd=tmp_path
    )
    assert all(path.startswith(str(site)) for path in where.split()), where

    tinhgon = venv / "bin" / "tinhgon"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINHGON_")}
    url = f"sqlite:///{tmp_path / 'tinhgon.db'}"
    _run(tinhgon, "db", "upgrade", "--database-url", url, cwd=tmp_path, env=env)
    _run(tinhgon, "diagram", DEFINITIONS / "dang-ky-khai-sinh.v1.yaml", "-o", tmp_path / "khai-sinh.svg", cwd=tmp_path, env=env)
    assert (tmp_path / "khai-sinh.svg").read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    token = _run(
        tinhgon, "user", "add", "can_bo", "--name", "Cán bộ", "--unit", "u1", "--database-url", url, cwd=tmp_path, env=env
    )
    token = token.strip().splitlines()[-1]

    port = _free_port()
    log = (tmp_path / "serve.log").open("w", encoding="utf-8")
    server = subprocess.Popen(
        [str(tinhgon), "serve", "--database-url", url, "--definitions", str(DEFINITIONS), "--port", str(port),
         "--key-file", str(tmp_path / "signing.pem")],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/dang-nhap", timeout=5) as page:
                    assert page.status == 200 and "Đăng nhập" in page.read().decode("utf-8")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text("utf-8")
                time.sleep(0.3)
        ask = urllib.request.Request(base + "/api/procedures", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(ask, timeout=10) as answer:
            listed = json.loads(answer.read())
        assert len(listed) == len(list(DEFINITIONS.glob("*.v*.yaml")))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
