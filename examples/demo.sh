#!/bin/sh
# The main process of the wrapper-mode demo: it makes orphans, leaves a
# stubborn worker behind, and reacts to the signals vigil forwards.
say() { echo "  demo[$$]: $*"; }
say "I am the main process; vigil is my parent (pid $PPID)"
say "making 20 orphans: their parents exit at once, so vigil must reap them"
i=0
while [ $i -lt 20 ]; do (sleep 0.2 &); i=$((i+1)); done
say "starting a worker that ignores SIGTERM and SIGUSR1 (vigil will SIGKILL it after the budget)"
(trap '' TERM USR1; exec sleep 1000) &
trap 'say "got SIGUSR1 (forwarded by vigil to my process group)"' USR1
trap 'say "got SIGTERM: cleaning up, exiting 3"; exit 3' TERM
# (sleep shares our group and dies of the forwarded signals; hide the shell's notes on it)
while :; do sleep 1 & wait $!; done 2>/dev/null
