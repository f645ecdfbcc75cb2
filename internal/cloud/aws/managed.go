package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud"
)

// Tags Hadron reads back from an instance.
const (
	// TagIdempotencyKey carries cloud.Spec.IdempotencyKey (set by cloud.Tags).
	TagIdempotencyKey = "hadron:idempotency-key"
	// TagManagedSecurityGroup names the security group Hadron created for
	// the instance; Delete removes it.
	TagManagedSecurityGroup = "hadron:managed-sg"
	// TagManagedKeyPair names the key pair Hadron imported for the instance;
	// Delete removes it.
	TagManagedKeyPair = "hadron:managed-key"
)

// ManagedSecurityGroupName is the deterministic name of the security group
// Hadron manages for an idempotency key, so that a retried Create reuses it.
func ManagedSecurityGroupName(idempotencyKey string) string {
	return "hadron-" + shortHash(idempotencyKey)
}

// ManagedKeyPairName is the deterministic name of the key pair Hadron
// imports for an idempotency key and public key (another key, another name).
func ManagedKeyPairName(idempotencyKey, publicKey string) string {
	return "hadron-" + shortHash(idempotencyKey+"\x00"+strings.TrimSpace(publicKey))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:20]
}

// ingressRule is one (port, CIDR) pair the managed security group allows.
type ingressRule struct {
	port int
	cidr string
}

// desiredIngress is SSH and the runtime port from each allowed CIDR.
func desiredIngress(spec cloud.Spec) []ingressRule {
	ports := []int{22}
	if spec.RuntimePort > 0 && spec.RuntimePort != 22 {
		ports = append(ports, spec.RuntimePort)
	}
	var out []ingressRule
	for _, p := range ports {
		for _, c := range spec.AllowedCIDRs {
			out = append(out, ingressRule{port: p, cidr: netip.MustParsePrefix(c).Masked().String()})
		}
	}
	return out
}

// ensureSecurityGroup creates (or finds, on a retry) the managed security
// group and makes it allow exactly SSH and the runtime port from the allowed
// CIDRs (rules are only added). It returns the group id as soon as one exists.
func ensureSecurityGroup(ctx context.Context, c *ec2.Client, spec cloud.Spec) (string, error) {
	name := ManagedSecurityGroupName(spec.IdempotencyKey)
	var vpcID string
	if spec.SubnetID != "" {
		out, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{spec.SubnetID}})
		if err != nil {
			return "", fmt.Errorf("describing subnet (%s): %w", spec.SubnetID, err)
		}
		if len(out.Subnets) == 0 {
			return "", fmt.Errorf("describing subnet (%s): not found", spec.SubnetID)
		}
		vpcID = awssdk.ToString(out.Subnets[0].VpcId)
	}
	in := &ec2.CreateSecurityGroupInput{
		GroupName:         awssdk.String(name),
		Description:       awssdk.String(groupDescription("Hadron-managed: SSH and the Hadron runtime port for " + spec.Name)),
		TagSpecifications: tagSpecifications(hadronTags(spec), types.ResourceTypeSecurityGroup),
	}
	if vpcID != "" {
		in.VpcId = awssdk.String(vpcID)
	}
	var id string
	var existing []types.IpPermission
	out, err := c.CreateSecurityGroup(ctx, in)
	switch {
	case err == nil:
		id = awssdk.ToString(out.GroupId)
	case errorCode(err) == codeGroupDuplicate:
		filters := []types.Filter{filter("group-name", name), filter("tag:"+TagIdempotencyKey, keyTagValue(spec.IdempotencyKey))}
		if vpcID != "" {
			filters = append(filters, filter("vpc-id", vpcID))
		}
		found, derr := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filters})
		if derr != nil {
			return "", fmt.Errorf("finding security group (%s): %w", name, derr)
		}
		if len(found.SecurityGroups) == 0 {
			return "", fmt.Errorf("creating security group (%s): it exists but is not tagged %s=%s: %w", name, TagIdempotencyKey, keyTagValue(spec.IdempotencyKey), err)
		}
		id = awssdk.ToString(found.SecurityGroups[0].GroupId)
		existing = found.SecurityGroups[0].IpPermissions
	default:
		return "", fmt.Errorf("creating security group (%s): %w", name, err)
	}

	have := map[ingressRule]bool{}
	for _, p := range existing {
		if awssdk.ToString(p.IpProtocol) != "tcp" || awssdk.ToInt32(p.FromPort) != awssdk.ToInt32(p.ToPort) {
			continue
		}
		for _, r := range p.IpRanges {
			have[ingressRule{int(awssdk.ToInt32(p.FromPort)), awssdk.ToString(r.CidrIp)}] = true
		}
		for _, r := range p.Ipv6Ranges {
			have[ingressRule{int(awssdk.ToInt32(p.FromPort)), awssdk.ToString(r.CidrIpv6)}] = true
		}
	}
	byPort := map[int]*types.IpPermission{}
	var ports []int
	for _, r := range desiredIngress(spec) {
		if have[r] {
			continue
		}
		p, ok := byPort[r.port]
		if !ok {
			p = &types.IpPermission{IpProtocol: awssdk.String("tcp"), FromPort: awssdk.Int32(int32(r.port)), ToPort: awssdk.Int32(int32(r.port))}
			byPort[r.port] = p
			ports = append(ports, r.port)
		}
		desc := awssdk.String(ruleDescription(r.port))
		if strings.Contains(r.cidr, ":") {
			p.Ipv6Ranges = append(p.Ipv6Ranges, types.Ipv6Range{CidrIpv6: awssdk.String(r.cidr), Description: desc})
		} else {
			p.IpRanges = append(p.IpRanges, types.IpRange{CidrIp: awssdk.String(r.cidr), Description: desc})
		}
	}
	if len(ports) == 0 {
		return id, nil
	}
	sort.Ints(ports)
	perms := make([]types.IpPermission, 0, len(ports))
	for _, p := range ports {
		perms = append(perms, *byPort[p])
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(id), IpPermissions: perms})
	if err != nil && errorCode(err) != codePermissionDuplicate {
		return id, fmt.Errorf("authorizing ingress on security group (%s): %w", id, err)
	}
	return id, nil
}

func ruleDescription(port int) string {
	if port == 22 {
		return "Hadron SSH"
	}
	return "Hadron runtime"
}

// groupDescription keeps the characters EC2 accepts in a VPC security group
// description (a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$*), at most 255.
func groupDescription(s string) string {
	const extra = " ._-:/()#,@[]+=&;{}!$*"
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || strings.ContainsRune(extra, r) {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 255 {
		out = out[:255]
	}
	return out
}

// hadronTags are the tags Hadron puts on what it creates for spec:
// cloud.Tags, with an idempotency key longer than EC2's 256-character tag
// values replaced by its digest.
func hadronTags(spec cloud.Spec) map[string]string {
	t := cloud.Tags(spec)
	if _, ok := t[TagIdempotencyKey]; ok {
		t[TagIdempotencyKey] = keyTagValue(spec.IdempotencyKey)
	}
	return t
}

// keyTagValue is the value of the hadron:idempotency-key tag for key.
func keyTagValue(key string) string {
	if len(key) <= 256 {
		return key
	}
	h := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(h[:])
}

// ensureKeyPair imports spec.SSHPublicKey under its deterministic name; an
// existing key pair of that name (same key, a retry) is reused.
func ensureKeyPair(ctx context.Context, c *ec2.Client, spec cloud.Spec) (string, error) {
	name := ManagedKeyPairName(spec.IdempotencyKey, spec.SSHPublicKey)
	_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
		KeyName:           awssdk.String(name),
		PublicKeyMaterial: []byte(strings.TrimSpace(spec.SSHPublicKey)),
		TagSpecifications: tagSpecifications(hadronTags(spec), types.ResourceTypeKeyPair),
	})
	if err != nil && errorCode(err) != codeKeyPairDuplicate {
		return "", fmt.Errorf("importing key pair (%s): %w", name, err)
	}
	return name, nil
}

// deleteManaged removes a managed security group and key pair (either may be
// empty). A group still in use right after termination is retried for the
// backend's CleanupTimeout; already-deleted ones are fine.
func (b *Backend) deleteManaged(ctx context.Context, c *ec2.Client, groupID, keyName string) error {
	var errs []error
	if groupID != "" {
		err := b.retryOnCodes(ctx, b.cfg.CleanupTimeout, []string{codeDependencyViolation}, func(ctx context.Context) error {
			_, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: awssdk.String(groupID)})
			return err
		})
		if err != nil && errorCode(err) != codeGroupNotFound {
			errs = append(errs, fmt.Errorf("deleting managed security group (%s): %w", groupID, err))
		}
	}
	if keyName != "" {
		_, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: awssdk.String(keyName)})
		if err != nil && errorCode(err) != codeKeyPairNotFound {
			errs = append(errs, fmt.Errorf("deleting managed key pair (%s): %w", keyName, err))
		}
	}
	return errors.Join(errs...)
}
