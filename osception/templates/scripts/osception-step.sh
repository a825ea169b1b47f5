#!/bin/bash
# The shell side of the progress contract (osception/progress.py), sourced by
# every node's setup script:
#   step NAME COMMAND [ARG...]   run one step, its output in /var/log/osception/NAME.log; it
#                                fails at the first command that fails (`failed exit N: CMD: ...`)
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
  # The step's own command: what a failure names when the failing command is a
  # function's `return N` (or the command itself).
  local osception_step_command="$*"
  report "$name" started
  # The command with errexit, in a subshell of its own: the step fails at the first
  # command that fails, inside its functions too (bash ignores -e in whatever runs on
  # the left of || or &&, hence no `|| rc=$?` here: the rc is read after). The ERR
  # trap writes that command down (the first one only: a failure inside $(...) fails
  # its assignment too).
  local osception_step_failed=$OSCEPTION_LOG_DIR/$name.failed
  rm -f "$osception_step_failed"
  (
    set -eE
    trap '_step_failed "$osception_step_failed" "$BASH_COMMAND"' ERR
    "$@"
  ) >>"$OSCEPTION_LOG_DIR/$name.log" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    last=$(tail -n 1 "$OSCEPTION_LOG_DIR/$name.log" | tr -d '\r')
    local command=$osception_step_command
    if [ -s "$osception_step_failed" ]; then command=$(head -n 1 "$osception_step_failed"); fi
    report "$name" failed "exit $rc: ${command:0:120}: ${last:0:200}"
    finish failed "step $name failed, see $OSCEPTION_LOG_DIR/$name.log"
    exit "$rc"
  fi
  report "$name" "done"
}

_step_failed() {
  local command=$2
  case $command in
    return*|'"$@"') command=$osception_step_command ;;
  esac
  if [ ! -e "$1" ]; then echo "$command" | head -n 1 >"$1"; fi
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
