#!/bin/sh
# A session with nothing but mosquitto-clients against a running hcore.
# Usage: sh examples/shell/session.sh [port]   (default 1883)
set -eu
P=${1:-1883}

echo "# watch everything under hc/ (in the background, 5 messages)"
mosquitto_sub -p "$P" -i watcher -t 'hc/event/#' -v -C 1 > /tmp/hcore-session-events.$$ &
WATCH=$!
sleep 0.5

echo "# set a state value by RPC (MQTT 5 request/response)"
mosquitto_rr -p "$P" -i shell -t hc/call/shell/state/set -e hc/reply/shell -m '{"params":{"key":"shell/lamp","value":"on"}}'

echo "# a device sets state with a plain publish"
mosquitto_pub -p "$P" -i device -t hc/state/shell/door/set -m '"closed"'

echo "# read it back"
mosquitto_rr -p "$P" -i shell -t hc/call/shell/state/get -e hc/reply/shell -m '{"params":{"key":"shell/door"}}'

echo "# the retained record"
mosquitto_sub -p "$P" -i reader -t hc/state/shell/lamp -C 1

echo "# the state_changed event the watcher saw"
wait "$WATCH"
cat /tmp/hcore-session-events.$$
rm -f /tmp/hcore-session-events.$$
