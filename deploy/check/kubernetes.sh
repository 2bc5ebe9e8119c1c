#!/usr/bin/env bash
# Validates every manifest in deploy/kubernetes against the Kubernetes schemas with
# kubernetes-validate --strict (unknown fields are errors), and renders the kustomization
# when kubectl is installed. Installs kubernetes-validate with pip if it is missing; without
# pip it says so and skips (exit 0), so CI on a bare Rust image still passes.
set -euo pipefail
cd "$(dirname "$0")/../kubernetes"
if ! command -v kubernetes-validate >/dev/null; then
    if command -v pip >/dev/null || command -v pip3 >/dev/null; then
        "$(command -v pip || command -v pip3)" install --quiet --user kubernetes-validate
        export PATH="$HOME/.local/bin:$PATH"
    else
        echo "deploy/check/kubernetes.sh: skipped: neither kubernetes-validate nor pip is installed"
        exit 0
    fi
fi
for manifest in *.yaml; do
    [[ $manifest == kustomization.yaml ]] && continue
    kubernetes-validate --strict --quiet "$manifest"
done
if command -v kubectl >/dev/null; then
    kubectl kustomize . >/dev/null
fi
echo "deploy/check/kubernetes.sh: manifests valid"
