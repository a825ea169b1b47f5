#!/bin/bash
# The shell side of the progress contract (osception/progress.py), sourced by
# every node's setup script:
#   step NAME COMMAND [ARG...]   run one step, its output in /var/log/osception/NAME.log
#   finish done|failed [REASON]  the node's final line
#   wait_for WHAT SECONDS COMMAND [ARG...]  retry COMMAND until it succeeds or time runs out
#   note STEP                    each line of stdin as a `waiting` line of STEP: one report
#   skip NAME REASON             a step with nothing to do here (a baked image): done, saying why
# Each report is one line on the serial console, which the outer cloud's
# console-log API returns, and in /var/log/osception/progress.log.

OSCEPTION_NODE=${OSCEPTION_NODE:?set OSCEPTION_NODE to the node name}
OSCEPTION_LOG_DIR=${OSCEPTION_LOG_DIR:-/var/log/osception}
mkdir -p "$OSCEPTION_LOG_DIR"
# OSCEPTION_ECHO=1 (`osception apply`, over SSH): every line on this stdout too, also
# from inside a step (whose own output goes to its log).
if [ -n "${OSCEPTION_ECHO:-}" ]; then exec 3>&1; fi

stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }

report() {
  say "$(stamp)" "$@"
}

say() {
  local line
  line="OSCEPTION $1 $OSCEPTION_NODE ${*:2}"
  echo "$line" >>"$OSCEPTION_LOG_DIR/progress.log"
  # The serial console; absent in a chroot or a container.
  if [ -w /dev/console ]; then echo "$line" >/dev/console 2>/dev/null || true; fi
  if [ -n "${OSCEPTION_ECHO:-}" ]; then echo "$line" >&3; fi
}

step() {
  local name=$1 rc=0 last
  shift
  report "$name" started
  "$@" >>"$OSCEPTION_LOG_DIR/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    last=$(tail -n 1 "$OSCEPTION_LOG_DIR/$name.log" | tr -d '\r')
    report "$name" failed "exit $rc: ${last:0:200}"
    finish failed "step $name failed, see $OSCEPTION_LOG_DIR/$name.log"
    exit "$rc"
  fi
  report "$name" "done"
}

note() {
  local ts line
  ts=$(stamp)
  while IFS= read -r line; do
    if [ -n "$line" ]; then say "$ts" "$1" waiting "${line:0:200}"; fi
  done
}

skip() {
  report "$1" started
  report "$1" "done" "skipped: $2"
}

finish() {
  report node "$@"
}

wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 5
  done
}
