#!/usr/bin/env bash
# Scores the sandbox of both units with `systemd-analyze security --offline=yes` (lower is
# safer, 0-10) and fails if one is above its ceiling, so a change that weakens a unit is
# noticed. Skips with a message where systemd-analyze (systemd >= 252) is missing.
set -euo pipefail
cd "$(dirname "$0")/../systemd"
if ! systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
    echo "deploy/check/systemd.sh: skipped: systemd-analyze security --offline is not available"
    exit 0
fi
status=0
check() {
    local unit=$1 ceiling=$2 score
    score=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$unit: $score (ceiling $ceiling)"
    if [[ -z $score ]] || awk -v s="$score" -v c="$ceiling" 'BEGIN { exit !(s > c) }'; then
        status=1
    fi
}
check rota-coordinator.service 1.5
check rota-agent.service 4.0
exit $status
