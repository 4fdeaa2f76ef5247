#!/usr/bin/env bash
# Set up a development copy of microad: Graphviz's `dot` program (from Debian's
# graphviz package, when running as root with apt-get) and a virtual
# environment in .venv with microad and its test dependencies. It also installs
# the extra `train` (scikit-learn, matplotlib, tqdm) so that the training tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing Graphviz (Debian package graphviz) for diagrams"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }; then
            echo "bootstrap: apt-get could not install graphviz; diagrams will only be written as DOT text," >&2
            echo "bootstrap: and the tests that render them will be skipped." >&2
        fi
    else
        echo "bootstrap: Graphviz's dot program is missing; diagrams will only be written as DOT text." >&2
        echo "bootstrap: install it with 'sudo apt-get install graphviz' (Debian, Ubuntu) or 'brew install graphviz' (macOS)." >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating the virtual environment .venv"
    python3 -m venv .venv
fi
# Install again only when pyproject.toml changed since the last install.
stamp=.venv/.microad-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test,train]"
    echo "$wanted" > "$stamp"
fi
