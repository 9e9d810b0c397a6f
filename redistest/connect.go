package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/redis/rueidis"
)

// Connect gives a program (a demo, a tool) a Redis: the one at REDIS_URL
// when it is set, else an ephemeral server from Start. It returns the
// client, a description for the user (the URL's addresses only: a URL may
// carry a password), and a function that closes the client and stops the
// ephemeral server, if any.
func Connect(ctx context.Context, opts ...Option) (rueidis.Client, string, func() error, error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := rueidis.ParseURL(url)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		client, err := rueidis.NewClient(opt)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return client, "REDIS_URL at " + strings.Join(opt.InitAddress, ","), func() error { client.Close(); return nil }, nil
	}
	srv, err := Start(ctx, opts...)
	if err != nil {
		return nil, "", nil, err
	}
	client, err := srv.Client()
	if err != nil {
		return nil, "", nil, errors.Join(err, srv.Close())
	}
	return client, "ephemeral " + srv.String(), func() error { client.Close(); return srv.Close() }, nil
}
