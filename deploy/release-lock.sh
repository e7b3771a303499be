#!/usr/bin/env bash
# The release lock: everything that changes production (migrate → roll out → move the alias →
# record the release) runs while holding it — ci.yaml's deploy, rollback.yaml and promote.yaml.
# It is a Kubernetes Lease in the production namespace, so it queues across workflows and
# runners, whatever GitHub's concurrency groups cancel:
#
#   deploy/release-lock.sh acquire HOLDER   # waits (RELEASE_LOCK_WAIT_S, 3600) for the Lease
#   deploy/release-lock.sh release HOLDER   # lets it go (only if HOLDER holds it)
#
# Creating the Lease is atomic (the API server refuses a second one). A holder that died (a
# cancelled job) leaves it behind: it expires RELEASE_LOCK_TTL_S (5400, longer than a deploy
# job's timeout) after it was taken, and a waiter then takes it over with `kubectl replace`,
# which carries the Lease's resourceVersion: of two waiters, one wins. An operator can free it
# at once with `kubectl -n "$NAMESPACE" delete lease imdb-sentiment-release`.
set -euo pipefail
action=${1:?acquire or release}
holder=${2:?a holder name, e.g. deploy-<run id>}
namespace=${NAMESPACE:?}
lease=imdb-sentiment-release
ttl=${RELEASE_LOCK_TTL_S:-5400}
wait_s=${RELEASE_LOCK_WAIT_S:-3600}
poll_s=${RELEASE_LOCK_POLL_S:-10}

now() { date -u +%Y-%m-%dT%H:%M:%S.000000Z; }

manifest() {  # the Lease as $holder takes it; $1: a resourceVersion to replace, if any
  local version=${1:-}
  printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: %s\n  namespace: %s\n' \
    "$lease" "$namespace"
  [ -n "$version" ] && printf '  resourceVersion: "%s"\n' "$version"
  printf 'spec:\n  holderIdentity: %s\n  leaseDurationSeconds: %s\n  acquireTime: %s\n  renewTime: %s\n' \
    "$holder" "$ttl" "$(now)" "$(now)"
}

expired() {  # $1: the holder's renewTime, $2: its leaseDurationSeconds
  local taken
  taken=$(date -u -d "$1" +%s 2>/dev/null) || return 1
  [ $(( $(date -u +%s) - taken )) -gt "$2" ]
}

acquire() {
  local deadline=$((SECONDS + wait_s)) current held renewed duration version
  while :; do
    if manifest | kubectl -n "$namespace" create -f - >/dev/null 2>&1; then
      echo "release lock: taken by $holder"
      return 0
    fi
    current=$(kubectl -n "$namespace" get lease "$lease" -o \
      jsonpath='{.spec.holderIdentity} {.spec.renewTime} {.spec.leaseDurationSeconds} {.metadata.resourceVersion}' \
      2>/dev/null) || current=""
    read -r held renewed duration version <<<"$current" || true
    if [ "$held" = "$holder" ]; then
      echo "release lock: already held by $holder"
      return 0
    fi
    if [ -n "$version" ] && expired "$renewed" "$duration" \
        && manifest "$version" | kubectl -n "$namespace" replace -f - >/dev/null 2>&1; then
      echo "release lock: taken over from $held (expired) by $holder"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "release lock: still held by ${held:-someone} after ${wait_s} s; giving up" >&2
      return 1
    fi
    echo "release lock: held by ${held:-someone}; waiting"
    sleep "$poll_s"
  done
}

release() {
  local held
  held=$(kubectl -n "$namespace" get lease "$lease" -o jsonpath='{.spec.holderIdentity}' \
    2>/dev/null) || held=""
  if [ "$held" = "$holder" ]; then
    kubectl -n "$namespace" delete lease "$lease" >/dev/null
    echo "release lock: released by $holder"
  else
    echo "release lock: not held by $holder (${held:-nobody} holds it); nothing to release"
  fi
}

case "$action" in
  acquire) acquire ;;
  release) release ;;
  *) echo "usage: release-lock.sh acquire|release HOLDER" >&2; exit 2 ;;
esac
