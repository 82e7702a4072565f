package dinit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Keys of the init's framework state (owned by the init's principal;
// dcosctl svc writes specs as an operator with owner set). Values are JSON.
const (
	// PrefixSpecs/<name> holds a Record: the service's current spec.
	PrefixSpecs = "specs/"
	// PrefixHistory/<name>/<version, 10 digits> holds the Records of the
	// last HistoryKeep versions (the current one included).
	PrefixHistory = "history/"
	// PrefixDeployments/<name> holds the service's current Deployment.
	PrefixDeployments = "deployments/"
	// PrefixStatus/<name> holds a Status: what the kernel cannot show.
	PrefixStatus = "status/"
)

// HistoryKeep is how many versions history keeps per service.
const HistoryKeep = 10

// SpecKey is the key of a service's spec.
func SpecKey(name string) string { return PrefixSpecs + name }

// HistoryKey is the key of version v of a service's spec.
func HistoryKey(name string, v int64) string {
	return fmt.Sprintf("%s%s/%010d", PrefixHistory, name, v)
}

// HistoryPrefix is the prefix of a service's history keys.
func HistoryPrefix(name string) string { return PrefixHistory + name + "/" }

// DeploymentKey is the key of a service's deployment.
func DeploymentKey(name string) string { return PrefixDeployments + name }

// StatusKey is the key of a service's status.
func StatusKey(name string) string { return PrefixStatus + name }

// ServiceOfKey returns the service a state key is about ("" for none).
func ServiceOfKey(key string) string {
	for _, p := range []string{PrefixSpecs, PrefixDeployments, PrefixStatus, PrefixHistory} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			name, _, _ := strings.Cut(rest, "/")
			return name
		}
	}
	return ""
}

// Record is a service's spec as stored: the spec and its versions.
//
// Version counts every change (apply, scale, restart, rollback).
// TemplateVersion is the Version at which the instance template last
// changed (Service.Template) or a restart was asked: instances carry it
// as their dcos.svc.version label, so a scale keeps the instances while a
// new template or a restart replaces them in a deployment.
type Record struct {
	Spec            Service   `json:"spec"`
	Version         int64     `json:"version"`
	TemplateVersion int64     `json:"templateVersion"`
	Applied         time.Time `json:"applied"`
	// Cause is what made this version: "apply", "scale", "restart",
	// "rollback to N".
	Cause string `json:"cause,omitempty"`
}

// Next returns the record that follows r (nil for a new service) when
// spec is applied for cause: Version+1, and a new TemplateVersion when
// the template changed or restart is set.
func Next(r *Record, spec Service, cause string, restart bool, now time.Time) *Record {
	n := &Record{Spec: spec, Version: 1, TemplateVersion: 1, Applied: now.UTC(), Cause: cause}
	if r != nil {
		n.Version = r.Version + 1
		n.TemplateVersion = r.TemplateVersion
		if restart || r.Spec.Template() != spec.Template() {
			n.TemplateVersion = n.Version
		}
	}
	return n
}

// Deployment statuses.
const (
	DeploymentRunning   = "running"
	DeploymentSucceeded = "succeeded"
	DeploymentFailed    = "failed"
)

// Deployment is the rollout of one spec version.
type Deployment struct {
	// SpecVersion and TemplateVersion of the Record it deploys.
	SpecVersion     int64  `json:"specVersion"`
	TemplateVersion int64  `json:"templateVersion"`
	Status          string `json:"status"`
	// Reason says why it failed (the failing check's message).
	Reason string `json:"reason,omitempty"`
	// Fallback is the template version a failed deployment keeps running
	// (the newest of the old instances' when it failed): an old instance
	// that is gone, its allocation revoked, is allocated again with that
	// version's spec from history. 0 before it failed.
	Fallback int64 `json:"fallback,omitempty"`
	// Steps is the plan as computed when it started; Step the index of
	// the current one (len(Steps) when done).
	Steps    []Step    `json:"steps"`
	Step     int       `json:"step"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Status is what svc status shows that the kernel cannot.
type Status struct {
	// Instances by instance number.
	Instances map[string]*InstanceStatus `json:"instances,omitempty"`
	// Message is the service-wide reason it is not running as asked
	// (e.g. the kernel's "can never fit").
	Message string    `json:"message,omitempty"`
	Updated time.Time `json:"updated"`
}

// InstanceStatus is the restart bookkeeping of one instance.
type InstanceStatus struct {
	// Failures is the number of consecutive failures (backoff exponent).
	Failures int `json:"failures,omitempty"`
	// LastFailedTask is the id of the last failure counted, so that one
	// task's end counts once.
	LastFailedTask string `json:"lastFailedTask,omitempty"`
	LastFailure    string `json:"lastFailure,omitempty"`
	// DelayedUntil is when the next launch may happen.
	DelayedUntil time.Time `json:"delayedUntil,omitzero"`
	// Pending is the kernel's pending reason while its allocation waits.
	Pending string `json:"pending,omitempty"`
}

func instanceKey(n int) string { return strconv.Itoa(n) }
