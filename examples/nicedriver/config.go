package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// defaultNice is the nice level of a task whose config does not set one.
const defaultNice = 10

// config is a task's driver config, validated.
type config struct {
	Nice int
	Env  map[string]string
}

// parseConfig reads a task's driver config: a JSON object with the optional
// fields "nice" (0..19, default 10) and "env" (variables added to the
// task's environment). Empty means the defaults. Unknown fields are refused,
// so a misspelt "nice" is not silently ignored.
func parseConfig(b []byte) (config, error) {
	c := config{Nice: defaultNice}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	var raw struct {
		Nice *int              `json:"nice"`
		Env  map[string]string `json:"env"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return config{}, fmt.Errorf("driver config: want {\"nice\": 0..19, \"env\": {\"NAME\": \"value\"}}: %w", err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return config{}, fmt.Errorf("driver config: want one JSON object, found more after it")
	}
	if raw.Nice != nil {
		if *raw.Nice < 0 || *raw.Nice > 19 {
			return config{}, fmt.Errorf("driver config: nice %d out of range 0..19", *raw.Nice)
		}
		c.Nice = *raw.Nice
	}
	for k, v := range raw.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return config{}, fmt.Errorf("driver config: env %q: a name must be non-empty without '=' or NUL, a value without NUL", k)
		}
	}
	c.Env = raw.Env
	return c, nil
}
