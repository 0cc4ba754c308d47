#!/bin/sh
# A background worker. vigil stops it with its stop_signal (SIGQUIT, from the
# config) sent to its whole process group, then waits until that group is
# empty. A background `sleep` of a non-interactive shell ignores SIGQUIT (as
# POSIX says), so the trap ends it too instead of leaving vigil to wait for it.
job=0
trap 'echo "got SIGQUIT: finishing job $job, exiting 0"; kill $! 2>/dev/null; exit 0' QUIT
echo "worker started (pid $$); web is ready"
while :; do
	job=$((job + 1))
	sleep 1 &
	wait $!
done
