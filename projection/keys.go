package projection

import "github.com/streamfold/streamfold/eventstore"

// Key names of a projection, built with eventstore.Keyspace (which owns the
// layout). Per-partition objects share the partition's hash tag, so one
// script can check the lease and touch the log, the dead letters and the
// parked set atomically, also on Redis Cluster:
//
//	<ns>:{<cat>:<p>}:proj:<name>:lease   lease "<token>:<owner>" (string, PX)
//	<ns>:{<cat>:<p>}:proj:<name>:fence   fencing token counter (string)
//	<ns>:{<cat>:<p>}:proj:<name>:dlq     dead letters (stream)
//	<ns>:{<cat>:<p>}:proj:<name>:parked  parked entities (hash: id -> letters)
//	<ns>:{<cat>:<p>}:proj:<name>:ctl     retry/skip requests (stream)
//	<ns>:{<cat>:<p>}:proj:<name>:ckpt    lag bookkeeping (hash: pos, read)
//	<ns>:proj:<name>:members             live runner instances (sorted set)
//
// The consumer group on each partition log is named after the projection.
//
// Dead letters are per partition rather than one namespace-wide stream:
// dead-lettering must be atomic with the ack and the lease check, and only
// keys of one hash tag can be written by one script on a cluster.
type keys struct {
	ks   eventstore.Keyspace
	name string
}

type partKeys struct {
	lease, fence, log, dlq, parked, ctl, ckpt string
}

func (k keys) part(category string, p int) partKeys {
	pre := "proj:" + k.name + ":"
	return partKeys{
		lease:  k.ks.PartitionKey(category, p, pre+"lease"),
		fence:  k.ks.PartitionKey(category, p, pre+"fence"),
		log:    k.ks.Log(category, p),
		dlq:    k.ks.PartitionKey(category, p, pre+"dlq"),
		parked: k.ks.PartitionKey(category, p, pre+"parked"),
		ctl:    k.ks.PartitionKey(category, p, pre+"ctl"),
		ckpt:   k.ks.PartitionKey(category, p, pre+"ckpt"),
	}
}

func (k keys) members() string { return k.ks.Key("proj:" + k.name + ":members") }
