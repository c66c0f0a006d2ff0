#!/bin/sh
# Stands in for bpftrace in guard tests: $4 is the "script" (-f json -e <script>).
case "$4" in
  hang) trap '' INT; while :; do sleep 1; done ;;
  loud) echo '{"type": "attached_probes", "data": {"probes": 2}}'; while :; do echo "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; done ;;
  *) echo "$4" >&2; exit 1 ;;
esac
