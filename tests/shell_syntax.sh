#!/usr/bin/env bash
# shell_syntax.sh ROOT — `bash -n` over every shell script of the repository: the GPU-only ones
# (tests/gpu/*.sh) run nowhere else before a device call, so a syntax slip there would cost one.
set -uo pipefail
fails=0 n=0
while IFS= read -r f; do
  n=$((n + 1))
  bash -n "$f" 2>/tmp/shell_syntax.$$ || { echo "FAIL $f: $(cat /tmp/shell_syntax.$$)"; fails=$((fails + 1)); }
done < <(find "$1" -name '*.sh' -not -path '*/build*' -not -path '*/.git/*' | sort)
rm -f /tmp/shell_syntax.$$
echo "shell_syntax: $n scripts, $fails with syntax errors"
exit $((fails > 0))
