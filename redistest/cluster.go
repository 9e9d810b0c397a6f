package redistest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// clusterMember is a started, empty cluster-enabled node.
type clusterMember struct {
	addr    string
	port    int
	busPort int
}

// slotRanges splits the 16384 slots over the three masters.
var slotRanges = [3][2]int64{{0, 5460}, {5461, 10922}, {10923, 16383}}

// formCluster turns three empty cluster-enabled nodes into a cluster without
// replicas, with Redis commands only (images built FROM scratch have no redis-cli),
// and waits until every node sees the whole cluster as ok.
func formCluster(ctx context.Context, members []clusterMember) error {
	if len(members) != len(slotRanges) {
		return fmt.Errorf("cluster needs %d nodes, got %d", len(slotRanges), len(members))
	}
	clients := make([]rueidis.Client, len(members))
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, m := range members {
		c, err := nodeClient(m.addr)
		if err != nil {
			return fmt.Errorf("cluster node %s: %w", m.addr, err)
		}
		clients[i] = c
		// Distinct config epochs up front spare the nodes the epoch-collision round.
		// ADDSLOTS with every slot, not ADDSLOTSRANGE: that needs Redis 7.0.
		slots := make([]int64, 0, slotRanges[i][1]-slotRanges[i][0]+1)
		for sl := slotRanges[i][0]; sl <= slotRanges[i][1]; sl++ {
			slots = append(slots, sl)
		}
		cmds := rueidis.Commands{
			c.B().ClusterSetConfigEpoch().ConfigEpoch(int64(i + 1)).Build(),
			c.B().ClusterAddslots().Slot(slots...).Build(),
		}
		for j, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return fmt.Errorf("cluster node %s: %s: %w", m.addr, cmds[j].Commands()[:2], err)
			}
		}
	}
	// Node 0 meets the others; gossip introduces them to each other.
	for _, m := range members[1:] {
		cmd := clients[0].B().ClusterMeet().Ip("127.0.0.1").Port(int64(m.port)).ClusterBusPort(int64(m.busPort)).Build()
		if err := clients[0].Do(ctx, cmd).Error(); err != nil {
			return fmt.Errorf("cluster meet %s: %w", m.addr, err)
		}
	}
	addrs := make([]string, len(members))
	for i, m := range members {
		addrs[i] = m.addr
	}
	return waitClusterOK(ctx, addrs)
}

// waitClusterOK polls CLUSTER INFO on every node until each reports cluster_state:ok,
// knows all nodes and counts all of them as masters with slots.
func waitClusterOK(ctx context.Context, addrs []string) error {
	want := strconv.Itoa(len(addrs))
	var last error
	for {
		last = nil
		for _, addr := range addrs {
			info, err := clusterInfo(ctx, addr)
			if err == nil && (info["cluster_state"] != "ok" || info["cluster_known_nodes"] != want || info["cluster_size"] != want) {
				err = fmt.Errorf("cluster_state:%s cluster_known_nodes:%s cluster_size:%s",
					info["cluster_state"], info["cluster_known_nodes"], info["cluster_size"])
			}
			if err != nil {
				last = fmt.Errorf("%s: %w", addr, err)
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok: %w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clusterInfo returns the fields of CLUSTER INFO of one node.
func clusterInfo(ctx context.Context, addr string) (map[string]string, error) {
	c, err := nodeClient(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
	if err != nil {
		return nil, err
	}
	return parseInfo(s), nil
}

// parseInfo reads "key:value" lines as INFO and CLUSTER INFO print them. Over RESP3
// the reply is a verbatim string, which rueidis returns with its "txt:" format prefix.
func parseInfo(s string) map[string]string {
	s = strings.TrimPrefix(s, "txt:")
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			m[k] = v
		}
	}
	return m
}

// clusterMasters returns host:port of every master that serves slots, from CLUSTER SLOTS
// (available since 3.0, unlike CLUSTER SHARDS).
func clusterMasters(ctx context.Context, c rueidis.Client) ([]string, error) {
	ranges, err := c.Do(ctx, c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range ranges {
		fields, err := r.ToArray()
		if err != nil || len(fields) < 3 {
			return nil, errors.New("unexpected CLUSTER SLOTS reply")
		}
		master, err := fields[2].ToArray()
		if err != nil || len(master) < 2 {
			return nil, errors.New("unexpected CLUSTER SLOTS reply")
		}
		host, _ := master[0].ToString()
		port, _ := master[1].AsInt64()
		addr := host + ":" + strconv.FormatInt(port, 10)
		if !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out, nil
}

// addReplicas makes replicas[i] a replica of masters[i]: it meets the
// cluster, waits to know its master's node id, replicates it, and the call
// returns once every replica's link to its master is up.
func addReplicas(ctx context.Context, masters, replicas []clusterMember) error {
	m0, err := nodeClient(masters[0].addr)
	if err != nil {
		return err
	}
	defer m0.Close()
	for i, r := range replicas {
		id, err := nodeID(ctx, masters[i].addr)
		if err != nil {
			return err
		}
		if err := m0.Do(ctx, m0.B().ClusterMeet().Ip("127.0.0.1").Port(int64(r.port)).ClusterBusPort(int64(r.busPort)).Build()).Error(); err != nil {
			return fmt.Errorf("cluster meet %s: %w", r.addr, err)
		}
		if err := replicate(ctx, r, masters[i].addr, id); err != nil {
			return err
		}
	}
	for _, r := range replicas {
		if err := awaitLinkUp(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// nodeID returns the cluster node id of the node at addr.
func nodeID(ctx context.Context, addr string) (string, error) {
	mc, err := nodeClient(addr)
	if err != nil {
		return "", err
	}
	defer mc.Close()
	id, err := mc.Do(ctx, mc.B().ClusterMyid().Build()).ToString()
	if err != nil {
		return "", fmt.Errorf("cluster myid %s: %w", addr, err)
	}
	return id, nil
}

// replicate makes r a replica of the master at masterAddr, whose node id is
// id, once r has heard of that master through gossip.
func replicate(ctx context.Context, r clusterMember, masterAddr, id string) error {
	rc, err := nodeClient(r.addr)
	if err != nil {
		return err
	}
	defer rc.Close()
	for {
		err = rc.Do(ctx, rc.B().ClusterReplicate().NodeId(id).Build()).Error()
		if err == nil || !strings.Contains(err.Error(), "Unknown node") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s never learnt of %s: %w", r.addr, masterAddr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("cluster replicate %s: %w", r.addr, err)
	}
	return nil
}

// awaitLinkUp waits until replica r's link to its master is up.
func awaitLinkUp(ctx context.Context, r clusterMember) error {
	for {
		rc, err := nodeClient(r.addr)
		if err != nil {
			return err
		}
		info, err := rc.Do(ctx, rc.B().Info().Section("replication").Build()).ToString()
		rc.Close()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s never synced: %w", r.addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
