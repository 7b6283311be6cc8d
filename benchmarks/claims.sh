#!/usr/bin/env bash
# Every chapter's claims on seeds 0..9 (python -m dipnb claims), one chapter after another; not
# part of CI. Results are cached like every run, so a second call only prints the tables.
#   bash benchmarks/claims.sh [PROFILE] [SEEDS]     (default: quick 10)
# Writes claims-<chapter>.json per chapter and claims-all.txt (the tables) in the current folder,
# then the book's appendix from them (benchmarks/claims_appendix.py; APPENDIX=path to write
# elsewhere than book/robustness.md of this checkout).
set -u
PROFILE="${1:-quick}"
SEEDS="${2:-10}"
PY="${PYTHON:-python}"
CHAPTERS=$("$PY" -c "import dipnb.claims as C; print(' '.join(C.chapters()))") || exit 2
status=0
: > claims-all.txt
for ch in $CHAPTERS; do
    t0=$(date +%s)
    "$PY" -m dipnb claims --chapter "$ch" --seeds "$SEEDS" --profile "$PROFILE" --quiet \
        --json "claims-$ch.json" | tee -a claims-all.txt
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 2 ] && exit 2
    [ "$rc" -ne 0 ] && status=1
    echo "claims.sh: $ch took $(( $(date +%s) - t0 )) s" | tee -a claims-all.txt
done
"$PY" "$(dirname "$0")/claims_appendix.py" claims-*.json \
    --out "${APPENDIX:-$(dirname "$0")/../book/robustness.md}" || exit 2
exit $status
