package luascript

import (
	"strings"
	"testing"
)

// checkScript is a script whose header and body agree with checkContract.
const checkScript = `-- test.lua
--
-- KEYS[1]  the key
-- ARGV[1]  op: OP_SET or OP_DEL
--
-- Codes: OK 1, OP_SET 1,
--   OP_DEL 2

local op = tonumber(ARGV[1])
if op == OP_SET then
  redis.call('SET', KEYS[1], 'x')
elseif OP_DEL == op then
  redis.call('DEL', KEYS[1])
else
  return redis.error_reply('ERR unknown op ' .. ARGV[1])
end
redis.log(redis.LOG_WARNING, 'NOT_A_CODE in a string')
return OK
`

var checkContract = Contract{
	Keys:     1,
	Args:     1,
	Codes:    []Code{{"OK", 1}, {"OP_SET", 1}, {"OP_DEL", 2}},
	Statuses: true,
	Coded:    []string{"op"},
}

func TestCheck(t *testing.T) {
	if err := Check("test.lua", checkScript, checkContract); err != nil {
		t.Fatalf("agreeing script: %v", err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"code value in header", "OP_DEL 2", "OP_DEL 3", "code OP_DEL is 3 in the header, 2 in Go"},
		{"code missing from header", ", OP_SET 1", "", "code OP_SET (1) is not in the header's Codes line"},
		{"code unknown to Go", "OP_DEL 2", "OP_DEL 2, OP_GET 3", "header's code OP_GET (3) is unknown to Go"},
		{"code unused", "return OK", "return redis.status_reply('OK')", "code OK is never used"},
		{"bare status", "return OK", "return 1", "bare status number"},
		{"unknown name", "if op == OP_SET then", "if op == OP_SETT then", "the body names OP_SETT"},
		{"literal comparison", "if op == OP_SET then", "if op == 1 or op == OP_SET then", "op is compared with 1"},
		{"string comparison", "elseif OP_DEL == op then", "elseif 'del' == op or OP_DEL == op then", "op is compared with 'del'"},
		{"keys", "-- KEYS[1]  the key\n", "", "header documents KEYS"},
	} {
		src := strings.Replace(checkScript, tc.old, tc.new, 1)
		if src == checkScript {
			t.Fatalf("%s: %q not in the script", tc.name, tc.old)
		}
		err := Check("test.lua", src, checkContract)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
