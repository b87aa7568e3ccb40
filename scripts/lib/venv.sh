# Shared by scripts/demo and scripts/test: create .venv and install the package when pyproject.toml changed.
# usage: . scripts/lib/venv.sh; ensure_venv ""|"[test]"
ensure_venv() {
    local extras="$1"
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    local venv="$root/.venv"
    local python="${PYTHON:-python3}"
    if [ ! -x "$venv/bin/python" ]; then
        echo "creating $venv" >&2
        "$python" -m venv "$venv"
    fi
    local stamp="$venv/.arena-installed$extras"
    local want
    want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "installing arena$extras into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root$extras"
        echo "$want" > "$stamp"
    fi
    export PATH="$venv/bin:$PATH"
}
