package aws

import (
	"errors"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Error codes the backend acts on.
const (
	codeInstanceNotFound      = "InvalidInstanceID.NotFound"
	codeIdempotentMismatch    = "IdempotentParameterMismatch"
	codeGroupDuplicate        = "InvalidGroup.Duplicate"
	codeGroupNotFound         = "InvalidGroup.NotFound"
	codePermissionDuplicate   = "InvalidPermission.Duplicate"
	codeDependencyViolation   = "DependencyViolation"
	codeKeyPairDuplicate      = "InvalidKeyPair.Duplicate"
	codeKeyPairNotFound       = "InvalidKeyPair.NotFound"
	codeInsufficientCapacity  = "InsufficientInstanceCapacity"
	codeInstanceTerminatedRun = "InstanceTerminatedDuringLaunch"
)

// CapacityErrorCodes are the RunInstances error codes that make Create move
// on to the next candidate instead of failing.
func CapacityErrorCodes() []string {
	return []string{
		codeInsufficientCapacity,
		"Unsupported",
		"InstanceLimitExceeded",
		"VcpuLimitExceeded",
		"SpotMaxPriceTooLow",
		"MaxSpotInstanceCountExceeded",
	}
}

func isCapacityCode(code string) bool {
	for _, c := range CapacityErrorCodes() {
		if code == c {
			return true
		}
	}
	return false
}

// errorCode returns the EC2 error code of err, or "".
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// errorMessage returns the EC2 error message of err, or err's text.
func errorMessage(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorMessage()
	}
	return err.Error()
}

// requestID returns the EC2 request id of a failed call, or "".
func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}
