#!/bin/sh
# The main process of the wrapper-mode image. Try:
#   docker run -d --name w IMAGE; docker kill -s USR1 w; docker stop w
#   docker inspect -f '{{.State.ExitCode}}' w      # 143 here, tini's answer too
say() { echo "app[$$]: $*"; }
say "main process; my parent is vigil (pid $PPID)"
# Orphans: each subshell exits at once and leaves its sleep to vigil.
for i in 1 2 3 4 5; do (sleep 0.5 &); done
trap 'say "got SIGUSR1 (forwarded by vigil)"' USR1
trap 'say "got SIGHUP (forwarded by vigil)"' HUP
# (the sleep shares our group and dies of forwarded signals too; the shell's
# note about that goes to /dev/null)
while :; do
	sleep 1 &
	wait $!
done 2>/dev/null
