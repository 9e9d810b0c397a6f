package projection

import (
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

// The Go side of the runner's scripts (lua/lease.lua, read.lua, claim.lua,
// deadletter.lua, members.lua, status.lua): their codes, the KEYS and ARGV
// they take, and their replies. The codes are defined here only and
// prepended to each script as Lua locals (luascript.Prelude);
// TestScriptContracts checks every script's header (KEYS, ARGV, Codes)
// against this file.

var (
	//go:embed lua/lease.lua
	leaseBodyLua string
	//go:embed lua/read.lua
	readBodyLua string
	//go:embed lua/claim.lua
	claimBodyLua string
	//go:embed lua/deadletter.lua
	deadLetterBodyLua string
	//go:embed lua/members.lua
	membersBodyLua string
	//go:embed lua/status.lua
	statusBodyLua string

	// The sources sent: the codes of the Go counterpart, then the script.
	leaseLua      = luascript.Prelude(leaseCodes()...) + leaseBodyLua
	readLua       = luascript.Prelude(fencedCodes()...) + readBodyLua
	claimLua      = luascript.Prelude(claimCodes()...) + claimBodyLua
	deadLetterLua = luascript.Prelude(deadLetterCodes()...) + deadLetterBodyLua
	membersLua    = luascript.Prelude(membersCodes()...) + membersBodyLua
	statusLua     = luascript.Prelude(statusCodes()...) + statusBodyLua
)

// scripts are stateless; each Runner (and DeadLetters) holds its own set.
// Calls Redis refuses without running them are retried (see script).
type scripts struct {
	lease, read, claim, deadLetter, members script
}

// The maintenance round's scripts (lease, claim, members) give up after a
// quarter of the lease TTL, so that one refused partition does not hold up
// the renewal of the others. A partition's own reads and dead-letter writes
// wait up to the whole TTL: nothing else of that partition can progress
// meanwhile, and a slot migration on a busy machine can refuse its keys for
// longer than a quarter TTL (878 ms seen with a 2 s TTL).
func newScripts(leaseTTL time.Duration) scripts {
	short := leaseTTL / 4
	return scripts{
		lease:      newScript(leaseLua, short),
		read:       newScript(readLua, leaseTTL),
		claim:      newScript(claimLua, short),
		deadLetter: newScript(deadLetterLua, leaseTTL),
		members:    newScript(membersLua, short),
	}
}

// fencedStatus is the first element of the reply of the fenced scripts
// (read.lua, claim.lua, deadletter.lua): they check the lease first.
type fencedStatus int64

const (
	fencedOK fencedStatus = 1  // {OK, ...}: the lease is the caller's
	fenced   fencedStatus = -1 // {FENCED}: it is not; nothing was done
)

func fencedCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "OK", Value: int64(fencedOK)},
		{Name: "FENCED", Value: int64(fenced)},
	}
}

// fencedReply returns the elements of a fenced script's reply after its
// status, ErrFenced when fenced, or an error when it has not want elements
// in all (0: any number).
func fencedReply(res rueidis.RedisResult, name string, want int) ([]rueidis.RedisMessage, error) {
	arr, err := res.ToArray()
	if err != nil {
		return nil, err
	}
	if len(arr) == 0 {
		return nil, fmt.Errorf("%s script: empty reply", name)
	}
	if st, _ := arr[0].AsInt64(); fencedStatus(st) != fencedOK {
		return nil, ErrFenced
	}
	if want > 0 && len(arr) != want {
		return nil, fmt.Errorf("%s script: %d elements", name, len(arr))
	}
	return arr[1:], nil
}

// leaseOp is lease.lua's ARGV[1].
type leaseOp int64

const (
	leaseAcquire leaseOp = 1
	leaseRenew   leaseOp = 2
	leaseRelease leaseOp = 3
)

// leaseStatus is lease.lua's reply (renew, release) or its first element
// (acquire).
type leaseStatus int64

const (
	leaseOK      leaseStatus = 1 // acquired, renewed or released
	leaseNotHeld leaseStatus = 0 // held by another (acquire), or no longer ours
)

func leaseCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "OK", Value: int64(leaseOK)},
		{Name: "NOT_HELD", Value: int64(leaseNotHeld)},
		{Name: "OP_ACQUIRE", Value: int64(leaseAcquire)},
		{Name: "OP_RENEW", Value: int64(leaseRenew)},
		{Name: "OP_RELEASE", Value: int64(leaseRelease)},
	}
}

// leaseRequest is one call of lease.lua.
type leaseRequest struct {
	k     partKeys
	op    leaseOp
	owner string        // the instance id
	ttl   time.Duration // acquire, renew
	held  string        // the lease value held (renew, release)
}

func (q leaseRequest) keys() []string { return []string{q.k.lease, q.k.fence} }

func (q leaseRequest) args() []string {
	return []string{strconv.FormatInt(int64(q.op), 10), q.owner, strconv.FormatInt(q.ttl.Milliseconds(), 10), q.held}
}

func (q leaseRequest) exec() rueidis.LuaExec { return rueidis.LuaExec{Keys: q.keys(), Args: q.args()} }

// parseAcquire reads the reply of an acquire: the lease value taken, or
// "" when another instance holds the lease.
func parseAcquire(res rueidis.RedisResult) (string, error) {
	arr, err := res.ToArray()
	if err != nil {
		return "", err
	}
	if len(arr) != 2 {
		return "", fmt.Errorf("bad lease reply")
	}
	if st, _ := arr[0].AsInt64(); leaseStatus(st) != leaseOK {
		return "", nil
	}
	return arr[1].ToString()
}

// parseLeaseHeld reads the reply of a renew or release: whether the lease
// was still the caller's.
func parseLeaseHeld(res rueidis.RedisResult) (bool, error) {
	n, err := res.AsInt64()
	return leaseStatus(n) == leaseOK, err
}

// readFixedArgs is the number of ARGV of read.lua before the ids to ack.
const readFixedArgs = 6

// readRequest is one call of read.lua: ack acks, then read up to count
// entries after id (">" for new ones), fenced by the lease.
type readRequest struct {
	k                      partKeys
	lease, group, consumer string
	count                  int
	id                     string
	acks                   []string
}

func (q readRequest) keys() []string { return []string{q.k.lease, q.k.log, q.k.dlq, q.k.ckpt} }

func (q readRequest) args() []string {
	args := make([]string, 0, readFixedArgs+len(q.acks))
	args = append(args, q.lease, q.group, q.consumer, strconv.Itoa(q.count), q.id, strconv.Itoa(len(q.acks)))
	return append(args, q.acks...)
}

// readResult is the reply of read.lua.
type readResult struct {
	last      string // last id read ("" when nothing)
	delivered string // group's last-delivered-id, when nothing new was read
	dead      int64  // entries dead-lettered as trimmed
	entries   []rueidis.XRangeSlice
}

// parseRead reads read.lua's reply {OK, last, delivered, dead, entries};
// ErrFenced for {FENCED}.
func parseRead(res rueidis.RedisResult) (readResult, error) {
	arr, err := fencedReply(res, "read", 5)
	if err != nil {
		return readResult{}, err
	}
	var r readResult
	r.last, _ = arr[0].ToString()
	r.delivered, _ = arr[1].ToString()
	r.dead, _ = arr[2].AsInt64()
	es, err := arr[3].ToArray()
	if err != nil && !rueidis.IsRedisNil(err) {
		return readResult{}, err
	}
	r.entries = make([]rueidis.XRangeSlice, 0, len(es))
	for i := range es {
		e, err := es[i].AsXRangeSlice()
		if err != nil {
			return readResult{}, err
		}
		r.entries = append(r.entries, e)
	}
	return r, nil
}

// claimOp is claim.lua's ARGV[4].
type claimOp int64

const (
	claimClaim claimOp = 1 // XAUTOCLAIM every pending entry of the group
	claimPrune claimOp = 2 // delete idle consumers with nothing pending
)

func claimCodes() []luascript.Code {
	return append(fencedCodes(),
		luascript.Code{Name: "OP_CLAIM", Value: int64(claimClaim)},
		luascript.Code{Name: "OP_PRUNE", Value: int64(claimPrune)})
}

// claimRequest is one call of claim.lua.
type claimRequest struct {
	k                      partKeys
	lease, group, consumer string
	op                     claimOp
	cursor                 string        // claim: where to start ("0-0")
	count                  int           // claim: entries per call
	minIdle                time.Duration // prune
}

func (q claimRequest) keys() []string { return []string{q.k.lease, q.k.log, q.k.dlq} }

func (q claimRequest) args() []string {
	args := []string{q.lease, q.group, q.consumer, strconv.FormatInt(int64(q.op), 10)}
	if q.op == claimPrune {
		return append(args, strconv.FormatInt(q.minIdle.Milliseconds(), 10))
	}
	return append(args, q.cursor, strconv.Itoa(q.count))
}

// parseClaim reads a claim's reply {OK, next cursor, claimed, dead}:
// the cursor to go on from ("0-0" or "" at the end) and the number of
// entries dead-lettered as trimmed. ErrFenced for {FENCED}.
func parseClaim(res rueidis.RedisResult) (next string, dead int64, err error) {
	arr, err := fencedReply(res, "claim", 4)
	if err != nil {
		return "", 0, err
	}
	next, _ = arr[0].ToString()
	dead, _ = arr[2].AsInt64()
	return next, dead, nil
}

// parsePrune reads a prune's reply {OK, deleted}; ErrFenced for {FENCED}.
func parsePrune(res rueidis.RedisResult) error {
	_, err := fencedReply(res, "prune", 2)
	return err
}

// deadLetterOp is deadletter.lua's ARGV[3].
type deadLetterOp int64

const (
	deadLetterPark    deadLetterOp = 1 // write a letter and ack its entry
	deadLetterResolve deadLetterOp = 2 // delete a letter, unpark when none is left
	deadLetterCtlDone deadLetterOp = 3 // delete a handled control request
)

func deadLetterCodes() []luascript.Code {
	return append(fencedCodes(),
		luascript.Code{Name: "OP_PARK", Value: int64(deadLetterPark)},
		luascript.Code{Name: "OP_RESOLVE", Value: int64(deadLetterResolve)},
		luascript.Code{Name: "OP_CTLDONE", Value: int64(deadLetterCtlDone)})
}

// deadLetterRequest is one call of deadletter.lua; build it with park,
// resolve or ctlDone.
type deadLetterRequest struct {
	k            partKeys
	lease, group string
	op           deadLetterOp
	opArgs       []string // ARGV[4..]
}

// letter is what park writes.
type letter struct {
	pos, entity, version string // log entry id, entity id, "<v>-0"
	kind, reason         string
	attempts             int
	envelope             string
}

func (q deadLetterRequest) park(l letter) deadLetterRequest {
	q.op = deadLetterPark
	q.opArgs = []string{l.pos, l.entity, l.version, l.kind, l.reason, strconv.Itoa(l.attempts), l.envelope}
	return q
}

func (q deadLetterRequest) resolve(letterID, entity string) deadLetterRequest {
	q.op = deadLetterResolve
	q.opArgs = []string{letterID, entity}
	return q
}

func (q deadLetterRequest) ctlDone(ctlID string) deadLetterRequest {
	q.op = deadLetterCtlDone
	q.opArgs = []string{ctlID}
	return q
}

func (q deadLetterRequest) keys() []string {
	return []string{q.k.lease, q.k.log, q.k.dlq, q.k.parked, q.k.ctl}
}

func (q deadLetterRequest) args() []string {
	return append([]string{q.lease, q.group, strconv.FormatInt(int64(q.op), 10)}, q.opArgs...)
}

// parseDeadLetter reads deadletter.lua's reply: {OK, letter id} (park),
// {OK, letters left} (resolve), {OK} (ctldone); ErrFenced for {FENCED}.
// The second element is returned as is.
func parseDeadLetter(res rueidis.RedisResult) (rueidis.RedisMessage, error) {
	arr, err := fencedReply(res, "dead-letter", 0)
	if err != nil || len(arr) == 0 {
		return rueidis.RedisMessage{}, err
	}
	return arr[0], nil
}

// membersLeave is members.lua's TTL that removes the instance.
const membersLeave = 0

func membersCodes() []luascript.Code {
	return []luascript.Code{{Name: "LEAVE", Value: membersLeave}}
}

// membersRequest is one call of members.lua: a heartbeat of instance, live
// for ttl, or its leave (ttl membersLeave).
type membersRequest struct {
	key, instance string
	ttl           time.Duration
}

func (q membersRequest) keys() []string { return []string{q.key} }

func (q membersRequest) args() []string {
	return []string{q.instance, strconv.FormatInt(q.ttl.Milliseconds(), 10)}
}

// statusOutcome is the first element of status.lua's reply.
type statusOutcome int64

const (
	statusOK      statusOutcome = 1 // {OK, delivered, pending, lag, checkpoint}
	statusNoGroup statusOutcome = 0 // {NO_GROUP}: no log, or no group on it

	// lagUnknown is the lag status.lua reports when the bookkeeping was
	// lost and more entries wait than it counts (PartitionStatus.Lag).
	lagUnknown = -1
)

func statusCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "OK", Value: int64(statusOK)},
		{Name: "NO_GROUP", Value: int64(statusNoGroup)},
		{Name: "LAG_UNKNOWN", Value: lagUnknown},
	}
}

// statusRequest is one call of status.lua.
type statusRequest struct {
	log, ckpt, trimmed string // keys: the log, the bookkeeping, the log's trim counter
	group              string
	exact              int // lags up to this many entries are counted entry by entry
}

func (q statusRequest) keys() []string { return []string{q.log, q.ckpt, q.trimmed} }

func (q statusRequest) args() []string { return []string{q.group, strconv.Itoa(q.exact)} }

func (q statusRequest) exec() rueidis.LuaExec { return rueidis.LuaExec{Keys: q.keys(), Args: q.args()} }

// statusReply is status.lua's reply; found is false for {NO_GROUP}.
type statusReply struct {
	found                 bool
	delivered, checkpoint string
	pending, lag          int64
}

func parseStatus(res rueidis.RedisResult) (statusReply, error) {
	arr, err := res.ToArray()
	if err != nil {
		return statusReply{}, err
	}
	if len(arr) == 0 {
		return statusReply{}, errors.New("status script: empty reply")
	}
	if st, _ := arr[0].AsInt64(); statusOutcome(st) != statusOK {
		return statusReply{}, nil // no log or no group yet
	}
	if len(arr) != 5 {
		return statusReply{}, fmt.Errorf("status script: %d elements", len(arr))
	}
	r := statusReply{found: true}
	r.delivered, _ = arr[1].ToString()
	r.pending, _ = arr[2].AsInt64()
	r.lag, _ = arr[3].AsInt64()
	r.checkpoint, _ = arr[4].ToString()
	return r, nil
}
