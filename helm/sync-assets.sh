#!/bin/sh
# Copy the alert rules and Grafana dashboards into the Helm chart, which can only
# package files below its own directory. tests/chart checks that the copies match.
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"
chart="$root/helm/cryptomus-exporter"

cp "$root/alerts/cryptomus-exporter.rules.yml" "$chart/files/cryptomus-exporter.rules.yml"

mkdir -p "$chart/files/dashboards"
rm -f "$chart/files/dashboards/"*.json
for dashboard in "$root/dashboards/"*.json; do
    [ -e "$dashboard" ] || { echo "no dashboards in $root/dashboards" >&2; exit 1; }
    cp "$dashboard" "$chart/files/dashboards/"
done

echo "synced alerts/cryptomus-exporter.rules.yml and dashboards/*.json into $chart/files"
