#!/usr/bin/env bash
# A virtual environment with one major version of the SageMaker Python SDK, for the suite's tests of
# the images through the SDK's local modes. v2 and v3 are both the `sagemaker` distribution, so each
# gets its own environment; the versions are pinned so that a green run can be repeated.
#   usage: scripts/sdk-venv.sh v2|v3      prints the environment's python on stdout
# v3 also gets the checkout's CLI (cli/, editable): the pipeline tests run a bake's make pipeline with it.
#   SDK_VENV_DIR  where the environments go (default: <template>/.venv-sdk)
set -euo pipefail

template=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in
  # PyYAML: both local modes write a compose file with it but do not all declare it.
  v2) requirements=("sagemaker==2.257.7" "PyYAML>=6" "moto[server]==5.2.5") ;;
  v3) requirements=("sagemaker==3.27.0" "PyYAML>=6" "moto[server]==5.2.5") ;;
  *) echo "usage: scripts/sdk-venv.sh v2|v3" >&2; exit 2 ;;
esac
venv=${SDK_VENV_DIR:-$template/.venv-sdk}/$1
stamp=$venv/.installed
wanted="${requirements[*]}"
if [[ ! -f $stamp || $(<"$stamp") != "$wanted" ]]; then
  printf '==> Creating %s with %s\n' "$venv" "$wanted" >&2
  rm -rf -- "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet "${requirements[@]}" >&2
  printf '%s' "$wanted" >"$stamp"
fi
# v3 runs the bakes' pipeline commands: the checkout's CLI, editable (its dependencies come with the SDK).
if [[ $1 == v3 ]] && ! "$venv/bin/python" -c 'import rsagemaker_cli' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --no-deps -e "$template/cli" >&2
fi
printf '%s\n' "$venv/bin/python"
