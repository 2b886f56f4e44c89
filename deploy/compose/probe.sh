#!/bin/bash
# Healthcheck for the natsfs images: probe.sh PORT PATH exits 0 when GET http://127.0.0.1:PORT/PATH
# answers 2xx within 5 s. The images have neither curl nor wget, and starting node for every probe
# costs seconds of CPU on a busy host: bash's /dev/tcp does it for nothing.
set -u
port=$1 path=$2
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3 || { echo "no answer from port $port"; exit 1; }
echo "$path: $status"
[[ "$status" == HTTP/1.?" 2"* ]]
