#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Checks the licenses of every dependency the build and the Python wheel pull in.

DreamDB is Apache-2.0 (LICENSE). This script lists

  * the Debian packages scripts/bootstrap.sh installs (its PACKAGES array), with the
    licenses their /usr/share/doc/<package>/copyright files declare, and
  * the Python packages of requirements-dev.txt, requirements-nodeps.txt and
    python/pyproject.toml (build requirements, dependencies, extras), with the licenses
    their installed metadata declares (License-Expression, License, classifiers),
  * the npm packages of web/package-lock.json (the dashboard's build and browser tests),
    with the license each lock entry records (npm copies it from the package's
    package.json); entries marked "dev" are tools, the others end up in web/dist (shipped),

and fails, naming each offender, when a license is unknown or not allowed for the way the
dependency is used:

  * shipped  code that ends up in what we distribute or that the wheel makes users
             install: compiled or linked into libdreamdb, the CLI or the extension
             (BLAKE3, nlohmann-json, OpenSSL, libcurl, expat, nanobind), and the wheel's
             dependencies (numpy, pyarrow, torch). Every license must be permissive
             (PERMISSIVE below), except entries reviewed in REVIEWED (files of a source
             package that never reach the binary we link, such as autoconf scripts).
  * tool     used to build, test or document and never distributed (compilers, CMake,
             pytest, ...). Copyleft is fine for a tool (COPYLEFT_TOOL); unknown is not.

A license is "unknown" when its name is in neither list: add it to a list after reading
it, or to REVIEWED for one package with the reason. A copyright file that declares no
License: field at all (free-form) needs a REVIEWED entry too, whose evidence phrase must
appear in the file.

Usage: .venv/bin/python scripts/licenses.py [-v] [--doc-root DIR]
           [--debian-package NAME:ROLE ...] [--python-package NAME:ROLE ...]
           [--python-path DIR ...] [--npm-lock FILE ...]
Run it with the interpreter of .venv so that the Python packages' metadata is found.
Exit 0 when every dependency passes, 1 otherwise (stderr names each failure).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import pathlib
import re
import sys
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]

# Licenses under which code may be shipped with (linked into, or required by) an
# Apache-2.0 product, by Debian short name or SPDX id (compared case-insensitively).
PERMISSIVE = {
    "apache-2.0", "apache-2-llvm-exceptions", "mit", "expat", "x11", "bsd-0-clause",
    "bsd-2-clause", "bsd-2", "bsd-3-clause", "bsd-3", "bsd-c3", "bsd",
    # The University of California rescinded the advertising clause in 1999.
    "bsd-4-clause-uc",
    "isc", "zlib", "cc0-1.0", "bsl-1.0", "boost", "python", "psf-2.0", "public-domain",
    "solar-public-domain", "unlicense", "curl", "fsfap", "fsfullr", "gap", "oldap-2.8",
    "u-of-i-bsd-like", "ntp", "edl-1.0", "dlmalloc", "mingw-runtime",
    # ICU's and Unicode's data licenses: permission notice only, like MIT.
    "icu", "unicode", "unicode-dfs-2016", "unicode-3.0", "blueoak-1.0.0", "0bsd",
}
# Licenses fine for tools we run but never distribute.
COPYLEFT_TOOL = {
    "gpl", "gpl-1+", "gpl-2", "gpl-2+", "gpl-2.0", "gpl-2.0+", "gpl-3", "gpl-3+", "gpl-3.0+",
    "lgpl-2+", "lgpl-2.1+", "lgpl-3.0+", "artistic", "artistic-1", "mpl-2", "mpl-2.0",
    "cc-by-sa-4.0", "bsd-4-clause", "lgpl-2", "lgpl-2.0+", "lgpl-2.1", "mpl-1.1", "ms-pl",
    # SPDX spellings (npm and PyPI metadata).
    "gpl-2.0-only", "gpl-2.0-or-later", "gpl-3.0", "gpl-3.0-only", "gpl-3.0-or-later",
    "lgpl-2.1-only", "lgpl-2.1-or-later", "lgpl-3.0", "lgpl-3.0-only", "lgpl-3.0-or-later",
}

# Debian packages whose code is compiled or linked into what we ship; every other package
# of bootstrap.sh is a tool.
SHIPPED_DEBIAN = {
    "librust-blake3-dev": "BLAKE3's C sources are compiled into libdreamdb",
    "nlohmann-json3-dev": "header-only JSON parser compiled into the CLI",
    "libssl-dev": "OpenSSL, linked by the build",
    "libcurl4-openssl-dev": "HTTP client for the S3 backend",
    "libexpat1-dev": "XML parser for the S3 backend",
    "libcpp-httplib-dev": "header-only HTTP server compiled into the CLI (dreamdb serve)",
}
# Python packages compiled into the extension (the wheel's runtime dependencies are
# shipped too; they come from python/pyproject.toml).
SHIPPED_PYTHON = {"nanobind": "compiled into the dreamdb._core extension"}
# Optional extras too large to install in .venv: their license as read from their
# metadata, used only when the package is not installed (where it is, the metadata is
# checked; tests/ray/run.sh runs this script against build/ray-venv).
RECORDED_PYTHON = {"ray": "Apache-2.0"}

# Reviewed exceptions: (package, license) -> why it is acceptable. License "*" with an
# evidence phrase is a free-form copyright file read by hand.
REVIEWED = {
    ("libssl-dev", "artistic"): "external/perl (Text::Template): Perl used by the build only",
    ("libssl-dev", "gpl-1+"): "external/perl (Text::Template): Perl used by the build only",
    ("libcurl4-openssl-dev", "gpl-2+ with autoconf-data exception"): "m4/ build macros",
    ("libcurl4-openssl-dev", "gpl-3+ with autoconf-data exception"): "m4/ build macros",
    ("libcurl4-openssl-dev", "gpl-2+ with libtool exception"): "ltmain.sh, build only",
    ("ninja-build", "other"): "src/getopt.c: placed in the public domain",
    # Chromium runs the browser tests headless and is never shipped.
    ("chromium", "apple-license"): "Apple sample code in third_party; a test browser only",
    ("chromium", "bsl-1"): "its text is the Boost Software License 1.0",
    # A single-node Slurm runs tests/slurm and is never shipped.
    ("slurm-wlm", "none"): "test files under the package's main GPL-2+ (its copyright says so)",
    ("slurm-wlm", "perl"): "contribs/perlapi Perl bindings; a test scheduler only",
    ("slurm-wlm", "mit/x11"): "the MIT/X11 license (install-sh); a test scheduler only",
    ("slurm-wlm", "anl"): "Argonne's permissive notice on contributed files; test only",
    ("slurm-wlm", "bsd-like"): "BSD-style notices on contributed files; test only",
    ("slurm-wlm", "fsf-all-permissive"): "autotools files; build of a test tool only",
    ("slurm-wlm", "fsf-unlimited"): "autotools files; build of a test tool only",
    ("slurm-wlm", "postgresql"): "a permissive notice on one contributed file; test only",
    ("ray", "apache 2.0"): "ray's License field names the Apache License 2.0",
    ("munge", "gpl-3+-and-lgpl-3+"): "GPL-3+ daemon and LGPL-3+ library; a test service only",
}
FREE_FORM = {
    # package: (license, a phrase the copyright file must contain)
    "build-essential": ("GPL-2+", "GNU General Public License"),
    "clang": ("GPL-2+ (Debian packaging of llvm-defaults)", "GNU General Public License"),
    "clang-format": ("GPL-2+ (Debian packaging of llvm-defaults)", "GNU General Public License"),
    "clang-tidy": ("GPL-2+ (Debian packaging of llvm-defaults)", "GNU General Public License"),
    "python3": ("PSF-2.0", "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2"),
    "python3-venv": ("PSF-2.0", "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2"),
    "python3-dev": ("PSF-2.0", "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2"),
    "fortunes": ("BSD-3-Clause", "This program falls under the BSD copyright"),
}

# Trove classifiers -> license names.
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: BSD License": "BSD",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0+",
}


def debian_packages() -> list[str]:
    """The PACKAGES array of scripts/bootstrap.sh."""
    text = (REPO / "scripts" / "bootstrap.sh").read_text()
    m = re.search(r"^PACKAGES=\((.*?)\)", text, re.S | re.M)
    if not m:
        raise SystemExit("licenses: no PACKAGES=( ... ) in scripts/bootstrap.sh")
    return m.group(1).split()


def requirement_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return m.group(0) if m else None


def python_packages() -> dict[str, str]:
    """name -> role, from the requirements files and python/pyproject.toml."""
    roles: dict[str, str] = {}
    for req in sorted(REPO.glob("requirements*.txt")):
        for line in req.read_text().splitlines():
            if name := requirement_name(line):
                roles[name] = "tool"
    project = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())
    for spec in project.get("build-system", {}).get("requires", []):
        if name := requirement_name(spec):
            roles.setdefault(name, "tool")
    deps = project.get("project", {})
    for spec in deps.get("dependencies", []):
        if name := requirement_name(spec):
            roles[name] = "shipped"
    for extra, specs in deps.get("optional-dependencies", {}).items():
        for spec in specs:
            if name := requirement_name(spec):
                if extra == "test":  # test tools
                    roles.setdefault(name, "tool")
                else:  # runtime extras such as torch
                    roles[name] = "shipped"
    for name in SHIPPED_PYTHON:
        if name in roles:
            roles[name] = "shipped"
    return roles


def npm_packages(lock: pathlib.Path) -> dict[str, tuple[str, str]]:
    """name@version -> (role, license) for every package of a package-lock.json (v2/v3)."""

    data = json.loads(lock.read_text())
    out: dict[str, tuple[str, str]] = {}
    for path, entry in data.get("packages", {}).items():
        if not path:  # the project itself
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        role = "tool" if entry.get("dev") or entry.get("devOptional") else "shipped"
        lic = entry.get("license") or ""
        if isinstance(lic, dict):  # the old {"type": ...} form
            lic = lic.get("type", "")
        out[f"{name}@{entry.get('version', '?')}"] = (role, lic)
    return out


def check_npm(name: str, role: str, lic: str) -> tuple[str, list[str]]:
    if not lic:
        return "?", ["its lock entry records no license: read the package and add it"]
    # SPDX expressions: "(MIT OR Apache-2.0)", "MIT AND ISC".
    expr = lic.strip().strip("()").replace(" OR ", " or ").replace(" AND ", " and ")
    problem = check_expression(name.rsplit("@", 1)[0], expr, role)
    return lic, [problem] if problem else []


def split_expression(expr: str) -> list[list[str]]:
    """'A or B and C' -> [[A], [B, C]] (alternatives of conjunctions), names lowercased."""
    out = []
    for alt in re.split(r"\s+or\s+", expr.strip(), flags=re.I):
        out.append([part.strip().lower() for part in re.split(r"\s+and\s+", alt, flags=re.I)
                    if part.strip()])
    return [alt for alt in out if alt]


def verdict(package: str, name: str, role: str) -> str | None:
    """None when `name` is fine for `role`, else why not."""
    if (package, name) in REVIEWED:
        return None
    base = re.sub(r"\s+with\s+.*exception$", "", name)
    if name in PERMISSIVE or base in PERMISSIVE:
        return None
    if name in COPYLEFT_TOOL or base in COPYLEFT_TOOL:
        return None if role == "tool" else f"{name} is not allowed for shipped code"
    return f"unknown license {name!r}"


def check_expression(package: str, expr: str, role: str) -> str | None:
    """None if some alternative of `expr` has every part allowed, else the first problem."""
    problems = []
    for alt in split_expression(expr):
        bad = [v for v in (verdict(package, part, role) for part in alt) if v]
        if not bad:
            return None
        problems.append(bad[0])
    return problems[0] if problems else None


def check_debian(package: str, role: str, doc_root: pathlib.Path) -> tuple[str, list[str]]:
    path = doc_root / package / "copyright"
    if not path.exists():
        return "?", [f"{path} does not exist (is {package} installed?)"]
    text = path.read_text(errors="replace")
    names = sorted({m.strip() for m in re.findall(r"^License:[ \t]*(.*)$", text, re.M)} - {""})
    if not names:
        if package not in FREE_FORM:
            return "?", [f"{path} names no License: field; read it and add a FREE_FORM entry"]
        license_name, phrase = FREE_FORM[package]
        if phrase not in text:
            return license_name, [f"{path} no longer contains {phrase!r}: review it again"]
        names = [license_name]
        expr_problems = [check_expression(package, license_name.split(" ")[0], role)]
    else:
        expr_problems = [check_expression(package, n, role) for n in names]
    return "; ".join(names), [p for p in expr_problems if p]


def python_licenses(dist: md.Distribution) -> list[str]:
    meta = dist.metadata
    if expr := meta.get("License-Expression"):
        return [expr]
    found = []
    for c in meta.get_all("Classifier") or []:
        if c in CLASSIFIERS:
            found.append(CLASSIFIERS[c])
        elif c.startswith("License ::") and c not in ("License :: DFSG approved",
                                                      "License :: OSI Approved"):
            found.append(c)  # a license classifier this script does not know: unknown
    license_field = (meta.get("License") or "").strip()
    if not found and license_field:
        found = [license_field.splitlines()[0][:80]]
    return found


def check_python(name: str, role: str, paths: list[str]) -> tuple[str, list[str]]:
    try:
        dists = list(md.distributions(name=name, path=paths + sys.path))
    except Exception as e:  # noqa: BLE001 - report whatever metadata lookup raised
        return "?", [f"cannot read its metadata: {e}"]
    if not dists and name in RECORDED_PYTHON:
        lic = RECORDED_PYTHON[name]
        problem = check_expression(name, lic, role)
        return lic + " (recorded; not installed)", [problem] if problem else []
    if not dists:
        return "?", ["not installed in this interpreter (run with .venv/bin/python)"]
    licenses = python_licenses(dists[0])
    if not licenses:
        return "?", ["its metadata declares no license"]
    problems = [check_expression(name, lic, role) for lic in licenses]
    return "; ".join(licenses), [p for p in problems if p]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list every dependency")
    parser.add_argument("--doc-root", default="/usr/share/doc", type=pathlib.Path)
    parser.add_argument("--debian-package", action="append", default=[], metavar="NAME:ROLE",
                        help="check one more Debian package (role shipped or tool)")
    parser.add_argument("--python-package", action="append", default=[], metavar="NAME:ROLE",
                        help="check one more Python distribution (role shipped or tool)")
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR",
                        help="also look for Python distributions in DIR")
    parser.add_argument("--npm-lock", action="append", default=None, type=pathlib.Path,
                        metavar="FILE", help="package-lock.json to check (default: "
                        "web/package-lock.json)")
    args = parser.parse_args(argv)

    def extra(items: list[str]) -> dict[str, str]:
        out = {}
        for item in items:
            name, _, role = item.partition(":")
            if role not in ("shipped", "tool"):
                parser.error(f"{item!r}: expected NAME:shipped or NAME:tool")
            out[name] = role
        return out

    rows = []  # (kind, name, role, licenses, problems)
    debian = {p: ("shipped" if p in SHIPPED_DEBIAN else "tool") for p in debian_packages()}
    debian.update(extra(args.debian_package))
    for package, role in debian.items():
        rows.append(("debian", package, role, *check_debian(package, role, args.doc_root)))
    python = python_packages()
    python.update(extra(args.python_package))
    for name, role in sorted(python.items()):
        rows.append(("python", name, role, *check_python(name, role, args.python_path)))

    locks = args.npm_lock if args.npm_lock is not None else [REPO / "web" / "package-lock.json"]
    npm = {}
    for lock in locks:
        if lock.exists():
            npm.update(npm_packages(lock))
        else:
            rows.append(("npm", str(lock), "tool", "?", [f"{lock} does not exist"]))
    for name, (role, lic) in sorted(npm.items()):
        rows.append(("npm", name, role, *check_npm(name, role, lic)))

    failures = [r for r in rows if r[4]]
    if args.verbose:
        for kind, name, role, licenses, _ in rows:
            print(f"{kind:6} {role:7} {name:28} {licenses}")
    for kind, name, role, _, problems in failures:
        for p in problems:
            print(f"licenses: FAIL {kind} package {name} ({role}): {p}", file=sys.stderr)
    print(f"licenses: {len(rows)} dependencies checked ({len(debian)} Debian, {len(python)} "
          f"Python, {len(npm)} npm), {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
