package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one row of bench-results.json: our figure, its baseline's and
// their ratio (ours / baseline_value).
type Result struct {
	Scenario      string   `json:"scenario"`
	Metric        string   `json:"metric"`
	Unit          string   `json:"unit"`
	Ours          *float64 `json:"ours"`
	Baseline      string   `json:"baseline"`
	BaselineValue *float64 `json:"baseline_value"`
	Ratio         *float64 `json:"ratio"`
	Goal          string   `json:"goal"`
	MeetsGoal     *bool    `json:"meets_goal"`
	Reason        string   `json:"reason,omitempty"`
	Notes         string   `json:"notes,omitempty"`
	// GoalOnOurs puts the goal on our figure rather than on the ratio.
	GoalOnOurs bool `json:"-"`
}

func f64(v float64) *float64 { return &v }

// finish computes the ratio and checks the goal ("≥ 0.6", "≤ 1.5"; a goal on
// the ratio when a baseline is named, else on ours).
func (r *Result) finish() {
	if r.Ours != nil && r.BaselineValue != nil && *r.BaselineValue != 0 {
		r.Ratio = f64(*r.Ours / *r.BaselineValue)
	}
	subject := r.Ours
	if r.Baseline != "" && !r.GoalOnOurs {
		subject = r.Ratio
	}
	if subject == nil || r.Goal == "" {
		return
	}
	op, num, ok := strings.Cut(r.Goal, " ")
	if !ok {
		return
	}
	want, err := strconv.ParseFloat(strings.TrimSuffix(num, "×"), 64)
	if err != nil {
		return
	}
	var meets bool
	switch op {
	case "≥":
		meets = *subject >= want
	case "≤":
		meets = *subject <= want
	default:
		return
	}
	r.MeetsGoal = &meets
}

type environment struct {
	Go     string    `json:"go"`
	Redis  string    `json:"redis"`
	CPU    string    `json:"cpu"`
	CPUs   int       `json:"cpus"`
	OS     string    `json:"os"`
	When   time.Time `json:"when"`
	Source string    `json:"redis_source"`
}

func writeResults(path string, env environment, results []Result) error {
	// An array of result objects, as asked; the machine is recorded in a
	// first row of its own so every figure can be traced to where it ran.
	rows := make([]any, 0, len(results)+1)
	rows = append(rows, map[string]any{"scenario": "environment", "metric": "machine", "environment": env})
	for _, r := range results {
		rows = append(rows, r)
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func printTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tours\tbaseline\tbaseline value\tratio\tgoal\tmet")
	num := func(p *float64) string { return figure(p, false) }
	for _, r := range results {
		met := "—"
		if r.MeetsGoal != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.MeetsGoal]
		}
		ours := num(r.Ours)
		if r.Ours == nil && r.Reason != "" {
			ours = "n/a: " + r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Metric, r.Unit, ours, r.Baseline, num(r.BaselineValue), num(r.Ratio), r.Goal, met)
	}
	tw.Flush()
}

// printMarkdownFile prints the results file at path (see writeResults) as
// the README's performance table, headed by the machine it was measured on.
func printMarkdownFile(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(b, &rows); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var env environment
	var results []Result
	for _, row := range rows {
		var head struct {
			Environment *environment `json:"environment"`
		}
		if err := json.Unmarshal(row, &head); err == nil && head.Environment != nil {
			env = *head.Environment
			continue
		}
		var r Result
		if err := json.Unmarshal(row, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(w, "Measured with `make bench` on %d CPUs (%s), Go %s, Redis %s (%s), %s; Redis and the client share the cores. Every figure is measured beside its baseline in the same run.\n\n",
		env.CPUs, env.CPU, strings.TrimPrefix(env.Go, "go"), env.Redis, env.Source, env.When.Format("2006-01-02"))
	fmt.Fprintln(w, "| scenario | metric | ours | baseline | baseline value | ratio | goal | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	num := func(p *float64) string { return figure(p, true) }
	for _, r := range results {
		met, goal, base := "—", r.Goal, r.Baseline
		if r.MeetsGoal != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*r.MeetsGoal]
		}
		if goal == "" {
			goal = "—"
		}
		if base == "" {
			base = "—"
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Metric, r.Unit, num(r.Ours), base, num(r.BaselineValue), num(r.Ratio), goal, met)
	}
	return nil
}

// figure formats a table cell: "—" for none, whole numbers from 1000 (with
// thousands separators for the README), else one to three decimals.
func figure(p *float64, readme bool) string {
	if p == nil {
		return "—"
	}
	v := *p
	switch {
	case v >= 1000 && readme:
		return thousands(int64(v + 0.5))
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 0.1 && readme:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
