package config

import (
	"fmt"
	"log/slog"
	"time"

	"go.yaml.in/yaml/v3"
)

// Secret is a credential from the config. It masks itself when printed,
// logged or marshalled; Reveal returns the value for use.
type Secret string

const masked = "****"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString masks the secret in %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue masks the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML masks the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON masks the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Format masks the secret for every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// Duration is a time.Duration written in Go syntax ("250ms", "1m30s").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{"must be a duration such as 1s or 250ms"}}
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("invalid duration %q (use Go syntax such as 1s or 250ms)", n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
