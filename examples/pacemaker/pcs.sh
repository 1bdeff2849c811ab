#!/bin/sh
# The same cluster as demo.crm with pcs (Debian's pcs package), run once on one node after
# `pcs host auth hosta hostb` and the two nodes' /etc/colo-replicate/demo.cfg are in place.
set -e
pcs cluster setup colo hosta hostb            # corosync.conf with two_node: 1 (see corosync.conf)
pcs cluster start --all
pcs property set stonith-enabled=true no-quorum-policy=stop

pcs stonith create fence-hosta fence_ipmilan ip=10.0.0.101 username=admin password=secret lanplus=1 \
    pcmk_host_list=hosta op monitor interval=60s
pcs stonith create fence-hostb fence_ipmilan ip=10.0.0.102 username=admin password=secret lanplus=1 \
    pcmk_host_list=hostb op monitor interval=60s
pcs constraint location fence-hosta avoids hosta
pcs constraint location fence-hostb avoids hostb

pcs resource create demo ocf:colo-replicate:colo-replicate \
    config=/etc/colo-replicate/demo.cfg console_log=/var/log/colo-replicate/demo.console \
    op start timeout=60s op stop timeout=60s op promote timeout=120s op demote timeout=120s \
    op monitor role=Promoted interval=9s timeout=30s \
    op monitor role=Unpromoted interval=10s timeout=30s \
    meta resource-stickiness=200 \
    promotable promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true
