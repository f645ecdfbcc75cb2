// Package cloud defines what every Hadron cloud backend provides: create a node
// from a Spec, find it again, and delete it. Backends live in the sub-packages
// (local, aws, aliyun); SDK types never leave them.
package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Backend.Get when the instance does not
// exist any more. A terminated, shutting-down, released or reclaimed instance
// counts as not found.
var ErrNotFound = errors.New("instance not found")

// Backend is one cloud. Implementations must be safe for concurrent use.
type Backend interface {
	// Name is the cloud's name as written in HCL: "local", "aws" or "aliyun".
	Name() string
	// Create launches one instance, trying spec.Candidates in order. It returns
	// once the instance is running (not necessarily bootstrapped). When every
	// candidate fails it returns an *AttemptsError listing each attempt.
	// Create must be idempotent for the same Spec.IdempotencyKey and
	// candidate: a retried Create finds the instance an interrupted one made.
	Create(ctx context.Context, spec Spec) (*Instance, error)
	// Get returns the instance, or an error wrapping ErrNotFound when it is gone.
	Get(ctx context.Context, id string) (*Instance, error)
	// Delete terminates the instance and what Hadron created for it (managed
	// security group, key pair), waiting until it is gone. Deleting an
	// instance that is already gone succeeds.
	Delete(ctx context.Context, id string) error
}

// ManagedRemover is implemented by backends that make a security group or a
// key pair for an instance. RemoveManaged deletes them by id, for when the
// instance has gone from the cloud's API and Delete can no longer read them
// from it; ones already deleted, or still used by another instance, are left
// alone without error.
type ManagedRemover interface {
	RemoveManaged(ctx context.Context, instanceID, securityGroupID, keyName string) error
}

// Starter is implemented by backends that can start an instance stopped
// outside Terraform. Start returns once it runs (its addresses may have
// changed).
type Starter interface {
	Start(ctx context.Context, id string) (*Instance, error)
}

// Tagger is implemented by backends that can change an instance's tags in
// place; the provider updates tags through it instead of replacing the node.
type Tagger interface {
	SetTags(ctx context.Context, id string, tags map[string]string) error
}

// Candidate is one place an instance may land: tried in order by Create.
type Candidate struct {
	Region       string
	Zone         string // empty: let the cloud pick a zone in Region
	InstanceType string
	Spot         bool
	// HourlyPrice is informational (USD/h), from the catalog when known.
	HourlyPrice float64
}

func (c Candidate) String() string {
	zone := c.Zone
	if zone == "" {
		zone = c.Region
	}
	market := "on-demand"
	if c.Spot {
		market = "spot"
	}
	return fmt.Sprintf("%s %s (%s)", zone, c.InstanceType, market)
}

// Spec is the cloud-independent description of an instance to create.
type Spec struct {
	// Name is the user's name for the instance (the Name tag).
	Name string
	// IdempotencyKey identifies the resource across retries and crashes. It is
	// derived from configuration only, never from random values, so that a
	// re-apply after a crash computes the same key.
	IdempotencyKey string
	// Candidates are tried in order; at least one.
	Candidates []Candidate
	// SpotMaxPrice caps the spot price in USD/h; zero means the on-demand price.
	SpotMaxPrice float64

	ImageID          string
	RootVolumeSizeGB int
	RootVolumeType   string
	SubnetID         string // AWS subnet or Aliyun vSwitch
	SecurityGroupIDs []string
	// AllowedCIDRs may reach SSH and RuntimePort on a Hadron-managed security
	// group, created only when SecurityGroupIDs is empty.
	AllowedCIDRs []string
	// SSHPublicKey (authorized_keys format) is imported as a managed key pair
	// when KeyName is empty.
	SSHPublicKey string
	KeyName      string
	PublicIP     bool
	RuntimePort  int
	UserData     string
	Tags         map[string]string
}

// Instance is what a backend knows about a running (or starting) instance.
type Instance struct {
	ID string
	// Name is the instance's Name tag; Tags are all its tags (Name included).
	Name         string
	Tags         map[string]string
	Cloud        string
	Region       string
	Zone         string
	InstanceType string
	ImageID      string
	// State is the cloud's lifecycle state, lower-case: pending, running,
	// stopping, stopped, shutting-down, terminated.
	State     string
	Spot      bool
	PublicIP  string
	PrivateIP string
	// ManagedSecurityGroupID and ManagedKeyName are set when Hadron created
	// them for this instance; Delete removes them.
	ManagedSecurityGroupID string
	ManagedKeyName         string
	LaunchTime             time.Time
	// Attempts lists the candidates tried before this one landed (failed ones
	// first, the successful one last).
	Attempts []Attempt
	// Endpoint and Token are set by backends that start the node runtime
	// themselves (the local cloud): the agent's base URL and bearer token.
	Endpoint string
	Token    string
}

// Attempt is one try of one candidate.
type Attempt struct {
	Candidate Candidate
	Code      string // the cloud's error code, empty on success
	Message   string
	RequestID string
}

func (a Attempt) String() string {
	if a.Code == "" {
		return fmt.Sprintf("%s: ok", a.Candidate)
	}
	s := fmt.Sprintf("%s: %s: %s", a.Candidate, a.Code, a.Message)
	if a.RequestID != "" {
		s += " (request id " + a.RequestID + ")"
	}
	return s
}

// AttemptsError is returned by Create when no candidate could be launched.
type AttemptsError struct {
	Cloud    string
	Attempts []Attempt
}

func (e *AttemptsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no %s candidate could be launched (%d tried)", e.Cloud, len(e.Attempts))
	for _, a := range e.Attempts {
		b.WriteString("\n  - ")
		b.WriteString(a.String())
	}
	return b.String()
}

// ClientToken derives the deterministic idempotency token for one candidate of
// a spec, generation n. The same key and candidate always give the same token;
// another zone, type or market gives another. Generation lets a backend step
// past a token whose instance was already terminated (a destroy followed by a
// create of the same resource). maxLen truncates the hex digest (EC2 and ECS
// accept 64 characters).
func ClientToken(key string, c Candidate, n, maxLen int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("hadron/v1\x00%s\x00%s\x00%s\x00%s\x00%t\x00%d",
		key, c.Region, c.Zone, c.InstanceType, c.Spot, n)))
	s := hex.EncodeToString(h[:])
	if maxLen > 0 && len(s) > maxLen {
		s = s[:maxLen]
	}
	return s
}

// Tags returns the tags Hadron puts on everything it creates: the user's tags
// plus Name and hadron:managed-by. User tags win except for hadron:managed-by.
func Tags(spec Spec) map[string]string {
	t := map[string]string{"Name": spec.Name}
	for k, v := range spec.Tags {
		t[k] = v
	}
	t["hadron:managed-by"] = "hadron"
	if spec.IdempotencyKey != "" {
		t["hadron:idempotency-key"] = spec.IdempotencyKey
	}
	return t
}
