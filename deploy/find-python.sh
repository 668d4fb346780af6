#!/usr/bin/env sh
# Print the path of a Python >= 3.12 interpreter, or explain and fail.
# Order: $PYTHON, python3.13, python3.12, python3 on PATH, then pyenv installs.
# A pyenv shim can exist without its version being selected, so every
# candidate is asked to run, not just looked up.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for c in "${PYTHON:-}" python3.13 python3.12 python3; do
  [ -n "$c" ] || continue
  p=$(command -v "$c" 2>/dev/null) || continue
  if ok "$p"; then printf '%s\n' "$p"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -t. -k2,2n -k3,3n); do
    p="$(pyenv prefix "$v" 2>/dev/null)/bin/python3"
    if ok "$p"; then printf '%s\n' "$p"; exit 0; fi
  done
fi
echo "error: this project needs Python >= 3.12 (pandas-ta requires it)." >&2
echo "  Install one (e.g. 'pyenv install 3.12', or your OS package python3.12)," >&2
echo "  or point PYTHON at it: make run PYTHON=/path/to/python3.12" >&2
exit 1
