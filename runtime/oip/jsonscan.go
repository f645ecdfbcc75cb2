package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting as encoding/json does.
const maxJSONDepth = 10000

// splitData validates header as exactly one JSON value and takes the tensor
// data out of it: every array-valued "data" member of an element of the
// top-level "inputs" array is returned by element index and replaced by []
// in a copy of the header. encoding/json then decodes only the small rest,
// and nextScalar reads the data, already validated, once. Member names match
// the way encoding/json matches struct fields (unescaped, case-folded, the
// last duplicate winning), so the copy means to it what header would have.
func splitData(header []byte) ([]byte, map[int][]byte, error) {
	s := &dataScanner{b: header}
	s.ws()
	if err := s.value(roleRequest, 0); err != nil {
		return nil, nil, err
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, nil, s.errorf("trailing data after the request object")
	}
	if s.out == nil {
		return header, s.data, nil
	}
	return append(s.out, header[s.last:]...), s.data, nil
}

type role int

const (
	roleOther   role = iota
	roleRequest      // the top-level object
	roleInputs       // the value of its "inputs" member
	roleInput        // an element of that array
)

type dataScanner struct {
	b     []byte
	i     int
	depth int
	out   []byte // the header without the data, up to last
	last  int
	data  map[int][]byte
}

func (s *dataScanner) errorf(format string, args ...any) error {
	return badRequest("invalid JSON in request: %s (at byte %d)", fmt.Sprintf(format, args...), s.i)
}

func (s *dataScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *dataScanner) value(r role, index int) error {
	if s.i >= len(s.b) {
		return s.errorf("unexpected end of input")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(r, index)
	case c == '[':
		return s.array(r)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.errorf("unexpected %q looking for a value", c)
	}
}

func (s *dataScanner) enter() error {
	if s.depth++; s.depth > maxJSONDepth {
		return s.errorf("nested more than %d deep", maxJSONDepth)
	}
	return nil
}

func (s *dataScanner) object(r role, index int) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.errorf("expected a member name")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errorf("expected ':' after a member name")
		}
		s.i++
		s.ws()
		switch {
		case r == roleRequest && fieldIs(key, "INPUTS"):
			s.data = nil // the last "inputs" is the one decoded
			err = s.value(roleInputs, 0)
		case r == roleInput && fieldIs(key, "DATA"):
			delete(s.data, index)
			start := s.i
			if err = s.value(roleOther, 0); err == nil && s.b[start] == '[' {
				if s.data == nil {
					s.data = map[int][]byte{}
				}
				s.data[index] = s.b[start:s.i]
				s.out = append(append(s.out, s.b[s.last:start]...), "[]"...)
				s.last = s.i
			}
		default:
			err = s.value(roleOther, 0)
		}
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errorf("unexpected end of input in an object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return s.errorf("unexpected %q after an object member", s.b[s.i])
		}
	}
}

func (s *dataScanner) array(r role) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	elem := roleOther
	if r == roleInputs {
		elem = roleInput
	}
	for n := 0; ; n++ {
		if err := s.value(elem, n); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errorf("unexpected end of input in an array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.errorf("unexpected %q after an array element", s.b[s.i])
		}
	}
}

// str consumes a string and returns its raw contents, unescaped only when
// it has escapes (member names are short).
func (s *dataScanner) str() ([]byte, error) {
	start := s.i
	s.i++ // "
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			raw := s.b[start+1 : s.i-1]
			if !escaped {
				return raw, nil
			}
			var v string
			if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
				return nil, s.errorf("bad string: %v", err)
			}
			return []byte(v), nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, s.errorf("unexpected end of input in a string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, s.errorf("unexpected end of input in a string")
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, s.errorf("bad \\u escape in a string")
					}
				}
				s.i += 6
			default:
				return nil, s.errorf("bad escape \\%c in a string", s.b[s.i+1])
			}
		case c < 0x20:
			return nil, s.errorf("control character %#x in a string", c)
		default:
			s.i++
		}
	}
	return nil, s.errorf("unexpected end of input in a string")
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func (s *dataScanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *dataScanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return s.errorf("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.errorf("bad number: no digits after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.errorf("bad number: no digits in the exponent")
		}
	}
	return nil
}

func (s *dataScanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.errorf("unexpected %q looking for a value", s.b[s.i])
	}
	s.i += len(word)
	return nil
}

// fieldIs reports whether encoding/json would decode member key into the
// struct field whose folded name is upper (ASCII upper case): it folds
// ASCII letters to upper case and other runes to upper(lower(r)).
func fieldIs(key []byte, upper string) bool {
	j := 0
	for i := 0; i < len(key); {
		var r rune
		if c := key[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			r = rune(c)
			i++
		} else {
			var n int
			r, n = utf8.DecodeRune(key[i:])
			r = unicode.ToUpper(unicode.ToLower(r))
			i += n
		}
		if j >= len(upper) || r >= utf8.RuneSelf || byte(r) != upper[j] {
			return false
		}
		j++
	}
	return j == len(upper)
}

// float64Pow10 holds the powers of ten that float64 represents exactly.
var float64Pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat32 parses a JSON number that splitData validated, returning the
// value strconv.ParseFloat(tok, 32) returns, faster, for plain decimals
// with up to 15 significant digits and 22 decimals (what clients print).
// Their digits and scale are exact float64 values, so one division rounds
// the decimal correctly to float64 (Clinger's fast path); rounding that to
// float32 is then correct too unless it sits exactly halfway between two
// float32 values, where double rounding could differ. ok is false for
// that case and for any other number: use strconv then.
func parseFloat32(tok []byte) (f float32, ok bool) {
	i, neg := 0, false
	if len(tok) > 0 && tok[0] == '-' {
		neg, i = true, 1
	}
	var mant uint64
	scale := 0
	dot := false
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case '0' <= c && c <= '9':
			if mant > (1<<53-9)/10 { // keep it exact in a float64
				return 0, false
			}
			mant = mant*10 + uint64(c-'0')
			if dot {
				scale++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false // an exponent
		}
	}
	if scale >= len(float64Pow10) {
		return 0, false
	}
	x := float64(mant) / float64Pow10[scale]
	// The 29 low bits are what rounding to float32 drops (values here are
	// far inside float32's normal range); exactly halfway is 1<<28.
	if math.Float64bits(x)&(1<<29-1) == 1<<28 {
		return 0, false
	}
	f = float32(x)
	if neg {
		f = -f
	}
	return f, true
}
