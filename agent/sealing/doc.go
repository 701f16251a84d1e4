// Package sealing encrypts and authenticates Chorus's own traffic (record
// replication on the gossip port, datacenter summaries on the WAN) with
// the gossip keyring: AES-GCM with the primary key; opening tries every
// installed key, so key rotation works as it does for Serf. A Sealer with
// a nil keyring passes plain text through. It imports nothing of Chorus.
package sealing
