// Package groupinfo parses XINFO GROUPS: the consumer groups of a stream
// (a partition log), which projection reads for its status and waits,
// retention to trim no further than the slowest group needs, and the CLI to
// list projections.
package groupinfo

import (
	"fmt"

	"github.com/redis/rueidis"
)

// Group is one consumer group of a stream, as XINFO GROUPS reports it.
// A field the server does not report is zero.
type Group struct {
	Name          string
	LastDelivered string // last-delivered-id
	Pending       int64  // entries delivered and not acknowledged
	Consumers     int64
}

// Parse reads the reply of XINFO GROUPS.
func Parse(reply rueidis.RedisResult) ([]Group, error) {
	arr, err := reply.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(arr))
	for _, g := range arr {
		m, err := g.AsMap()
		if err != nil {
			return nil, fmt.Errorf("xinfo groups: %w", err)
		}
		out = append(out, Group{
			Name:          str(m, "name"),
			LastDelivered: str(m, "last-delivered-id"),
			Pending:       num(m, "pending"),
			Consumers:     num(m, "consumers"),
		})
	}
	return out, nil
}

func str(m map[string]rueidis.RedisMessage, k string) string {
	v, ok := m[k]
	if !ok {
		return ""
	}
	s, _ := v.ToString()
	return s
}

func num(m map[string]rueidis.RedisMessage, k string) int64 {
	v, ok := m[k]
	if !ok {
		return 0
	}
	n, _ := v.AsInt64()
	return n
}
