#!/usr/bin/env bash
# Refresh constraints.txt, the lock that every install reads (`make install`, so CI; deploy/Dockerfile) with
# `pip install -c constraints.txt ...`. Run it as `make lock` after changing a requirement in setup.py.
#   make lock                                       keep the current pins; move only what setup.py forces
#   make lock LOCK_ARGS=--upgrade                   move every package to its newest allowed release
#   make lock LOCK_ARGS="--upgrade-package openai"  move one
# uv resolves once for every Python in setup.py's python_requires (--universal): where a package's newest
# release drops Python 3.10, the file pins two releases with `python_full_version` markers, which plain pip
# honours. uv is only the resolver here; nothing that installs needs it.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
OLDEST_PYTHON=3.10  # the lower bound of setup.py's python_requires
tools="${XDG_CACHE_HOME:-$HOME/.cache}/imageflow-lock-tools"
if [ "$("$tools/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install -q "uv==$UV_VERSION"
fi

# Every extra (dev covers deploy and local), and pip itself: the Makefile upgrades pip to the pinned release.
# Extras are stripped from the output (uv's default), so pip accepts the file as constraints.
echo "pip" | "$tools/bin/uv" pip compile setup.py - \
    --all-extras --universal --python-version "$OLDEST_PYTHON" \
    --custom-compile-command "make lock" --quiet -o constraints.txt "$@"
echo "constraints.txt: $(grep -c '^[A-Za-z0-9]' constraints.txt) pins"
