# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""scripts/licenses.py: every dependency of the build and the wheel has a license that
allows shipping DreamDB under Apache-2.0 (the repository had no LICENSE file and no check).
"""

import os
import pathlib
import subprocess
import sys


def run(source_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(source_dir / "scripts" / "licenses.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_repository_has_the_apache_license(source_dir: pathlib.Path):
    text = (source_dir / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_every_dependency_license_is_allowed(source_dir: pathlib.Path):
    r = run(source_dir, "-v")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 failed" in r.stdout
    for name in ("librust-blake3-dev", "nlohmann-json3-dev", "pyarrow", "numpy", "nanobind"):
        assert name in r.stdout


def test_an_incompatible_or_unknown_license_fails_naming_it(source_dir, tmp_path: pathlib.Path):
    # A fake Debian package under GPL-3+ that we would link, and one with an unknown license.
    for name, license_name in (("libfake-gpl-dev", "GPL-3+"), ("libfake-odd-dev", "Odd-1.0")):
        (tmp_path / "doc" / name).mkdir(parents=True)
        (tmp_path / "doc" / name / "copyright").write_text(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            f"Files: *\nCopyright: someone\nLicense: {license_name}\n")
    # The real packages' copyright files, so only the fakes differ.
    for entry in pathlib.Path("/usr/share/doc").iterdir():
        if not (tmp_path / "doc" / entry.name).exists():
            os.symlink(entry, tmp_path / "doc" / entry.name)
    # A fake Python distribution under the AGPL that the wheel would require.
    info = tmp_path / "py" / "fakeagpl-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeagpl\nVersion: 1.0\n"
                                   "License-Expression: AGPL-3.0-only\n")
    r = run(source_dir, "--doc-root", str(tmp_path / "doc"),
            "--debian-package", "libfake-gpl-dev:shipped",
            "--debian-package", "libfake-odd-dev:tool",
            "--python-path", str(tmp_path / "py"), "--python-package", "fakeagpl:shipped")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL debian package libfake-gpl-dev (shipped): gpl-3+ is not allowed for shipped " \
           "code" in r.stderr
    assert "FAIL debian package libfake-odd-dev (tool): unknown license 'odd-1.0'" in r.stderr
    assert "FAIL python package fakeagpl (shipped): unknown license 'agpl-3.0-only'" in r.stderr
    assert ", 3 failed" in r.stdout
    # The same GPL package as a build tool is fine.
    r = run(source_dir, "--doc-root", str(tmp_path / "doc"),
            "--debian-package", "libfake-gpl-dev:tool")
    assert r.returncode == 0, r.stdout + r.stderr


def test_npm_packages_of_the_dashboard_lock_are_checked(source_dir, tmp_path: pathlib.Path):
    # The web dashboard's npm packages (web/package-lock.json) are checked too.
    r = run(source_dir, "-v")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "playwright-core@" in r.stdout and "vite@" in r.stdout
    # A lock with a GPL package that ends up in the bundle, an unknown one and one with no
    # license recorded: each named; the same GPL package as a dev tool passes.
    import json
    lock = {"lockfileVersion": 3, "packages": {
        "": {"name": "app"},
        "node_modules/gplthing": {"version": "1.0.0", "license": "GPL-3.0"},
        "node_modules/oddthing": {"version": "2.0.0", "license": "Odd-1.0", "dev": True},
        "node_modules/nolicense": {"version": "3.0.0", "dev": True},
        "node_modules/dual": {"version": "4.0.0", "license": "(MIT OR Apache-2.0)"},
        "node_modules/gpltool": {"version": "5.0.0", "license": "GPL-3.0", "dev": True},
    }}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    r = run(source_dir, "--npm-lock", str(tmp_path / "package-lock.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL npm package gplthing@1.0.0 (shipped): gpl-3.0 is not allowed for shipped " \
           "code" in r.stderr
    assert "FAIL npm package oddthing@2.0.0 (tool): unknown license 'odd-1.0'" in r.stderr
    assert "FAIL npm package nolicense@3.0.0 (tool): its lock entry records no license" in r.stderr
    assert "dual@" not in r.stderr and "gpltool@" not in r.stderr
    assert ", 3 failed" in r.stdout
