#!/usr/bin/env bash
# Writes crates/kestrel-train/tests/fixtures/legacy-{classify,segment,multitask}.ckpt: the `best`
# checkpoints of one-epoch runs of tiny models, made by a kestrel built from commit a4108e3 (before
# one ModelSpec described every checkpoint), which the checkpoint reader must keep loading.
#
#   git worktree add --detach /tmp/kestrel-old a4108e3
#   (cd /tmp/kestrel-old && cargo build -p kestrel-cli)
#   tools/legacy_checkpoints.sh /tmp/kestrel-old/target/debug/kestrel
set -euo pipefail
kestrel=${1:?usage: tools/legacy_checkpoints.sh PATH/TO/OLD/kestrel}
out=$(cd "$(dirname "$0")/.." && pwd)/crates/kestrel-train/tests/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--data shapes:n=48,size=32,classes=2 --width 0.25 --resolution 32 --epochs 1 --batch-size 8)
"$kestrel" train "${common[@]}" --model mobilenet-v1 --out "$work/classify" >/dev/null
"$kestrel" train "${common[@]}" --task segment --model fcn32s-mobilenet-v2 --out "$work/segment" >/dev/null
"$kestrel" train "${common[@]}" --task multitask --model fcn32s-mobilenet-v2 --out "$work/multitask" >/dev/null
for task in classify segment multitask; do
  cp "$work/$task/checkpoints/best.ckpt" "$out/legacy-$task.ckpt"
done
ls -l "$out"/legacy-*.ckpt
