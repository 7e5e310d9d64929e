package config

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks a YAML node tree into a Go value, recording every problem
// with its place in the file (e.g. "backends[1].url"), so that one run of
// validate lists them all. Unknown keys are problems: a typo never passes.
type decoder struct {
	problems []Problem
	lookup   func(string) (string, bool)
	lines    map[string]int // path → line of its value, for placing later problems
}

// Problem is one finding about a config file, placed by its path.
type Problem struct {
	Path    string // e.g. "backends[1].url"; empty for the whole file
	Line    int    // 1-based line in the file; 0 if unknown
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode fills v (addressable) from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // explicit null keeps the zero value (and counts as not given)
	}
	if d.lines != nil {
		d.lines[path] = n.Line
	}
	if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() != reflect.Struct {
		// optional scalar: *int, *bool ...
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
		return
	}
	if _, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		d.leaf(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(path, n, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.add(path, n, "must be a mapping")
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if strings.Contains(n.Content[i].Value, "${") {
				// A name is the file's own: an environment value there
				// would be repeated in problems and logs.
				d.add(path, n.Content[i], "a name cannot come from the environment (%s)", n.Content[i].Value)
				continue
			}
			k := reflect.New(v.Type().Key()).Elem()
			d.leaf(n.Content[i], k, path)
			if m.MapIndex(k).IsValid() {
				d.add(join(path, n.Content[i].Value), n.Content[i], "duplicate key")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], e, join(path, n.Content[i].Value))
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	default:
		d.leaf(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(path, n, "must be a mapping")
		return
	}
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.add(p, k, "duplicate key")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.add(p, k, "unknown key")
			continue
		}
		d.decode(val, v.Field(idx), p)
	}
}

func fieldsOf(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		m[tag] = i
	}
	return m
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// leaf decodes a scalar after expanding ${NAME} references to environment
// variables (API Management's "named values").
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		if v.Kind() == reflect.String || v.Kind() == reflect.Int || v.Kind() == reflect.Int64 || v.Kind() == reflect.Bool || v.Kind() == reflect.Float64 {
			d.add(path, n, "must be a single value")
			return
		}
	}
	fromEnv := false
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		fromEnv = true
		cp := *n
		ok := true
		cp.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			val, set := d.lookup(name)
			if !set {
				d.add(path, n, "environment variable %s is not set", name)
				ok = false
			}
			return val
		})
		if !ok {
			return
		}
		cp.Tag = "" // re-resolve: "${PORT}" may be an int once expanded
		cp.Style = 0
		if v.Kind() == reflect.String || isSecret(v) {
			cp.Tag = "!!str"
		}
		n = &cp
	}
	if n.Kind == yaml.ScalarNode && wholeNumber(v) && n.ShortTag() == "!!float" {
		// yaml.v3 would truncate a fraction (weight 0.75 would be 0, rpm
		// 0.5 no limit); a whole number written as one (1e+06, as Helm
		// renders large numbers, or 200000.0) is taken.
		if !setWhole(v, n.Value) {
			d.add(path, n, "must be a whole number")
		}
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		if fromEnv {
			// The decoder's message quotes the value, which may be a
			// secret put in the wrong place: say what was wanted instead.
			d.add(path, n, "the value from the environment is not %s (not shown)", wanted(v))
			return
		}
		msg := err.Error()
		if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
			msg = te.Errors[0]
			if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
				msg = msg[i+2:]
			}
		}
		d.add(path, n, "%s", msg)
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// wholeNumber reports whether v is a plain integer setting (not a type
// that parses its own syntax, such as Duration).
func wholeNumber(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return !reflect.PointerTo(v.Type()).Implements(unmarshalerType)
	}
	return false
}

// setWhole sets the integer v from a YAML float that is a whole number in
// v's range, and reports whether it was one.
func setWhole(v reflect.Value, s string) bool {
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return false // a fraction, or past where a float64 holds every whole number
	}
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if f < 0 || v.OverflowUint(uint64(f)) {
			return false
		}
		v.SetUint(uint64(f))
	default:
		if v.OverflowInt(int64(f)) {
			return false
		}
		v.SetInt(int64(f))
	}
	return true
}

// wanted says what a setting of v's type takes.
func wanted(v reflect.Value) string {
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		return "a duration such as 1s or 250ms"
	case wholeNumber(v):
		return "a whole number"
	case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
		return "a number"
	case v.Kind() == reflect.Bool:
		return "true or false"
	}
	return "of this setting's type"
}

func isSecret(v reflect.Value) bool {
	return v.Type() == reflect.TypeFor[Secret]()
}

func osLookup(name string) (string, bool) { return os.LookupEnv(name) }

// shieldEnvRefs rewrites every ${NAME} in a file's text as a placeholder
// that YAML reads as part of a plain scalar anywhere, flow mappings
// included: there "{", "}" and "," end a plain value, so the issue's own
// `admin: {key: ${LLMGATE_ADMIN_KEY}}` would not parse. The references are
// still expanded after parsing (unshield puts them back first), so a value
// from the environment is never read as YAML. The placeholder's stem does
// not occur in the text, so nothing the file says is taken for one.
func shieldEnvRefs(data []byte) ([]byte, *regexp.Regexp) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	stem := "llmgateenvref"
	for i := 0; bytes.Contains(data, []byte(stem)); i++ {
		stem = "llmgateenvref" + strconv.Itoa(i)
	}
	shielded := envRef.ReplaceAll(data, []byte(stem+"~${1}~"))
	return shielded, regexp.MustCompile(stem + `~([A-Za-z_][A-Za-z0-9_]*)~`)
}

// unshield puts back the ${NAME} references shieldEnvRefs replaced, in
// every scalar of the tree.
func unshield(n *yaml.Node, placeholder *regexp.Regexp) {
	if placeholder == nil || n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		n.Value = placeholder.ReplaceAllString(n.Value, "$${${1}}")
	}
	for _, c := range n.Content {
		unshield(c, placeholder)
	}
}
