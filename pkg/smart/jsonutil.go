package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// MaxJSONSize bounds what the JSON parsers read: smartctl -x of a drive with
// full logs is a few hundred KiB, so anything larger is not smartctl output
// and must not grow the agent's memory.
const MaxJSONSize = 16 << 20

// Errors the JSON parsers wrap, for errors.Is.
var (
	// ErrMalformed: the input is not JSON (empty, truncated, a syntax error).
	ErrMalformed = errors.New("malformed JSON")
	// ErrNoDevice: valid JSON that is not one device's report (no "device"
	// section: another tool's JSON, or `smartctl --scan` output).
	ErrNoDevice = errors.New("no device section")
	// ErrSmartctlFailed: smartctl ran but returned no device data (its exit
	// status says the command line or the device open failed).
	ErrSmartctlFailed = errors.New("smartctl failed")
)

// readJSON reads at most MaxJSONSize bytes and checks the input is
// non-empty; what names the input in errors.
func readJSON(r io.Reader, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(data) > MaxJSONSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", what, ErrMalformed, MaxJSONSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: %w: empty input", what, ErrMalformed)
	}
	return data, nil
}

// decodeJSON unmarshals data into v. Syntax errors are fatal and name the
// offset, line and column. Type mismatches in single fields are not: the
// decoder fills everything else, and the mismatches come back as warnings,
// so that one field changing type in a new smartctl does not blind the
// agent to a failing drive.
func decodeJSON(data []byte, v any, what string) (warnings []string, err error) {
	err = json.Unmarshal(data, v)
	if err == nil {
		return nil, nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// The scanner's own wording for running out of input; a syntax
		// error in the last byte has an offset at the end as well.
		if strings.Contains(syn.Error(), "unexpected end of JSON input") {
			line, col := lineCol(data, syn.Offset)
			return nil, fmt.Errorf("%s: %w: truncated at offset %d (line %d, column %d): %v",
				what, ErrMalformed, syn.Offset, line, col, syn)
		}
		// Offset counts the bytes read, the offending one included: name
		// that byte, 0-based, with a 1-based line and column for editors.
		off := max(syn.Offset-1, 0)
		line, col := lineCol(data, off)
		return nil, fmt.Errorf("%s: %w at offset %d (line %d, column %d): %v",
			what, ErrMalformed, off, line, col, syn)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" { // the document itself has the wrong type
			return nil, fmt.Errorf("%s: %w: top level is a JSON %s, want an object", what, ErrNoDevice, typ.Value)
		}
		return []string{fmt.Sprintf("field %s: JSON %s where %s was expected (ignored)", typ.Field, typ.Value, typ.Type)}, nil
	}
	return nil, fmt.Errorf("%s: %w: %v", what, ErrMalformed, err)
}

// lineCol turns a byte offset into 1-based line and column numbers.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// num holds a JSON number, or a number written as a string (nvme-cli 2.1
// does that for 64-bit and larger counters), as text: it is converted on
// use, so that a value of an unexpected kind reads as absent instead of
// failing the whole document.
type num string

func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*n = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = num(strings.TrimSpace(s))
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*n = num(b)
	default:
		// true/false/objects/arrays: keep a marker that parses as nothing.
		*n = "!"
	}
	return nil
}

// u64 returns the value as an unsigned integer. Floating-point forms
// ("1.2e+10", "123.000000") are truncated, values past the uint64 range
// saturate, negative or non-numeric values are absent.
func (n num) u64() (uint64, bool) {
	if n == "" {
		return 0, false
	}
	if v, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	switch {
	case math.IsNaN(f) || f < 0:
		return 0, false
	case f >= math.MaxUint64:
		return math.MaxUint64, true
	}
	return uint64(f), true
}

// i64 returns the value as a signed integer, absent when it does not fit.
func (n num) i64() (int64, bool) {
	if n == "" {
		return 0, false
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// f64 returns the value as a float.
func (n num) f64() (float64, bool) {
	if n == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// u8 returns the value clamped to a byte (percentages, warning bytes).
func (n num) u8() (uint8, bool) {
	v, ok := n.u64()
	if !ok {
		return 0, false
	}
	if v > math.MaxUint8 {
		return math.MaxUint8, true
	}
	return uint8(v), true
}

// get is u64 with the absent case as zero.
func (n num) get() uint64 {
	v, _ := n.u64()
	return v
}

// int returns the value as an int, zero when absent.
func (n num) int() int {
	v, ok := n.i64()
	if !ok || v > math.MaxInt32 || v < math.MinInt32 {
		return 0
	}
	return int(v)
}
