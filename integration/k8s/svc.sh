#!/bin/sh
# svc.sh NAME [READY_AFTER [STOP_DELAY]]: a service of vigil's Kubernetes tests
# (in the test image as /svc.sh). It notes its life in /data/events (a hostPath
# the test reads from outside), one line each: "UPTIME NAME WHAT", UPTIME from
# /proc/uptime, the host's clock too (containers get no time namespace):
#   start PID | ready | got TERM|INT|QUIT|HUP | exit
# READY_AFTER seconds after it started it creates /data/NAME.ready (the file a
# `ready: {"file": ...}` check waits for). On TERM, INT, QUIT or HUP it notes
# the signal, takes STOP_DELAY seconds to finish (a service saving its work)
# and exits 0. A background sleep of a non-interactive shell ignores INT and
# QUIT, so the handler ends it itself.
name=$1 ready_after=${2:-0} stop_delay=${3:-0}
note() {
	read -r up _ </proc/uptime
	echo "$up $name $*" >>/data/events
}
on() {
	note "got $1"
	kill "$!" 2>/dev/null
	[ "$stop_delay" = 0 ] || sleep "$stop_delay"
	note exit
	exit 0
}
trap 'on TERM' TERM
trap 'on INT' INT
trap 'on QUIT' QUIT
trap 'on HUP' HUP
rm -f "/data/$name.ready"
note "start $$"
if [ "$ready_after" != 0 ]; then
	sleep "$ready_after" &
	wait $!
fi
touch "/data/$name.ready"
note ready
while :; do
	sleep 1 &
	wait $!
done
