package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/projection"
	"github.com/streamfold/streamfold/readmodel"
)

const (
	s3Category   = "s3acct"
	s3Partitions = 16
	s3Entities   = 10_000
)

// s3Store is the event store of S3 and S5: one category of 16 partitions,
// the Deposited event registered.
func s3Store(c rueidis.Client, ns string) (*eventstore.Store, error) {
	return depositStore(c, ns, eventstore.WithPartitions(s3Partitions))
}

// s3Filled is S3's and S3b's start: a flushed client that sends without
// delay beyond 20 µs, and a store in namespace ns with n events appended by
// s3Fill. The caller closes the client.
func s3Filled(ctx context.Context, srv *server, ns string, n int) (rueidis.Client, *eventstore.Store, error) {
	c, err := flushedClient(ctx, srv, func(o *rueidis.ClientOption) { o.MaxFlushDelay = 20 * time.Microsecond })
	if err != nil {
		return nil, nil, err
	}
	s, err := s3Store(c, ns)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	t0 := time.Now()
	if err := s3Fill(ctx, s, n); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("append: %w", err)
	}
	fmt.Printf("   appended %d events over %d entities, %d partitions in %s\n", n, s3Entities, s3Partitions, time.Since(t0).Round(time.Millisecond))
	return c, s, nil
}

// s3Fill appends n events over s3Entities entities from s1Workers goroutines
// (worker w owns entities w, w+64, ...), with exact expected versions.
func s3Fill(ctx context.Context, s *eventstore.Store, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range s1Workers {
		wg.Go(func() {
			mine := (s3Entities - w + s1Workers - 1) / s1Workers
			versions := make([]uint64, mine)
			for k := 0; ; k++ {
				if next.Add(1) > int64(n) || firstErr.Load() != nil {
					return
				}
				j := k % mine
				id := "acc-" + strconv.Itoa(w+j*s1Workers)
				_, err := s.Append(ctx, eventstore.Stream(s3Category, id), eventstore.Exact(versions[j]),
					eventstore.NewEvent(Deposited{Account: id, Amount: int64(versions[j] + 1), Memo: s1Memo}))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				versions[j]++
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// runS3 appends N events once, then consumes them three ways in the same
// run, each through its own consumer group on the same partition logs and
// into its own keys: our projection runner into a version-guarded read
// model (batch path), the watermill-redisstream subscriber (a SET and an
// Ack per message), the guide's loop (XREADGROUP COUNT 10, a SET and an
// XACK per message), a hand-written batched consumer with no guarantees
// (s3Batched) and the same with the smallest fenced-read and guarded-write
// scripts (s3Fenced). Each must consume all N.
func runS3(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	n := sc.n(1_000_000, 100_000)
	c, s, err := s3Filled(ctx, srv, "s3", n)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	logs := make([]string, s3Partitions)
	for p := range logs {
		logs[p] = s.Keys().Log(s3Category, p)
	}
	sides := []s3Side{
		{"ours", func() (int64, error) { return s3Ours(ctx, s, logger) }},
		{"watermill-subscribe", func() (int64, error) { return s3Watermill(ctx, srv, s, logs, n) }},
		{"guide-loop", func() (int64, error) { return s3Guide(ctx, c, s, logs, n) }},
		{"batched-consumer", func() (int64, error) { return s3Batched(ctx, c, s, logs, n) }},
		{"fenced-scripts", func() (int64, error) { return s3Fenced(ctx, c, s, logs, n) }},
	}
	rates, cpus, err := s3Measure(ctx, c, sides, n)
	if err != nil {
		return nil, err
	}
	note := func(b string) string {
		return fmt.Sprintf("%d events, %d entities, %d partitions, each consumer all N through its own group; Redis used %.0f%% of a core for ours, %.0f%% for %s", n, s3Entities, s3Partitions, 100*cpus["ours"], 100*cpus[b], b)
	}
	return []Result{
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Ours: f64(rates["ours"]), Baseline: "batched-consumer", BaselineValue: f64(rates["batched-consumer"]), Goal: "≥ 0.5", Notes: note("batched-consumer")},
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Ours: f64(rates["ours"]), Baseline: "watermill-subscribe", BaselineValue: f64(rates["watermill-subscribe"]), Goal: "≥ 5", Notes: note("watermill-subscribe")},
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Ours: f64(rates["ours"]), Baseline: "fenced-scripts", BaselineValue: f64(rates["fenced-scripts"]), Notes: note("fenced-scripts")},
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Ours: f64(rates["ours"]), Baseline: "guide-loop", BaselineValue: f64(rates["guide-loop"]), Goal: "≥ 5", Notes: note("guide-loop")},
	}, nil
}

// s3Side is one consumer S3 measures: run consumes the logs and returns how
// many events it consumed.
type s3Side struct {
	name string
	run  func() (int64, error)
}

// s3Measure runs each side in turn, checks that it consumed all n events,
// and returns its rate and the share of a core Redis used meanwhile.
func s3Measure(ctx context.Context, c rueidis.Client, sides []s3Side, n int) (rates, cpus map[string]float64, err error) {
	rates, cpus = map[string]float64{}, map[string]float64{}
	for _, sd := range sides {
		commandStats(ctx, c, "")
		cpu0, start := serverCPU(ctx, c), time.Now()
		got, err := sd.run()
		el := time.Since(start).Seconds()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", sd.name, err)
		}
		if got != int64(n) {
			return nil, nil, fmt.Errorf("%s consumed %d of %d events", sd.name, got, n)
		}
		commandStats(ctx, c, sd.name)
		rates[sd.name] = float64(n) / el
		cpus[sd.name] = (serverCPU(ctx, c) - cpu0) / el
		fmt.Printf("   %-20s %8.0f events/s  redis %.0f%% of a core\n", sd.name, rates[sd.name], 100*cpus[sd.name])
	}
	return rates, cpus, nil
}

// s3Ours runs the projection runner (batch path) until every partition's
// last entry is applied, and returns the events applied.
func s3Ours(ctx context.Context, s *eventstore.Store, logger *slog.Logger) (int64, error) {
	m, err := readmodel.New(s.Client(), "s3", "balance")
	if err != nil {
		return 0, err
	}
	h := projection.Writes(func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error {
		a, err := depositAmount(ev)
		if err != nil {
			return err
		}
		return b.Set(m, ev.Stream.ID, ev.Version, map[string]string{"amount": strconv.FormatInt(a, 10)})
	})
	if err := s3Project(ctx, s, "ours", h, logger); err != nil {
		return 0, err
	}
	st := m.Stats()
	return st.Applied + st.Skipped, nil
}

func lastEntry(ctx context.Context, c rueidis.Client, log string) (eventstore.Position, error) {
	es, err := c.Do(ctx, c.B().Xrevrange().Key(log).End("+").Start("-").Count(1).Build()).AsXRangeSlices()
	if err != nil || len(es) == 0 {
		return eventstore.Position{}, fmt.Errorf("last entry of %s: %v", log, err)
	}
	return eventstore.ParsePosition(es[0].ID)
}

// logUnmarshaller turns a partition-log entry into a watermill message:
// payload = the encoded event, metadata s (entity) and v (version field).
type logUnmarshaller struct{}

func (logUnmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	e, _ := values["e"].(string)
	sid, _ := values["s"].(string)
	v, _ := values["v"].(string)
	msg := message.NewMessage(sid+"/"+v, []byte(e))
	msg.Metadata.Set("s", sid)
	msg.Metadata.Set("v", v)
	return msg, nil
}

// s3Watermill consumes the logs with the watermill-redisstream subscriber
// (consumer group "wm"): decode, SET, Ack per message.
func s3Watermill(ctx context.Context, srv *server, s *eventstore.Store, logs []string, n int) (int64, error) {
	gr := redis.NewClient(&redis.Options{Addr: srv.addr, PoolSize: 64})
	defer gr.Close()
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client: gr, Unmarshaller: logUnmarshaller{}, Consumer: "c1", ConsumerGroup: "wm", OldestId: "0",
		BlockTime: 100 * time.Millisecond, DisableIndefiniteInitialBlock: true,
	}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done atomic.Int64
	var firstErr atomic.Value
	all := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, log := range logs {
		ch, err := sub.Subscribe(wctx, log)
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			for msg := range ch {
				entry := rueidis.XRangeSlice{ID: "0-1", FieldValues: []rueidis.XRangeFieldValue{
					{Field: "s", Value: msg.Metadata.Get("s")}, {Field: "v", Value: msg.Metadata.Get("v")}, {Field: "e", Value: string(msg.Payload)}}}
				ev, err := s.Decode(wctx, log, entry)
				if err == nil {
					d, _ := ev.Data.(Deposited)
					err = gr.Set(wctx, "s3:wm:"+ev.Stream.ID, d.Amount, 0).Err()
				}
				if err != nil {
					if wctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
					msg.Nack()
					continue
				}
				msg.Ack()
				if done.Add(1) == int64(n) {
					once.Do(func() { close(all) })
				}
			}
		})
	}
	select {
	case <-all:
	case <-ctx.Done():
		return done.Load(), ctx.Err()
	case <-time.After(10 * time.Minute):
		return done.Load(), errors.New("timeout")
	}
	cancel()
	if err, _ := firstErr.Load().(error); err != nil {
		return done.Load(), err
	}
	return done.Load(), nil
}

// s3Guide is the loop the guide shows: one consumer, XREADGROUP COUNT 10
// over the logs, then one SET and one XACK per message.
func s3Guide(ctx context.Context, c rueidis.Client, s *eventstore.Store, logs []string, n int) (int64, error) {
	ids, err := createGroups(ctx, c, logs, "guide")
	if err != nil {
		return 0, err
	}
	var done int64
	for done < int64(n) {
		streams, err := c.Do(ctx, c.B().Xreadgroup().Group("guide", "c1").Count(10).Block(1000).Streams().Key(logs...).Id(ids...).Build()).AsXReadSlices()
		if err != nil {
			return done, err
		}
		for key, entries := range streams {
			for _, e := range entries {
				ev, err := s.Decode(ctx, key, e)
				if err != nil {
					return done, err
				}
				d, _ := ev.Data.(Deposited)
				if err := c.Do(ctx, c.B().Set().Key("s3:guide:"+ev.Stream.ID).Value(strconv.FormatInt(d.Amount, 10)).Build()).Error(); err != nil {
					return done, err
				}
				if err := c.Do(ctx, c.B().Xack().Key(key).Group("guide").Id(e.ID).Build()).Error(); err != nil {
					return done, err
				}
				done++
			}
		}
	}
	return done, nil
}

// createGroups creates group on every log, reading from the start, and
// returns the XREADGROUP ids (">" for each log).
func createGroups(ctx context.Context, c rueidis.Client, logs []string, group string) ([]string, error) {
	ids := make([]string, len(logs))
	for i, log := range logs {
		ids[i] = ">"
		if err := c.Do(ctx, c.B().XgroupCreate().Key(log).Group(group).Id("0").Build()).Error(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// s3Batched is what a hand-written consumer with no guarantees does at
// best: one consumer, XREADGROUP COUNT 500 over the logs, the SETs of a read
// pipelined, then one XACK per log for all its entries. No fencing, no
// version guard, no dead letters, no trimmed-pending detection.
func s3Batched(ctx context.Context, c rueidis.Client, s *eventstore.Store, logs []string, n int) (int64, error) {
	ids, err := createGroups(ctx, c, logs, "batched")
	if err != nil {
		return 0, err
	}
	var done int64
	for done < int64(n) {
		streams, err := c.Do(ctx, c.B().Xreadgroup().Group("batched", "c1").Count(500).Block(1000).Streams().Key(logs...).Id(ids...).Build()).AsXReadSlices()
		if err != nil {
			return done, err
		}
		var cmds rueidis.Commands
		for key, entries := range streams {
			acks := make([]string, 0, len(entries))
			for _, e := range entries {
				ev, err := s.Decode(ctx, key, e)
				if err != nil {
					return done, err
				}
				d, _ := ev.Data.(Deposited)
				cmds = append(cmds, c.B().Set().Key("s3:batched:"+ev.Stream.ID).Value(strconv.FormatInt(d.Amount, 10)).Build())
				acks = append(acks, e.ID)
			}
			if len(acks) > 0 {
				cmds = append(cmds, c.B().Xack().Key(key).Group("batched").Id(acks...).Build())
			}
			done += int64(len(entries))
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// commandStats prints where the server's time went (INFO commandstats, µs
// per call and in all) since the previous call, when STREAMFOLD_BENCH_STATS
// is set: the profile asked for when a goal is missed.
func commandStats(ctx context.Context, c rueidis.Client, phase string) {
	if os.Getenv("STREAMFOLD_BENCH_STATS") == "" {
		return
	}
	if phase != "" {
		info, _ := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			var calls, usec int64
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					usec, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if calls >= 100 {
				fmt.Printf("      %-12s %-24s %9d calls %9d µs\n", phase, strings.TrimPrefix(name, "cmdstat_"), calls, usec)
			}
		}
	}
	_ = c.Do(ctx, c.B().ConfigResetstat().Build()).Error()
}
