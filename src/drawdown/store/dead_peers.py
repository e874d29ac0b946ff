"""How soon PostgreSQL ends the session of a drawdown process it can no longer reach.

A process cut off from the database (a network partition, a paused virtual machine, a host
gone) sends nothing more, not even the FIN of a closed socket, and the server's kernel waits 2 h
11 min by default before it gives up on such a peer. Until then the session lives on with all it
holds: the row and advisory locks of its open transaction (every other writer of those accounts
waits for them and answers 503), and an applier's seat and "behind" mark (its share of the
accounts waits `STUCK_SECONDS` a round, and every process holds its ingest answers). These
settings, which any user may set for their own session, have the server probe a peer that has
been silent for 5 s and end its session once probes or data go unanswered for 10 s: a session
of a vanished process ends about 10 to 15 s after it fell silent. A live process's sessions
answer the probes from its kernel, however busy the process is, so nothing else changes.
"""

DEAD_PEER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    # with unanswered data or probes outstanding, this bounds the wait (keepalives alone never
    # start while a reply is still unacknowledged: that waits out ~15 min of retransmissions)
    "tcp_user_timeout": "10000",
}
