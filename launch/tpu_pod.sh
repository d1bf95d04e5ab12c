#!/usr/bin/env bash
# Runs the same command on every worker of a Cloud TPU pod slice. On TPU VMs
# jax.distributed.initialize() finds the other hosts by itself. The workdir and
# data must be on storage every host reads (GCS or NFS); prepare TFDS datasets
# as ArrayRecord beforehand (tfds build --file_format=array_record).
#   launch/tpu_pod.sh TPU_NAME ZONE configs/lama.py:big gs://bucket/runs/big [overrides...]
set -euo pipefail
tpu=${1:?TPU name}; zone=${2:?zone}; config=${3:?config}; workdir=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="\
  cd ~/inpaint_jax && python3 -m inpaint_jax.main --config=$config --workdir=$workdir \
  --distributed=on $*"
