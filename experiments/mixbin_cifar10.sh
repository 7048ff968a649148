#!/usr/bin/env bash
# MixBin vs its baselines on the CIFAR-10 subset (resnet, budgets 0.3 and 0.15), identical fine-tuning
# from one FP checkpoint, every method with the same fine-tuning seeds (SEEDS; MixBin's search seed is its
# fine-tuning seed, random draws RANDOM_MASKS masks, mask k fine-tuned with seed k). Resumable: a run whose
# mask file (or checkpoint) exists is skipped.
#   bash experiments/mixbin_cifar10.sh DATA_ROOT OUT_DIR [DEVICE] [PARALLEL]
# Summarise with: python -m mixbin.report OUT_DIR   (the Markdown table; --out FILE also writes it)
set -uo pipefail
data=${1:?ImageFolder root (train/ and test/)}; out=${2:?output folder}; device=${3:-auto}; jobs=${4:-1}
width=${WIDTH:-1.0}; fp_epochs=${FP_EPOCHS:-15}; search_epochs=${SEARCH_EPOCHS:-3}; ft=${FINETUNE:-800}
workers=${WORKERS:-2}; budgets=${BUDGETS:-"0.3 0.15"}; seeds=${SEEDS:-"0 1 2"}; nrandom=${RANDOM_MASKS:-5}
extra=${EXTRA:-}  # e.g. "--input-size 96 --limit 2000 --threads 1" to size the schedule
common="--data $data --backbone resnet --width $width --device $device --workers $workers $extra"
mkdir -p "$out"
fp="$out/fp/checkpoint.safetensors"
[ -f "$fp" ] || python -m mixbin.train $common --mask fp --epochs "$fp_epochs" --out "$out/fp" > "$out/fp.log" 2>&1 \
  || { echo "FP training failed: $out/fp.log"; exit 1; }
init="--init-from $fp --finetune-iterations $ft"
{
  for b in $budgets; do
    for s in $seeds; do echo "search b$b mixbin_s$s python -m mixbin.search $common --budget $b --epochs $search_epochs --seed $s $init"; done
    for s in $(seq 0 $((nrandom - 1))); do echo "baseline b$b random_s$s python -m mixbin.baseline --method random $common --budget $b --seed $s $init"; done
    for m in iterative first last sensitivity prune; do for s in $seeds; do
      echo "baseline b$b ${m}_s$s python -m mixbin.baseline --method $m $common --budget $b --seed $s $init"; done; done
  done
  for m in binary fp; do for s in $seeds; do
    echo "uniform all all_${m}_s$s python -m mixbin.train $common --mask $m --iterations $ft --seed $s --init-from $fp"; done; done
} | while read -r kind budget name cmd; do  # uniform runs: all_binary and all_fp, fine-tuned like the others
  if [ "$kind" = uniform ]; then
    target="$out/$name/checkpoint.json"; echo "[ -f $target ] || $cmd --out $out/$name > $out/$name.log 2>&1"
  else
    target="$out/${budget}_$name.json"; echo "[ -f $target ] || $cmd --out $target > $out/${budget}_$name.log 2>&1"
  fi
done | xargs -P "$jobs" -I{} bash -c "{}"
status=$?
masks=$(find "$out" -maxdepth 1 -name '*.json' ! -name '*.weights.json' | wc -l)
echo "done: $masks masks in $out$([ "$status" -eq 0 ] || echo "; some runs failed, see $out/*.log")"
exit "$status"
