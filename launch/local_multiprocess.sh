#!/usr/bin/env bash
# Runs N processes of one training job on this machine (CPU devices), the way a
# multi-host pod runs one process per host. Every process runs the same command.
#
#   launch/local_multiprocess.sh NUM_PROCESSES DEVICES_PER_PROCESS PORT -- MAIN_ARGS...
#   launch/local_multiprocess.sh 2 2 12355 -- --config=configs/lama.py:demo --workdir=runs/mp
set -euo pipefail
if [[ $# -lt 4 || "$4" != "--" ]]; then
  echo "usage: $0 NUM_PROCESSES DEVICES_PER_PROCESS PORT -- MAIN_ARGS..." >&2
  exit 2
fi
n=$1; per=$2; port=$3; shift 4
python=${PYTHON:-python3}
pids=()
for ((i = 0; i < n; i++)); do
  JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=$per "$python" -m inpaint_jax.main "$@" \
    --coordinator_address="127.0.0.1:$port" --num_processes="$n" --process_id="$i" \
    > >(sed "s/^/[p$i] /") 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
