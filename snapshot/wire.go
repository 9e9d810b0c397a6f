package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// This file owns the wire format of a snapshot (lua/*.lua read its header).
//
// A snapshot is one msgpack array of four elements, its header fixed-width so
// the scripts can read the version and schema version at fixed offsets
// without unpacking the state:
//
//	offset  0  0x94            fixarray of 4
//	        1  0xcf + 8 bytes  version (uint64, big-endian)
//	       10  0xce + 4 bytes  schema version (uint32)
//	       15  0xd3 + 8 bytes  taken at, unix nanoseconds (int64)
//	       24  bin 8/16/32     the state, encoded by the caller
//
// Any msgpack decoder reads it as [version, schema, nanos, state].
const headerLen = 24

var errCorrupt = errors.New("snapshot: corrupt")

// encode returns the stored form of sn.
func encode(sn Snapshot) ([]byte, error) {
	if sn.SchemaVersion < 0 || sn.SchemaVersion > math.MaxUint32 {
		return nil, fmt.Errorf("snapshot: schema version %d out of range", sn.SchemaVersion)
	}
	n := len(sn.State)
	b := make([]byte, 0, headerLen+5+n)
	b = append(b, 0x94, 0xcf)
	b = binary.BigEndian.AppendUint64(b, sn.Version)
	b = append(b, 0xce)
	b = binary.BigEndian.AppendUint32(b, uint32(sn.SchemaVersion))
	b = append(b, 0xd3)
	b = binary.BigEndian.AppendUint64(b, uint64(sn.Time.UnixNano()))
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	case uint64(n) <= math.MaxUint32:
		b = append(b, 0xc6)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	default:
		return nil, fmt.Errorf("snapshot: state of %d bytes too large", n)
	}
	return append(b, sn.State...), nil
}

// decode parses a stored snapshot. State aliases b.
func decode(b []byte) (Snapshot, error) {
	if len(b) < headerLen+2 || b[0] != 0x94 || b[1] != 0xcf || b[10] != 0xce || b[15] != 0xd3 {
		return Snapshot{}, fmt.Errorf("%w: bad header", errCorrupt)
	}
	sn := Snapshot{
		Version:       binary.BigEndian.Uint64(b[2:10]),
		SchemaVersion: int(binary.BigEndian.Uint32(b[11:15])),
		Time:          time.Unix(0, int64(binary.BigEndian.Uint64(b[16:24]))).UTC(),
	}
	rest := b[headerLen:]
	var n, hdr int
	switch rest[0] {
	case 0xc4:
		n, hdr = int(rest[1]), 2
	case 0xc5:
		if len(rest) < 3 {
			return Snapshot{}, fmt.Errorf("%w: truncated state length", errCorrupt)
		}
		n, hdr = int(binary.BigEndian.Uint16(rest[1:3])), 3
	case 0xc6:
		if len(rest) < 5 {
			return Snapshot{}, fmt.Errorf("%w: truncated state length", errCorrupt)
		}
		n, hdr = int(binary.BigEndian.Uint32(rest[1:5])), 5
	default:
		return Snapshot{}, fmt.Errorf("%w: state is not bin", errCorrupt)
	}
	if len(rest) != hdr+n {
		return Snapshot{}, fmt.Errorf("%w: state of %d bytes, %d stored", errCorrupt, n, len(rest)-hdr)
	}
	if sn.Version == 0 {
		return Snapshot{}, fmt.Errorf("%w: version 0", errCorrupt)
	}
	sn.State = rest[hdr:]
	return sn, nil
}
