// Package rediserr classifies the error replies of Redis that the store and
// its tools act on. Redis tells some conditions only by the text of an error
// reply; the matching lives here, once, and only replies (rueidis'
// *RedisError) are matched, never a network error that happens to carry the
// same words.
package rediserr

import (
	"errors"
	"strings"

	"github.com/redis/rueidis"
)

// reply returns err's Redis error reply, if it is one.
func reply(err error) (*rueidis.RedisError, bool) {
	var re *rueidis.RedisError
	if !errors.As(err, &re) || re == nil || re.IsNil() {
		return nil, false
	}
	return re, true
}

// IsNoSuchKey reports whether err is Redis' "ERR no such key" (XINFO of a
// key that does not exist).
func IsNoSuchKey(err error) bool {
	re, ok := reply(err)
	return ok && strings.Contains(re.Error(), "no such key")
}

// IsNotOwner reports whether err says the node does not serve the command
// for itself: READONLY (a replica refusing) or MOVED (a cluster node that
// owns none of the slots asked for). A scan of every node skips such nodes:
// their keys are listed by the node that owns them.
func IsNotOwner(err error) bool {
	re, ok := reply(err)
	if !ok {
		return false
	}
	if _, moved := re.IsMoved(); moved {
		return true
	}
	return strings.HasPrefix(re.Error(), "READONLY")
}

// IsIdleTimeUnavailable reports whether err is Redis refusing OBJECT
// IDLETIME because an LFU maxmemory-policy is set (idle times are not
// tracked then).
func IsIdleTimeUnavailable(err error) bool {
	re, ok := reply(err)
	return ok && strings.Contains(re.Error(), "LFU")
}

// IsBusyGroup reports whether err is Redis' BUSYGROUP: XGROUP CREATE of a
// consumer group that exists.
func IsBusyGroup(err error) bool {
	re, ok := reply(err)
	return ok && strings.HasPrefix(re.Error(), "BUSYGROUP")
}

// IsNoGroup reports whether err is Redis' NOGROUP (also from inside a
// script): the stream or its consumer group does not exist.
func IsNoGroup(err error) bool {
	re, ok := reply(err)
	return ok && strings.Contains(re.Error(), "NOGROUP")
}
