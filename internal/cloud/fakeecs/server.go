package fakeecs

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// Test credentials accepted by a server started with zero Options.
const (
	TestAccessKeyID     = "LTAI5tFakeEcsTestKey0001"
	TestAccessKeySecret = "fakeecs-test-secret-0001"
)

// APIVersion is the ECS OpenAPI version the fake speaks.
const APIVersion = "2014-05-26"

// Credential is one access key the server accepts. When SecurityToken is set,
// requests signed with the key must carry it (STS credentials).
type Credential struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Credentials accepted; empty means TestAccessKeyID / TestAccessKeySecret.
	Credentials []Credential
	// Zones maps each region to its zones; nil means DefaultZones().
	Zones map[string][]string
	// StepsPerState is how many DescribeInstances calls an instance spends in
	// each transitional state (Pending, Starting, Stopping, Deleted); default 1.
	StepsPerState int
	// Instant creates instances Running and releases them at once on
	// DeleteInstance, for clients with slow polling (the provider's defaults).
	Instant bool
	// Offerings maps region -> instance type -> the zones that offer it;
	// see Server.SetOfferings for regions left out.
	Offerings map[string]map[string][]string
	// SpotPriceHistory is what DescribeSpotPriceHistory answers from, in
	// Currency ("" means DefaultCurrency, USD; China-site accounts see CNY).
	SpotPriceHistory []SpotPrice
	Currency         string
	// Now is the clock for timestamps and the signature's Timestamp check;
	// nil means time.Now.
	Now func() time.Time
}

// DefaultZones returns the regions and zones a zero-Options server knows.
func DefaultZones() map[string][]string {
	return map[string][]string{
		"cn-hangzhou":    {"cn-hangzhou-h", "cn-hangzhou-i", "cn-hangzhou-j", "cn-hangzhou-k"},
		"cn-shanghai":    {"cn-shanghai-e", "cn-shanghai-f", "cn-shanghai-g", "cn-shanghai-l"},
		"cn-beijing":     {"cn-beijing-g", "cn-beijing-h", "cn-beijing-i", "cn-beijing-l"},
		"cn-shenzhen":    {"cn-shenzhen-c", "cn-shenzhen-d", "cn-shenzhen-e", "cn-shenzhen-f"},
		"ap-southeast-1": {"ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"},
	}
}

// Call is one request the server received (admin calls excluded).
type Call struct {
	Action    string            `json:"action"`
	Params    map[string]string `json:"params"`
	Code      string            `json:"code,omitempty"` // error code returned, empty on success
	RequestID string            `json:"request_id"`
}

// Server is the fake ECS endpoint. It is an http.Handler; Start also runs it on
// a loopback listener. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL (http://127.0.0.1:PORT) when started with Start.
	URL string

	opts  Options
	creds map[string]Credential
	ts    *httptest.Server

	mu    sync.Mutex
	world *world
	calls []Call
	// callsChanged is closed and replaced whenever a call is recorded.
	callsChanged chan struct{}
}

// New returns a server that is not listening; use it as an http.Handler.
func New(opts Options) *Server {
	if len(opts.Credentials) == 0 {
		opts.Credentials = []Credential{{AccessKeyID: TestAccessKeyID, AccessKeySecret: TestAccessKeySecret}}
	}
	if opts.Zones == nil {
		opts.Zones = DefaultZones()
	}
	if opts.StepsPerState <= 0 {
		opts.StepsPerState = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:         opts,
		creds:        make(map[string]Credential),
		callsChanged: make(chan struct{}),
	}
	for _, c := range opts.Credentials {
		s.creds[c.AccessKeyID] = c
	}
	s.world = newWorld(opts)
	return s
}

// Start returns a server listening on 127.0.0.1 on a free port; Close stops it.
func Start(opts Options) *Server {
	s := New(opts)
	s.ts = httptest.NewUnstartedServer(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fakeecs: listening on loopback: %v", err))
	}
	s.ts.Listener = l
	s.ts.Start()
	s.URL = s.ts.URL
	return s
}

// Close stops a server started with Start.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// apiError is an ECS error response.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// statusForCode is the HTTP status ECS uses for an error code.
func statusForCode(code string) int {
	switch {
	case code == "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case code == "InternalError" || code == "UnknownError":
		return http.StatusInternalServerError
	case strings.HasSuffix(code, ".NotFound"):
		return http.StatusNotFound
	case strings.HasPrefix(code, "OperationDenied"), strings.HasPrefix(code, "QuotaExceed"),
		strings.HasPrefix(code, "Forbidden"), code == "IncorrectInstanceStatus", code == "DependencyViolation":
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

// ServeHTTP answers ECS RPC requests on "/" and the admin API under /_fake/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.serveAdmin(w, r)
		return
	}
	requestID := s.world.newRequestID()
	if err := r.ParseForm(); err != nil {
		writeError(w, r, requestID, errorf(http.StatusBadRequest, "InvalidParameter", "cannot parse the request: %v", err))
		return
	}
	params := make(map[string]string, len(r.Form))
	for k, v := range r.Form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	action := params["Action"]
	resp, aerr := s.handle(r.Method, action, params)
	rec := Call{Action: action, Params: redact(params), RequestID: requestID}
	if aerr != nil {
		rec.Code = aerr.Code
	}
	s.record(rec)
	if aerr != nil {
		writeError(w, r, requestID, aerr)
		return
	}
	resp["RequestId"] = requestID
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", requestID)
	_ = json.NewEncoder(w).Encode(resp)
}

func redact(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		switch k {
		case "Signature", "SecurityToken", "SignatureNonce":
			continue
		}
		out[k] = v
	}
	return out
}

func writeError(w http.ResponseWriter, r *http.Request, requestID string, e *apiError) {
	status := e.Status
	if status == 0 {
		status = statusForCode(e.Code)
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", requestID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"RequestId": requestID,
		"HostId":    r.Host,
		"Code":      e.Code,
		"Message":   e.Message,
		"Recommend": "fakeecs: look up " + e.Code + " in the ECS error center",
	})
}

// handle authenticates the request, applies injected faults and dispatches.
func (s *Server) handle(method, action string, p map[string]string) (map[string]any, *apiError) {
	if err := s.authenticate(method, p); err != nil {
		return nil, err
	}
	if p["Version"] != APIVersion {
		return nil, errorf(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version %q is not valid.", p["Version"])
	}
	if f := p["Format"]; f != "" && !strings.EqualFold(f, "JSON") {
		return nil, errorf(http.StatusBadRequest, "InvalidParameter.Format", "only JSON is supported by fakeecs, got %q", f)
	}
	h := handlerFor(action)
	if h == nil {
		return nil, errorf(http.StatusNotFound, "InvalidAction.NotFound", "Specified api %q is not found, please check your url and method.", action)
	}
	if e := s.world.takeInjected(action); e != nil {
		return nil, e
	}
	return h(s.world, p)
}

// authenticate checks the RPC signature (HMAC-SHA1, version 1.0) the way ECS
// does: the access key must exist, the STS token must match, the timestamp be
// recent, the nonce unused, and the signature equal the server's own.
func (s *Server) authenticate(method string, p map[string]string) *apiError {
	for _, k := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"} {
		if p[k] == "" {
			return errorf(http.StatusBadRequest, "MissingParameter", "The input parameter %q that is mandatory for processing this request is not supplied.", k)
		}
	}
	if p["SignatureMethod"] != "HMAC-SHA1" || p["SignatureVersion"] != "1.0" {
		return errorf(http.StatusBadRequest, "InvalidSignatureMethod", "fakeecs supports HMAC-SHA1 signature version 1.0, got %s %s", p["SignatureMethod"], p["SignatureVersion"])
	}
	cred, ok := s.creds[p["AccessKeyId"]]
	if !ok {
		return errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	if cred.SecurityToken != "" && p["SecurityToken"] != cred.SecurityToken {
		return errorf(http.StatusBadRequest, "InvalidSecurityToken.Mismatch", "Specified SecurityToken mismatch with the AccessKey.")
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", p["Timestamp"])
	if err != nil {
		return errorf(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	}
	if d := s.opts.Now().Sub(ts); d > 15*time.Minute || d < -15*time.Minute {
		return errorf(http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	}
	stringToSign := StringToSign(method, p)
	if want := Sign(stringToSign, cred.AccessKeySecret); !hmac.Equal([]byte(want), []byte(p["Signature"])) {
		return errorf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:%s", stringToSign)
	}
	if !s.world.useNonce(p["SignatureNonce"]) {
		return errorf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	return nil
}

// percentEncode is RFC 3986 encoding as the ECS signature specification
// requires: unreserved characters stay, everything else is %XX, spaces
// included.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// StringToSign builds the canonical string of an RPC request: the method,
// the encoded "/", and the encoded, sorted, encoded parameters (Signature
// excluded).
func StringToSign(method string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = percentEncode(k) + "=" + percentEncode(params[k])
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(strings.Join(pairs, "&"))
}

// Sign is the RPC signature of a canonical string for an access key secret.
func Sign(stringToSign, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	close(s.callsChanged)
	s.callsChanged = make(chan struct{})
}

// Calls returns the requests received so far for action ("" means all).
func (s *Server) Calls(action string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// CallCount returns how many requests for action were received.
func (s *Server) CallCount(action string) int { return len(s.Calls(action)) }

// WaitForCalls blocks until at least n requests for action were received, or
// ctx ends.
func (s *Server) WaitForCalls(ctx context.Context, action string, n int) error {
	for {
		s.mu.Lock()
		count := 0
		for _, c := range s.calls {
			if c.Action == action {
				count++
			}
		}
		changed := s.callsChanged
		s.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d %s calls (saw %d): %w", n, action, count, ctx.Err())
		case <-changed:
		}
	}
}

// parseJSONList reads the JSON array parameters ECS uses (InstanceIds,
// KeyPairNames).
func parseJSONList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// indexed reads repeated parameters such as Tag.1.Key, Tag.2.Key, ... in
// order, stopping at the first missing index.
func indexed(p map[string]string, prefix string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		item := map[string]string{}
		found := false
		if len(fields) == 0 {
			if v, ok := p[fmt.Sprintf("%s.%d", prefix, i)]; ok {
				item[""] = v
				found = true
			}
		}
		for _, f := range fields {
			if v, ok := p[fmt.Sprintf("%s.%d.%s", prefix, i, f)]; ok {
				item[f] = v
				found = true
			}
		}
		if !found {
			return out
		}
		out = append(out, item)
	}
}
