package main

import (
	"context"
	"log/slog"
)

// runS3 will measure a projection into version-guarded read models against
// the watermill-redisstream subscriber and the guide's loop once the
// projection runner lands.
func runS3(ctx context.Context, srv *server, sc scale, logger *slog.Logger) ([]Result, error) {
	reason := "projection runner (issue 4) has not landed"
	return []Result{
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Baseline: "watermill-subscribe", Goal: "≥ 10", Reason: reason},
		{Scenario: "S3-project", Metric: "projected", Unit: "events/s", Baseline: "guide-loop", Goal: "≥ 5", Reason: reason},
	}, nil
}
