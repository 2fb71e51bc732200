#!/bin/sh
# bench/peer-loop.sh -- the peer baseline of `make bench-bulk`: what an
# admin scripts today to check a list of domains with Postfix's
# posttls-finger (STARTTLS, certificate) and swaks (the relay test), one
# domain after the other. bench/bulk.py times it over a sample and
# extrapolates.
#
#   sh bench/peer-loop.sh RESOLVER CA_FILE MAIL_CONFIG DOMAINS_FILE
#
# Per domain: the MX (drill, through the lab's resolver), its address,
# posttls-finger -l secure against the lab CA, then swaks MAIL FROM / RCPT
# TO an outside address (--quit-after RCPT: no DATA). swaks runs without
# TLS: Net::SSLeay is not installed here, and the relay answer does not need
# it. posttls-finger reads main.cf from MAIL_CONFIG (the lab's). Prints one
# line per domain: "DOMAIN ADDRESS tls=<verdict> relay=<last RCPT code>".
set -u
resolver=$1 ca=$2 mail_config=$3 list=$4
while read -r d; do
	[ -n "$d" ] || continue
	mx=$(drill -Q @"$resolver" "$d" MX 2>/dev/null | awk '{ print $2; exit }')
	[ -n "$mx" ] || { echo "$d - no-mx"; continue; }
	addr=$(drill -Q @"$resolver" "$mx" A 2>/dev/null | awk 'NF { print; exit }')
	[ -n "$addr" ] || { echo "$d - no-address"; continue; }
	tls=$(MAIL_CONFIG=$mail_config posttls-finger -c -l secure -F "$ca" \
		"[$addr]:25" 2>&1 | awk '/Verified TLS|Trusted TLS|Untrusted TLS|Anonymous TLS/ { print $2; exit }')
	relay=$(swaks --server "$addr" --ehlo bench.mxprobe.test --from mxprobe@example.net \
		--to mxprobe-relay-test@example.net --quit-after RCPT --timeout 15 2>&1 |
		awk '/^ *-> RCPT TO:<mxprobe-relay-test/ { r = 1; next }
		     r && /^<[-*~]+ +[0-9][0-9][0-9]/ { c = $2; r = 0 } END { print c }')
	echo "$d $addr tls=${tls:-none} relay=${relay:-none}"
done < "$list"
