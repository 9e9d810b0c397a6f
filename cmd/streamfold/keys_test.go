package main

import (
	"testing"

	"github.com/streamfold/streamfold/eventstore"
)

// TestClassify pins what the CLI reports for each key shape: the shapes are
// built here with the owners' builders where they export one, so a change
// of layout in eventstore/keys.go that the classifier misses fails here.
func TestClassify(t *testing.T) {
	ks := eventstore.NewKeyspace("sf")
	kc := newKeyClassifier(ks, map[string]int{"account": 4})
	acct := eventstore.Stream("account", "a-1:x")
	for _, tc := range []struct {
		key  string
		want keyInfo
	}{
		{ks.Log("account", 2), keyInfo{Kind: kindLog, Category: "account", Partition: 2}},
		{ks.Stream(acct, 3), keyInfo{Kind: kindStream, Category: "account", Partition: 3, Stream: acct}},
		{ks.Snapshot(acct, 3), keyInfo{Kind: kindSnapshot, Category: "account", Partition: 3}},
		{ks.PartitionKey("account", 1, "proj:balances:lease"), keyInfo{Kind: kindProj, Category: "account", Partition: 1}},
		// Kinds the CLI does not name count as "other" in their category.
		{ks.SnapshotFloor(acct, 3), keyInfo{Kind: kindOther, Category: "account", Partition: 3}},
		{ks.Tombstone(acct, 3), keyInfo{Kind: kindOther, Category: "account", Partition: 3}},
		{ks.LogTrimmed("account", 0), keyInfo{Kind: kindOther, Category: "account", Partition: 0}},
		{ks.Categories(), keyInfo{Kind: kindMeta}},
		{ks.Category("account"), keyInfo{Kind: kindMeta}},
		{ks.Key("proj:balances:members"), keyInfo{Kind: kindProj}},
		{ks.Key("rm:balances:v2:a-1"), keyInfo{Kind: kindReadModel, Model: "balances", Schema: 2}},
		{ks.Key("rm:balances:active"), keyInfo{Kind: kindReadModel, Model: "balances"}},
		// A rollup's key holds a hash tag that may look like a partition's.
		{ks.Key("rm:totals:v1:{account:1}"), keyInfo{Kind: kindReadModel, Model: "totals", Schema: 1}},
		{ks.Key("rm:broken"), keyInfo{Kind: kindOther}},
		// A partition or category the namespace does not have.
		{ks.Log("account", 4), keyInfo{Kind: kindOther}},
		{ks.Log("order", 0), keyInfo{Kind: kindOther}},
		{eventstore.NewKeyspace("other").Log("account", 0), keyInfo{Kind: kindOther}},
		{"sf", keyInfo{Kind: kindOther}},
	} {
		tc.want.Key = tc.key
		if got := kc.classify(tc.key); got != tc.want {
			t.Errorf("classify(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

func TestHashTag(t *testing.T) {
	for key, want := range map[string]string{
		"sf:{account:1}:log":    "{account:1}",
		"sf:rm:m:v1:{x}":        "{x}",
		"sf:categories":         "",
		"sf:{open":              "",
		"sf:{a}{b}":             "{a}",
		"sf:}{account:1}:s:id}": "{account:1}",
	} {
		if got := hashTag(key); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestClosestIDs(t *testing.T) {
	ids := []string{"9", "10", "1", "12", "100", "2"}
	got := closestIDs(ids, "10x", 3)
	want := []string{"10", "100", "1"}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("closestIDs = %v, want %v", got, want)
		}
	}
	if len(got) != 3 {
		t.Fatalf("closestIDs = %v, want 3 ids", got)
	}
}
