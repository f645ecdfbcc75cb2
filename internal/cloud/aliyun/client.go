package aliyun

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// APIError is an error answered by the ECS API, with the request id that
// Alibaba Cloud support asks for.
type APIError struct {
	Action     string
	Code       string
	Message    string
	RequestID  string
	HTTPStatus int
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("ECS %s: %s: %s", e.Action, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// ctxTransport binds every request of one SDK client to the operation's
// context, so cancelling it aborts the HTTP call in flight (the SDK itself
// takes no context).
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// client returns an SDK client for one operation in region. Clients are not
// shared because the SDK mutates its HTTP client on every call.
func (b *Backend) client(ctx context.Context, region string) (*ecs.Client, error) {
	conf := sdk.NewConfig()
	conf.AutoRetry = false // retries are ours: backoff, ctx-aware, and 5xx-safe thanks to ClientToken
	conf.Scheme = b.scheme
	conf.Transport = ctxTransport{ctx: ctx, base: b.transport}
	conf.Timeout = 60 * time.Second
	c, err := ecs.NewClientWithOptions(region, conf, b.creds)
	if err != nil {
		return nil, fmt.Errorf("creating ECS client for %s: %w", region, err)
	}
	if b.domain != "" {
		c.Domain = b.domain
	}
	c.AppendUserAgent("hadron", "terraform-provider-hadron")
	return c, nil
}

// call runs one API action with retries on throttling, 5xx and transport
// errors, backing off exponentially and honouring ctx. send must build a new
// request each time (the SDK signs with a fresh nonce per request).
func call[R any](ctx context.Context, b *Backend, action string, send func() (R, error), retryAlso ...func(*APIError) bool) (R, error) {
	var zero R
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, fmt.Errorf("ECS %s: %w", action, err)
		}
		resp, err := send()
		if err == nil {
			return resp, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return zero, fmt.Errorf("ECS %s: %w", action, cerr)
		}
		apiErr := toAPIError(action, err)
		retry := false
		if apiErr == nil {
			// Transport error: safe to repeat (mutations carry ClientTokens),
			// but a wrong endpoint should fail fast.
			retry = attempt < 3
			err = fmt.Errorf("ECS %s: %w", action, err)
		} else {
			err = apiErr
			retry = isRetryable(apiErr)
			for _, f := range retryAlso {
				retry = retry || f(apiErr)
			}
		}
		if !retry || attempt >= b.maxRetries {
			return zero, err
		}
		if serr := sleep(ctx, backoff(b.retryBase, attempt)); serr != nil {
			return zero, fmt.Errorf("%w (retry interrupted: %w)", err, serr)
		}
	}
}

func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt, 16)
	if limit := 20 * time.Second; d > limit || d <= 0 {
		d = limit
	}
	// Full jitter on the upper half keeps concurrent creates from retrying in step.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func toAPIError(action string, err error) *APIError {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return &APIError{Action: action, Code: se.ErrorCode(), Message: se.Message(), RequestID: se.RequestId(), HTTPStatus: se.HttpStatus()}
	}
	return nil
}

// isRetryable reports errors worth repeating the same call for.
func isRetryable(e *APIError) bool {
	switch {
	case strings.HasPrefix(e.Code, "Throttling"), e.HTTPStatus >= 500:
		return true
	}
	switch e.Code {
	case "ServiceUnavailable", "InternalError", "UnknownError", "OperationConflict",
		"LastTokenProcessing", "IdempotenceProcessing", "LastOrderProcessing":
		return true
	}
	return false
}

// isCapacityError reports errors after which Create moves on to the next
// candidate: no stock, quota, or a type or zone that cannot take the request.
func isCapacityError(code string) bool {
	switch {
	case strings.Contains(code, "NoStock"),
		strings.HasPrefix(code, "QuotaExceed"),
		strings.HasPrefix(code, "InvalidInstanceType."),
		strings.HasPrefix(code, "Zone.Not"),
		strings.HasPrefix(code, "InvalidVSwitchId.IpNotEnough"):
		return true
	}
	switch code {
	case "InvalidResourceType.NotSupported", "InvalidZoneId.NotSupportShareEncryptedImage",
		"OperationDenied.ZoneSystemCategoryNotMatch", "InvalidSystemDiskCategory.ValueNotSupported",
		"InvalidSpotPriceLimit.LowerThanPublicPrice", "OperationDenied.ZoneNotAllowed",
		"ResourceNotAvailable", "InvalidInstanceChargeType.NotSupported",
		codeNoStock, codeVSwitchZoneMismatch, codeNoDefaultVSwitch:
		return true
	}
	return false
}

func isNotFoundCode(code string) bool {
	return strings.HasPrefix(code, "InvalidInstanceId.NotFound") || code == "InvalidInstanceId.MalFormed" ||
		code == "InvalidInstanceId.Malformed" || code == "InvalidResourceId.NotFound"
}
