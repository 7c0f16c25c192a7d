#!/bin/sh
# One-shot setup of the docker-compose federation: the consortium PKI and three
# synthetic hospitals (a general hospital, a cancer centre, a clinic). Each party's
# volume receives only its own files: the aggregator its server pair, each site its
# own pair (the hNN-pki volume at /setup/hNN/certs) and its own data (hNN-data at
# /setup/hNN/data). The CA key stays in the setup-only volume.
set -eu
sites="h01 h02 h03"
if [ -f /setup/ca/ca.key ]; then
	echo "setup: /setup/ca already holds a consortium; nothing to do"
	exit 0
fi
fedclaims certs init --out /setup/ca --sites h01,h02,h03 --server-names aggregator,localhost,127.0.0.1
fedclaims synth --out /setup/synth --hospitals 3 --patients 1500 --seed 1
install -d -m 0755 /setup/aggregator
cp /setup/ca/ca.crt /setup/ca/aggregator.crt /setup/ca/aggregator.key /setup/aggregator/
cp /setup/ca/ca.crt /setup/ca/admin.crt /setup/ca/admin.key /setup/aggregator/
for s in $sites; do
	install -d -m 0755 "/setup/$s/certs/sites" "/setup/$s/data"
	cp /setup/ca/ca.crt "/setup/$s/certs/"
	cp "/setup/ca/sites/$s.crt" "/setup/ca/sites/$s.key" "/setup/$s/certs/sites/"
	cp -R "/setup/synth/$s/." "/setup/$s/data/"
done
rm -rf /setup/synth
# The services run as the image's unprivileged user.
chown -R 10001:10001 /setup/aggregator /setup/h01 /setup/h02 /setup/h03
echo "setup: done"
