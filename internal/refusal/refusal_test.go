package refusal

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/streamfold/streamfold/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestIsAndRetry forges Redis' error replies with a script
// (redis.error_reply), so the classification sees what rueidis returns.
func TestIsAndRetry(t *testing.T) {
	tg := redistest.Standalone(t)
	ctx := context.Background()
	reply := func(msg string) error {
		c := tg.Client
		return c.Do(ctx, c.B().Eval().Script("return redis.error_reply(ARGV[1])").Numkeys(0).Arg(msg).Build()).Error()
	}
	for _, tc := range []struct {
		msg     string
		refusal bool
	}{
		{"TRYAGAIN Multiple keys request during rehashing of slot", true},
		{"ASK 3999 127.0.0.1:6381", true},
		{"MOVED 3999 127.0.0.1:6381", true},
		{"CLUSTERDOWN Hash slot not served", true},
		{"LOADING Redis is loading the dataset in memory", true},
		{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.", true},
		{"BUSYGROUP Consumer Group name already exists", false},
		{"OOM command not allowed when used memory > 'maxmemory'.", false},
		{"READONLY You can't write against a read only replica.", false},
		{"ERR wrong number of arguments", false},
	} {
		err := reply(tc.msg)
		if err == nil {
			t.Fatalf("%s: no error", tc.msg)
		}
		if got := Is(err); got != tc.refusal {
			t.Errorf("Is(%q) = %v, want %v", err, got, tc.refusal)
		}
	}
	if Is(io.ErrUnexpectedEOF) || Is(context.DeadlineExceeded) || Is(nil) {
		t.Error("a network or context error is not a refusal: the command may have run")
	}
	tryAgain := reply("TRYAGAIN Multiple keys request during rehashing of slot")

	t.Run("retried until it runs", func(t *testing.T) {
		calls := 0
		st, err := Retry(ctx, func() error {
			if calls++; calls < 5 {
				return tryAgain
			}
			return nil
		})
		if err != nil || calls != 5 || st.Retries != 4 || st.Waited <= 0 {
			t.Fatalf("err %v after %d calls, %+v", err, calls, st)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		calls := 0
		_, err := Retry(ctx, func() error { calls++; return io.ErrUnexpectedEOF })
		if !errors.Is(err, io.ErrUnexpectedEOF) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up before the deadline", func(t *testing.T) {
		// Retry stops when its next wait would pass the deadline; whether
		// it is back before the deadline depends on the scheduler (a loaded
		// machine woke it 0.4 ms late), so only the outcome is checked: the
		// refusal itself, after several retries.
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		st, err := Retry(dctx, func() error { return tryAgain })
		if !Is(err) || st.Retries < 3 {
			t.Fatalf("err %v (ctx %v) after %v, %+v: want the refusal after several retries", err, dctx.Err(), time.Since(start), st)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		_, err := Retry(cctx, func() error {
			if calls++; calls == 3 {
				cancel()
			}
			return tryAgain
		})
		if !Is(err) || !errors.Is(err, context.Canceled) || calls != 3 {
			t.Fatalf("err %v after %d calls: want the refusal and context.Canceled", err, calls)
		}
	})
}
