package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// s5Raw is S5's baseline: the same paced load through the least a pipeline
// from an append to a visible write can do with Redis Streams. Single XADDs
// (no version check) to 16 logs at s5Rate from 64 goroutines; one consumer
// blocking in XREADGROUP over all logs (COUNT 500), the SETs of a read and
// one XACK per log pipelined; the latency of an event is from the start of
// its XADD to its SET's reply. It returns the sorted latencies: what this
// machine gives with no script, no fencing and no version guard.
func s5Raw(ctx context.Context, c rueidis.Client, total int) ([]time.Duration, error) {
	logs := make([]string, s3Partitions)
	ids := make([]string, s3Partitions)
	for p := range logs {
		logs[p], ids[p] = "s5raw:"+strconv.Itoa(p)+":log", ">"
		if err := c.Do(ctx, c.B().XgroupCreate().Key(logs[p]).Group("raw").Id("$").Mkstream().Build()).Error(); err != nil {
			return nil, err
		}
	}
	payload := rueidis.BinaryString(make([]byte, 100))
	lat := make([]time.Duration, 0, total)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	consumed := make(chan error, 1)
	go func() { consumed <- s5RawConsume(cctx, c, logs, ids, total, &mu, &lat) }()
	_, err := pace(total, func(i int) error {
		start := strconv.FormatInt(time.Now().UnixNano(), 10)
		return c.Do(ctx, c.B().Xadd().Key(logs[i%s3Partitions]).Id("*").FieldValue().
			FieldValue("t", start).FieldValue("e", payload).Build()).Error()
	})
	if err != nil {
		return nil, err
	}
	select {
	case err = <-consumed:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("raw pipeline: consumed %d of %d after 30 s", len(lat), total)
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(lat)
	return lat, nil
}

// s5RawConsume is s5Raw's consumer: it reads until total entries are
// visible, appending each one's latency to lat under mu.
func s5RawConsume(ctx context.Context, c rueidis.Client, logs, ids []string, total int, mu *sync.Mutex, lat *[]time.Duration) error {
	for seen := 0; seen < total; {
		streams, err := c.Do(ctx, c.B().Xreadgroup().Group("raw", "c1").Count(500).Block(100).Streams().Key(logs...).Id(ids...).Build().UnblockOnCancel()).AsXReadSlices()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return err
		}
		var cmds rueidis.Commands
		var starts []int64
		for key, entries := range streams {
			acks := make([]string, 0, len(entries))
			for _, e := range entries {
				if len(e.FieldValues) == 0 || e.FieldValues[0].Field != "t" {
					return fmt.Errorf("raw pipeline: entry %s has no start time", e.ID)
				}
				t, err := strconv.ParseInt(e.FieldValues[0].Value, 10, 64)
				if err != nil {
					return fmt.Errorf("raw pipeline: entry %s: %w", e.ID, err)
				}
				starts = append(starts, t)
				cmds = append(cmds, c.B().Set().Key("s5raw:e:"+e.ID).Value(e.FieldValues[0].Value).Build())
				acks = append(acks, e.ID)
			}
			if len(acks) > 0 {
				cmds = append(cmds, c.B().Xack().Key(key).Group("raw").Id(acks...).Build())
			}
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		now := time.Now().UnixNano()
		mu.Lock()
		for _, s := range starts {
			*lat = append(*lat, time.Duration(now-s))
		}
		mu.Unlock()
		seen += len(starts)
	}
	return nil
}
