package projection

import (
	"strings"
	"testing"

	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: every script's header (KEYS, ARGV, Codes) agrees with
// its Go counterpart in scripts.go, every code is used by its body, and no
// status is returned as a bare number.
func TestScriptContracts(t *testing.T) {
	park := deadLetterRequest{}.park(letter{})
	claim := claimRequest{op: claimClaim}
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		{"lease.lua", leaseBodyLua, luascript.Contract{Keys: len(leaseRequest{}.keys()), Args: len(leaseRequest{}.args()), Codes: leaseCodes(), Statuses: true, Coded: []string{"op"}}},
		// read: the fixed ARGV, then the ids to ack.
		{"read.lua", readBodyLua, luascript.Contract{Keys: len(readRequest{}.keys()), Args: len(readRequest{}.args()), Codes: fencedCodes(), Statuses: true}},
		// claim, deadletter: the header documents the longest op's ARGV.
		{"claim.lua", claimBodyLua, luascript.Contract{Keys: len(claim.keys()), Args: len(claim.args()), Codes: claimCodes(), Statuses: true, Coded: []string{"op"}}},
		{"deadletter.lua", deadLetterBodyLua, luascript.Contract{Keys: len(park.keys()), Args: len(park.args()), Codes: deadLetterCodes(), Statuses: true, Coded: []string{"op"}}},
		{"members.lua", membersBodyLua, luascript.Contract{Keys: len(membersRequest{}.keys()), Args: len(membersRequest{}.args()), Codes: membersCodes()}},
		{"status.lua", statusBodyLua, luascript.Contract{Keys: len(statusRequest{}.keys()), Args: len(statusRequest{}.args()), Codes: statusCodes(), Statuses: true}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
	if n := len(readRequest{acks: []string{"1-0"}}.args()); n != readFixedArgs+1 {
		t.Errorf("read.lua: %d ARGV for one ack, want %d", n, readFixedArgs+1)
	}
	// The shorter ops send no more than the header documents.
	for name, args := range map[string][]string{
		"claim.lua prune":        claimRequest{op: claimPrune}.args(),
		"deadletter.lua resolve": deadLetterRequest{}.resolve("", "").args(),
		"deadletter.lua ctldone": deadLetterRequest{}.ctlDone("").args(),
	} {
		max := len(claim.args())
		if strings.HasPrefix(name, "deadletter") {
			max = len(park.args())
		}
		if len(args) > max {
			t.Errorf("%s sends %d ARGV, the header documents %d", name, len(args), max)
		}
	}
}

// TestScriptLetterKinds: the kinds of dead letters the scripts write or
// read themselves are the Go constants'.
func TestScriptLetterKinds(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		kinds     []string
	}{
		{"read.lua", readBodyLua, []string{KindTrimmed}},
		{"claim.lua", claimBodyLua, []string{KindTrimmed}},
		{"deadletter.lua", deadLetterBodyLua, []string{KindForeign}},
	} {
		body := luascript.Body(tc.src)
		for _, k := range tc.kinds {
			if !strings.Contains(body, "'"+k+"'") {
				t.Errorf("%s does not name the dead-letter kind %q", tc.name, k)
			}
		}
	}
}
