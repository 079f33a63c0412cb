#!/usr/bin/env bash
# Every op of ir/op_table.def is listed in docs/operators.md (the support matrix).
set -uo pipefail
src=$1
missing=0
for op in $(sed -n 's/^KILN_OP(\([A-Za-z0-9_]*\),.*/\1/p' "$src/ir/op_table.def"); do
  if ! grep -q "^| $op | " "$src/docs/operators.md"; then
    echo "docs/operators.md lacks $op (run scripts/gen_operators_doc.py)"
    missing=$((missing + 1))
  fi
done
[ "$missing" -eq 0 ] && echo "docs/operators.md lists every op of the op table"
exit $((missing > 0))
