#!/usr/bin/env bash
# A planned GPU session (one H200, 16 CPU cores) to remake the model zoo, the shipped masks and the MixBin
# table at full scale. It has NOT produced anything that ships: it did not run to completion, and the
# models in models/ and the masks in masks/ were made on this project's 2-core CPU by the commands in
# models/README.md and masks/README.md (their sidecars record CPU-sized runs: batch 8 at 8.7 pairs/s,
# 300-iteration fine-tunes, 150-iteration --threads 1 searches). This script writes only under WORK_DIR.
#   bash experiments/gpu_session.sh CURATED_TRACKING_ROOT CIFAR_ROOT WORK_DIR
# CURATED_TRACKING_ROOT comes from: python -m tracker.curate --data DATA --split DATA/splits/train.txt --out C
# Every stage is resumable (finished outputs are skipped); DEADLINE (seconds) stops waiting stages in time.
set -u
trk=${1:?curated tracking root}; cifar=${2:?CIFAR-10 ImageFolder root}; w=${3:?work dir}
deadline=$(( $(date +%s) + ${DEADLINE:-100000} ))
dev=${DEVICE:-cuda}; it_fp=${ITERS_FP:-2000}; it_ft=${ITERS_FT:-1500}; it_ref=${ITERS_REF:-1000}
mkdir -p "$w/trk" "$w/mix" "$w/masks"
train() {  # train NAME ARGS...: one tracker run, skipped when finished, resumed when interrupted
  local name=$1; shift
  [ -f "$w/trk/$name/done" ] && return 0
  local resume=(); [ -d "$w/trk/$name/.checkpoints" ] && resume=(--resume)
  python -m tracker.train --data "$trk" --device "$dev" "$@" "${resume[@]}" --out "$w/trk/$name" \
    >> "$w/trk/$name.log" 2>&1 && touch "$w/trk/$name/done"
}
wait_for() { while [ ! -f "$1" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 2; done; [ -f "$1" ]; }

# Trackers: FP resnet (zoo b1.0) and, for the alexnet comparison, FP alexnet with the reference's compute.
train resnet_fp --backbone resnet --width "${WIDTH:-1.0}" --mask fp --iterations "$it_fp" --batch-size 32 --workers 4 &
train alexnet_fp --backbone alexnet --mask fp --iterations "$it_ref" --batch-size 8 --workers 2 &

# Classification: FP resnet, then MixBin and every baseline at 0.3 and 0.15 (the table), 4 runs at a time.
WORKERS=2 bash experiments/mixbin_cifar10.sh "$cifar" "$w/mix" "$dev" 4 > "$w/mix.log" 2>&1 &
wait_for "$w/mix/fp/checkpoint.safetensors"
search="python -m mixbin.search --data $cifar --device $dev --workers 2 --epochs ${SEARCH_EPOCHS:-3} --finetune-iterations ${FINETUNE:-800} --width ${WIDTH:-1.0}"
[ -f "$w/masks/resnet_cifar10_mixbin_b0.5.json" ] || $search --backbone resnet --budget 0.5 \
  --init-from "$w/mix/fp/checkpoint.safetensors" --out "$w/masks/resnet_cifar10_mixbin_b0.5.json" > "$w/masks/r05.log" 2>&1 &
for b in 0.5 0.3; do
  [ -f "$w/masks/alexnet_cifar10_mixbin_b$b.json" ] || $search --backbone alexnet --budget $b \
    --out "$w/masks/alexnet_cifar10_mixbin_b$b.json" > "$w/masks/a$b.log" 2>&1 &
done

# Binary alexnet: the FP tracker's weights, Adam, distillation from its response maps.
( wait_for "$w/trk/alexnet_fp/done" && train alexnet_binary --backbone alexnet --mask binary \
    --init-from "$w/trk/alexnet_fp/checkpoint.safetensors" --teacher "$w/trk/alexnet_fp/checkpoint.safetensors" \
    --optimizer adam --lr 1e-3 --lr-end 1e-5 --weight-decay 0 --iterations "$it_ft" --batch-size 16 --workers 2 ) &

# Zoo: masked resnets fine-tuned from the FP tracker with distillation (same recipe for every budget).
wait_for "$w/trk/resnet_fp/done"
fp="$w/trk/resnet_fp/checkpoint.safetensors"
zoo() {
  wait_for "$2" && train "$1" --backbone resnet --width "${WIDTH:-1.0}" --mask "$2" --init-from "$fp" --teacher "$fp" --optimizer adam \
    --lr 1e-3 --lr-end 1e-5 --weight-decay 0 --iterations "$it_ft" --batch-size 32 --workers 3
}
zoo resnet_b0.5 "$w/masks/resnet_cifar10_mixbin_b0.5.json" &
zoo resnet_b0.3 "$w/mix/b0.3_mixbin_s0.json" &
( train resnet_bmin --backbone resnet --width "${WIDTH:-1.0}" --mask binary --init-from "$fp" --teacher "$fp" --optimizer adam \
    --lr 1e-3 --lr-end 1e-5 --weight-decay 0 --iterations "$it_ft" --batch-size 32 --workers 3 ) &
wait
echo "finished at $(date)"
