#!/usr/bin/env bash
# cli_tune.sh KILN MODEL WORK [--gpu] — tuning from the command line (docs/tuning.md).
# Without --gpu (no GPU needed): the heuristic line, the tune / layer_costs metadata, two builds
# byte-identical (SOURCE_DATE_EPOCH), a corrupt tuning cache is an error, --autotune without a
# GPU is an error. With --gpu (SKIP, exit 77, without one): a cold autotuned build fills the
# cache, its bundle matches the CPU evaluator (kiln compare), a warm build times nothing and is
# byte-identical, another GPU's entries are kept and ignored, and `kiln bench --profile`'s
# per-layer times sum to within 2x of the whole run.
set -uo pipefail
KILN=$1 MODEL=$2 WORK=$3 MODE=${4:-}
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
export SOURCE_DATE_EPOCH=1700000000
SHAPE=(--shape image=8x3x32x32)
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

if [ "$MODE" != --gpu ]; then
    for i in 1 2; do # the same -o: the options metadata records the command line
        "$KILN" build "$MODEL" -o "$WORK/m.kiln" "${SHAPE[@]}" --precision fp16 --arch sm_90 --no-autotune \
            >"$WORK/h$i.log" 2>&1 || bad "heuristic build $i: $(cat "$WORK/h$i.log")"
        mv "$WORK/m.kiln" "$WORK/h$i.kiln"
    done
    if grep -Eq "^tuning: ([0-9]+) of \1 tunable kernels used heuristic choices \(for sm_90\)" "$WORK/h1.log"; then
        ok "$(grep ^tuning: "$WORK/h1.log")"
    else
        bad "no heuristic line: $(cat "$WORK/h1.log")"
    fi
    if cmp -s "$WORK/h1.kiln" "$WORK/h2.kiln"; then ok "two builds are byte-identical"; else bad "two builds differ"; fi
    "$KILN" inspect "$WORK/h1.kiln" >"$WORK/inspect.txt" 2>&1
    if grep -q "@heuristic;" "$WORK/inspect.txt" && grep -q "layer_costs" "$WORK/inspect.txt"; then
        ok "bundle metadata: tune (per kernel, heuristic) and layer_costs"
    else
        bad "bundle metadata lacks tune / layer_costs"
    fi
    printf 'kiln-tuning-cache 1\nbroken line\n' >"$WORK/corrupt.txt"
    if out=$("$KILN" build "$MODEL" -o "$WORK/c.kiln" "${SHAPE[@]}" --precision fp16 --tuning-cache "$WORK/corrupt.txt" \
        --no-autotune 2>&1); then
        bad "a corrupt cache was accepted"
    elif grep -q "corrupt.txt:2" <<<"$out" && [ ! -e "$WORK/c.kiln" ]; then
        ok "corrupt cache: $(tail -1 <<<"$out")"
    else
        bad "corrupt cache message: $out"
    fi
    if [ -z "$(command -v nvidia-smi)" ] || ! nvidia-smi -L >/dev/null 2>&1; then
        if out=$("$KILN" build "$MODEL" -o "$WORK/a.kiln" "${SHAPE[@]}" --autotune 2>&1); then
            bad "--autotune without a GPU succeeded"
        elif grep -q "needs a GPU" <<<"$out"; then ok "--autotune without a GPU: $out"
        else bad "--autotune without a GPU: $out"; fi
    fi
    [ $fails -eq 0 ] && echo "PASS cli_tune" || echo "FAIL cli_tune: $fails"
    exit $((fails > 0))
fi

# ---- on a GPU (every build writes m.kiln: the options metadata records the command line)
build() { # NAME ARGS...: build to $WORK/NAME.kiln, log $WORK/NAME.log
    local name=$1
    shift
    "$KILN" build "$MODEL" -o "$WORK/m.kiln" "${SHAPE[@]}" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] && mv "$WORK/m.kiln" "$WORK/$name.kiln"
    return $rc
}
if ! nvidia-smi -L >/dev/null 2>&1; then echo "SKIP: no GPU (nvidia-smi -L fails)"; exit 77; fi
C=$WORK/cache.txt
for prec in fp16 tf32; do
    rm -f "$C"
    if ! build cold_$prec --precision $prec --autotune --tuning-cache "$C"; then
        bad "$prec: cold autotuned build: $(tail -5 "$WORK/cold_$prec.log")"; continue
    fi
    grep "^autotune" "$WORK/cold_$prec.log" | tail -3
    if head -1 "$C" | grep -q "kiln-tuning-cache 1" && [ "$(grep -vc '^#' "$C")" -gt 1 ]; then
        ok "$prec: cache written, $(($(grep -vc '^#' "$C") - 1)) entries"
    else bad "$prec: cache not written"; fi
    grep -aq "@tuned;" "$WORK/cold_$prec.kiln" && ok "$prec: bundle records tuned choices" ||
        bad "$prec: bundle has no tuned choices"
    tol=(--rel-l2 1e-2) # as gpu_codegen.sh states them
    [ $prec = tf32 ] && tol=(--rel-l2 5e-3)
    if "$KILN" compare "$MODEL" "$WORK/cold_$prec.kiln" "${tol[@]}" >"$WORK/compare_$prec.log" 2>&1; then
        ok "$prec: autotuned bundle matches the CPU evaluator (${tol[*]})"
    else bad "$prec: kiln compare: $(tail -5 "$WORK/compare_$prec.log")"; fi
    cp "$C" "$WORK/cache_before.txt"
    if build warm_$prec --precision $prec --autotune --tuning-cache "$C" && grep -q "nothing timed" "$WORK/warm_$prec.log"; then
        ok "$prec: warm build: $(grep 'nothing timed' "$WORK/warm_$prec.log")"
    else bad "$prec: warm build timed something: $(cat "$WORK/warm_$prec.log")"; fi
    cmp -s "$WORK/cold_$prec.kiln" "$WORK/warm_$prec.kiln" && ok "$prec: warm bundle byte-identical" ||
        bad "$prec: warm bundle differs from the cold one"
    cmp -s "$C" "$WORK/cache_before.txt" && ok "$prec: warm build left the cache unchanged" || bad "$prec: cache changed"
    # another GPU's entry: kept, noted, not used
    printf 'Other GPU\t1.0\t1.0\t1\tconv_mma:x\t16x32x32/16x8\t1.000\n' >>"$C"
    build foreign_$prec --precision $prec --autotune --tuning-cache "$C"
    if grep -q "another GPU" "$WORK/foreign_$prec.log" && grep -q "nothing timed" "$WORK/foreign_$prec.log" &&
        cmp -s "$WORK/cold_$prec.kiln" "$WORK/foreign_$prec.kiln"; then
        ok "$prec: foreign entry noted and ignored"
    else bad "$prec: foreign entry: $(cat "$WORK/foreign_$prec.log")"; fi
done
# profile: per-layer times (no graph) against the whole run (also no graph)
if "$KILN" bench "$WORK/cold_fp16.kiln" --no-graph --iterations 50 --profile --ceilings 990,3350 \
    --profile-json "$WORK/profile.json" >"$WORK/profile.txt" 2>&1; then
    line=$(grep "^profile: layers sum" "$WORK/profile.txt")
    sum=$(awk '{print $4}' <<<"$line") whole=$(awk '{print $9}' <<<"$line")
    if awk -v s="$sum" -v w="$whole" 'BEGIN { exit !(s > 0 && w > 0 && s <= 2 * w && w <= 2 * s) }' &&
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['layers'] and all('us' in l for l in d['layers'])" \
            "$WORK/profile.json"; then
        ok "profile: $line"
        sed -n '/^profile: [0-9]/,$p' "$WORK/profile.txt" | head -30
    else bad "profile: $line"; cat "$WORK/profile.txt"; fi
else bad "bench --profile: $(tail -5 "$WORK/profile.txt")"; fi
# --profile-repeat: conv / GEMM layers launched 10 times back to back between their events; the
# JSON says so, and their mean time is below the one-launch time (which adds the gap before the
# launch), with some slack for noise
if "$KILN" bench "$WORK/cold_fp16.kiln" --iterations 50 --profile --profile-repeat 10 \
    --profile-json "$WORK/profile_r10.json" >"$WORK/profile_r10.txt" 2>&1 &&
    "$KILN" bench "$WORK/cold_fp16.kiln" --iterations 50 --profile --profile-json "$WORK/profile_r1.json" \
        >"$WORK/profile_r1.txt" 2>&1; then
    if msg=$(python3 - "$WORK/profile_r1.json" "$WORK/profile_r10.json" 2>&1 <<'PY'
import json, sys
one, ten = (json.load(open(p)) for p in sys.argv[1:3])
assert ten["repeat"] == 10 and one["repeat"] == 1, "repeat field"
t1 = {l["layer"]: l["us"] for l in one["layers"] if l["flops"]}
t10 = {l["layer"]: l["us"] for l in ten["layers"] if l["flops"]}
assert t1 and t1.keys() == t10.keys() and all(v > 0 for v in t10.values()), "conv layers timed"
s1, s10 = sum(t1.values()), sum(t10.values())
assert s10 <= 1.05 * s1, f"back to back {s10:.1f} us > one launch {s1:.1f} us"
print(f"conv / GEMM layers: {s10:.1f} us back to back vs {s1:.1f} us one launch each")
PY
    ); then ok "profile-repeat: $msg"; else bad "profile-repeat: $msg"; fi
else bad "bench --profile-repeat: $(tail -5 "$WORK/profile_r10.txt")"; fi
[ $fails -eq 0 ] && echo "PASS gpu_tune" || echo "FAIL gpu_tune: $fails"
exit $((fails > 0))
