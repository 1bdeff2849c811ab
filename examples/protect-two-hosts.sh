#!/bin/bash
# Protecting a guest across two real hosts, step by step (what examples/demo.sh does on one
# machine with two run directories). Run the lines on the host named in each comment.
#
# The link is TLS 1.3 with a pre-shared key: made once, copied to the other host over ssh.
#   hostA# colo-replicate keygen /etc/colo-replicate/link.key
#   hostA# scp -p /etc/colo-replicate/link.key hostB:/etc/colo-replicate/link.key
#   hostB# colo-replicate receive --key /etc/colo-replicate/link.key -l 0.0.0.0:8471 --console-log /var/log/demo.console
#   hostA# colo-replicate create examples/builtin-guest.cfg --console-log /var/log/demo.console
#   hostA# colo-replicate protect --key /etc/colo-replicate/link.key demo hostB   # COLO; add --remus -i 100 for Remus
#   hostA# colo-replicate status demo                   # epoch, pauses, pages paused/streamed
#   hostB# colo-replicate status demo                   # checkpoints applied, pages flushed
#
# If host A dies, host B takes over by itself within --heartbeat-timeout (800 ms by default):
#   hostB# colo-replicate list                          # demo  running ... unprotected (took over)
# Each host's log holds byte k of the guest's console stream at position k (NULs before the first
# byte that host released; use a new file on each host). The whole console is the hosts' logs laid
# over each other by position: a byte that both A (dying before its report arrived) and B
# released is at the same position in both.
# The survivor is a primary now: protect it again to a third host (or migrate it on):
#   hostC# colo-replicate receive --key /etc/colo-replicate/link.key -l 0.0.0.0:8471 --console-log /var/log/demo.console
#   hostB# colo-replicate protect --key /etc/colo-replicate/link.key demo hostC
# To move the guest instead of protecting it:
#   hostA# colo-replicate migrate --key /etc/colo-replicate/link.key demo hostB
# Without --key, receive listens only on loopback unless told --insecure (anyone who reaches the
# port could then push a guest into host B).
# So that a partition or a frozen host never leaves two live copies, give both sides a witness: an
# etcd (Debian's etcd-server) on a third host both can reach:
#   hostW# etcd --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://hostW:2379
#   hostB# colo-replicate receive --key /etc/colo-replicate/link.key --witness etcd://hostW:2379 ...
#   hostA# colo-replicate protect --key /etc/colo-replicate/link.key --witness etcd://hostW:2379 demo hostB
# The side that loses the guest on the witness stops its copy for good (status: arbitration).
# To make host B take over on purpose (host A keeps running, unprotected):
#   hostB# colo-replicate failover demo
echo "This file is a walkthrough: read it (examples/demo.sh runs the same on one machine)."
