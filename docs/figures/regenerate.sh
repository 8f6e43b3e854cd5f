#!/bin/sh
# Regenerate every figure in docs/figures/ (shown by docs/REPRODUCTIONS.md and README.md):
# the seven reproductions in full (seed 0) and the default scenario's story and graph.
#   sh docs/figures/regenerate.sh            (about half an hour on 2 cores: gaussian-mechanism
#                                             and learned-conflict take ~10 min each)
#   sh docs/figures/regenerate.sh --redraw   (seconds: redraw the reproductions kept in
#                                             results/reproduce/ from their figures.npz, no rerun)
# The reproductions are kept in results/reproduce/NAME/. PYTHON picks the interpreter
# (default .venv/bin/python).
set -eu
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
redraw=no
case "${1:-}" in
    --redraw) redraw=yes ;;
    "") ;;
    *) echo "usage: sh docs/figures/regenerate.sh [--redraw]" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in gaussian-mechanism two-model-conflict ferbach collapse web-dynamics conditional-llm learned-conflict; do
    out="results/reproduce/$name"
    if [ "$redraw" = yes ]; then
        "$PYTHON" -m ecosystem plot "$out" --quiet
    else
        "$PYTHON" -m ecosystem reproduce "$name" --out "$out"
    fi
    for figure in "$out"/*.png; do    # conditional-llm -> docs/figures/conditional_llm_*.png
        cp "$figure" "docs/figures/$(echo "$name" | sed 's/^conditional-llm$/conditional_llm/; s/^learned-conflict$/learned_conflict/')_$(basename "$figure")"
    done
done
"$PYTHON" -m ecosystem run default --out "$tmp/default" --quiet
for figure in story graph; do
    cp "$tmp/default/$figure.png" "docs/figures/default_$figure.png"
done
echo "regenerated the reproductions' and the default scenario's figures in docs/figures/"
