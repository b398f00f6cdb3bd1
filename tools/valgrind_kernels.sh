#!/usr/bin/env bash
# Run fastbp's compiled kernels under valgrind memcheck and report the errors that are
# attributable to them.
#
#   tools/valgrind_kernels.sh [OUTDIR]        (default OUTDIR: build/valgrind)
#
# Two workloads run under memcheck (PYTHONMALLOC=malloc, so that every Python and numpy
# allocation is seen by valgrind):
#   1. tests/test_robust_kernels.py -- every kernel with random shapes, dtypes, layouts,
#      empty batches and invalid arguments (hypothesis examples reduced through
#      FASTBP_ROBUST_EXAMPLES, default 6 here), plus random graph programs;
#   2. a training loop (embedding window -> tanh -> softmax, Adam and SGD with row-sparse
#      updates, dropout) in float32 and float64 with 2 kernel threads.
# CPython / dynamic-loader noise is suppressed with tools/valgrind-python.supp (entries
# anchored on the top frame only). From the XML reports the script counts, by kind, the
# errors whose stack has a frame in fastbp_ext/_kernels*.so, and "definitely lost" leaks
# allocated from it. Exit status 1 if any such error exists.
# Takes ~5-15 minutes (valgrind is ~50x slower). Not part of pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/valgrind}
mkdir -p "$OUT"
PY=$(python -c 'import sys, os; print(os.path.realpath(sys.executable))')
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
ls fastbp_ext/_kernels*.so >/dev/null 2>&1 || { echo "build the kernels first: python setup.py build_ext --inplace" >&2; exit 2; }

export PYTHONMALLOC=malloc
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FASTBP_ROBUST_EXAMPLES=${FASTBP_ROBUST_EXAMPLES:-6}
export FASTBP_NUM_THREADS=${FASTBP_NUM_THREADS:-2}
VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --num-callers=60 --error-limit=no
    --suppressions=tools/valgrind-python.supp --child-silent-after-fork=yes)

cat > "$OUT/train_loop.py" <<'EOF'
import numpy as np
import fastbp as fb

for dt in (np.float32, np.float64):
    r = np.random.default_rng(0)
    E = fb.Parameter(r.standard_normal((60, 8)).astype(dt))
    W = fb.Parameter(r.standard_normal((24, 32)).astype(dt))
    b = fb.Parameter(np.zeros(32, dt))
    U = fb.Parameter(r.standard_normal((32, 5)).astype(dt))
    c = fb.Parameter(np.zeros(5, dt))
    params = [E, W, b, U, c]
    for opt in (fb.optim.Adam(params, lr=1e-2), fb.optim.SGD(params, lr=0.1)):
        for B in (1, 7, 64, 0, 300):
            for _ in range(4):
                opt.zero_grad()
                x = fb.embedding(E, r.integers(0, 60, (B, 3)))
                h = fb.dropout(fb.tanh(fb.linear(x, W, b)), 0.3, rng=r)
                s = fb.sigmoid(h).sum(axis=1) - fb.relu(h).mean(axis=1)
                loss = fb.cross_entropy(fb.linear(h, U, c), r.integers(0, 5, B)) + \
                    fb.binary_cross_entropy_with_logits(s, (r.random(B) > 0.5).astype(dt))
                loss.backward()
                opt.step()
print("train loop ok", float(loss.data))
EOF

status=0
echo "== memcheck: pytest tests/test_robust_kernels.py (FASTBP_ROBUST_EXAMPLES=$FASTBP_ROBUST_EXAMPLES)"
"${VG[@]}" --xml=yes --xml-file="$OUT/kernels_tests.xml" --log-file="$OUT/kernels_tests.log" \
    "$PY" -m pytest -q -p no:cacheprovider -p no:randomly tests/test_robust_kernels.py \
    > "$OUT/kernels_tests.out" 2>&1 || status=$?
tail -n 1 "$OUT/kernels_tests.out"
echo "== memcheck: training loop"
"${VG[@]}" --xml=yes --xml-file="$OUT/train_loop.xml" --log-file="$OUT/train_loop.log" \
    "$PY" "$OUT/train_loop.py" > "$OUT/train_loop.out" 2>&1 || status=$?
tail -n 1 "$OUT/train_loop.out"
[ "$status" = 0 ] || echo "warning: a workload exited with status $status"

"$PY" - "$OUT" <<'EOF'
import collections
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
bad = 0
for name in ("kernels_tests", "train_loop"):
    root = ET.parse(out / f"{name}.xml").getroot()
    counts = {}
    ec = root.find("errorcounts")
    for pair in (ec.iter("pair") if ec is not None else []):
        counts[pair.findtext("unique")] = int(pair.findtext("count"))
    kinds, ours, examples = collections.Counter(), collections.Counter(), {}
    for err in root.iter("error"):
        kind = err.findtext("kind")
        count = counts.get(err.findtext("unique"), 1)
        kinds[kind] += count
        frames = [(f.findtext("obj") or "", f.findtext("fn") or "?") for f in err.iter("frame")]
        if any("_kernels" in obj for obj, _ in frames):
            ours[kind] += count
            examples.setdefault(kind, (err.findtext("what") or (err.find("xwhat") is not None
                                       and err.find("xwhat").findtext("text")) or "",
                                       frames[:6]))
    sc = root.find("suppcounts")
    supp = sum(int(p.findtext("count")) for p in (sc.iter("pair") if sc is not None else []))
    n_err, n_ctx = sum(kinds.values()), len(list(root.iter("error")))
    print(f"-- {name}")
    print(f"   ERROR SUMMARY: {n_err} errors from {n_ctx} contexts (suppressed: {supp})")
    print(f"   unsuppressed error contexts by kind: {dict(kinds) or 'none'}")
    print(f"   attributable to fastbp_ext._kernels: {sum(ours.values())} "
          f"{dict(ours) if ours else ''}")
    print(f"   of which invalid reads: {ours['InvalidRead']}, invalid writes: "
          f"{ours['InvalidWrite']}, uninitialised: "
          f"{ours['UninitValue'] + ours['UninitCondition']}, definitely lost: "
          f"{ours['Leak_DefinitelyLost']}")
    for kind, (what, frames) in examples.items():
        print(f"   e.g. {kind}: {what}")
        for obj, fn in frames:
            print(f"        {fn}  [{Path(obj).name}]")
    bad += sum(ours.values())
sys.exit(1 if bad else 0)
EOF
